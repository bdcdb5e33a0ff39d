"""The Django adapter: Django's views, URLs and settings over the framework-agnostic core."""
