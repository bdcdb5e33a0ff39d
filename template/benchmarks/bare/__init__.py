"""The bare frameworks ``stack_overhead`` measures the service against.

One module per framework the template offers, each answering the benchmarked routes with the
framework alone, on the uvicorn settings the service's ``build_server`` uses by default. They
import nothing of the service, so their start-up time and memory are the framework's own. The
project's own framework runs in the project's environment; another one runs in a throw-away
environment (``uv run --with``), so comparing frameworks installs nothing into the project.
These modules are not type-checked (``[tool.mypy]`` excludes them): only one framework is
installed in a project.

    python -m benchmarks.bare.fastapi_app PORT
"""
