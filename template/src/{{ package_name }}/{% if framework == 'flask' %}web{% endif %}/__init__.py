"""Flask adapter over the framework-agnostic core: app factory, probe and example routes."""
