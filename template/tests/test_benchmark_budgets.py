"""The stack benchmark's budgets: a route over its CPU ratio budget fails the run, by name."""

import argparse

import pytest

from benchmarks.stack_overhead import Sample, budget, over_budget, own_framework

from .support.framework import FRAMEWORK


def samples(*cpu_us: float) -> list[Sample]:
    return [Sample(cpu_us=value, rps=1000.0, p99_ms=1.0) for value in cpu_us]


def test_a_route_over_its_budget_is_named_with_both_numbers() -> None:
    # Three rounds: the median of the per-round ratios (1.2, 1.0, 2.0) is 1.2.
    results = {
        ("/livez", "bare"): samples(100, 100, 100),
        ("/livez", "full"): samples(120, 100, 200),
        ("/", "bare"): samples(100, 100, 100),
        ("/", "full"): samples(300, 300, 300),
    }
    assert over_budget(results, {"/livez": 1.25}) == []
    assert over_budget(results, {"/livez": 1.15, "/": 3.0}) == [
        "/livez: 1.20x the bare app's CPU per request (budget 1.15x)"
    ]


def test_a_budget_names_a_loaded_route_and_a_ratio() -> None:
    assert budget("/livez=1.05") == ("/livez", 1.05)
    for wrong in ("/nowhere=1.1", "/livez", "/livez="):
        with pytest.raises(argparse.ArgumentTypeError):
            budget(wrong)


def test_the_bare_app_is_the_framework_the_project_declares() -> None:
    """Not whichever framework is importable: a test dependency can bring another one in (moto's
    server needs Flask), and the benchmark would then compare the service with the wrong app."""
    assert own_framework() == FRAMEWORK
