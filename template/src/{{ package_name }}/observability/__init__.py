"""Logs, request IDs, metrics (and tracing when chosen): framework-agnostic ASGI pieces."""
