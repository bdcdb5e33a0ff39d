"""Tier 1: every combination of answers checked statically.

The rendering and checking happen once, in a session fixture: each template file is rendered
once per distinct tuple of the answers it reads (artifacts.py), each distinct artifact is
checked once, and every finding is mapped back to the combinations whose trees hold it. The
per-combination tests only read the verdict, so a failure names its combination. A seeded
random sample (TIER1_SEED=n repeats one) is rendered with plain Copier and must equal its
assembled tree byte for byte.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from combinations import Combination, all_combinations, default_combination, sample
from helpers import read_tree
from static_checks import StaticReport, run_static_checks

ALL = all_combinations()
DEFAULT = default_combination()
SAMPLE = sample()
# Combinations compared with plain Copier renders on every run, besides the first one.
VERIFIED = 12


def checks(src: Path, root: Path, combos: list[Combination]) -> Callable[[], StaticReport]:
    seed = int(os.environ["TIER1_SEED"]) if os.environ.get("TIER1_SEED") else None
    return lambda: run_static_checks(
        src, root, combos, verify=VERIFIED, seed=seed, always_verified=[DEFAULT.id]
    )


def once_per_run(factory: pytest.TempPathFactory, name: str, compute: Callable[[], StaticReport]):
    """Under pytest-xdist, the first worker computes and the others read its result, so
    `pytest -n 2` does not render every combination twice."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return compute()
    shared = factory.getbasetemp().parent  # common to all workers of this run
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = shared / f"{name}.pickle"
        if cache.exists():
            return pickle.loads(cache.read_bytes())
        report = compute()
        cache.write_bytes(pickle.dumps(report))
        return report


@pytest.fixture(scope="session")
def tier1_report(template_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> StaticReport:
    root = tmp_path_factory.mktemp("tier1")
    return once_per_run(tmp_path_factory, "tier1", checks(template_copy, root, ALL))


@pytest.fixture(scope="session")
def fast_report(template_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> StaticReport:
    root = tmp_path_factory.mktemp("fast")
    return once_per_run(tmp_path_factory, "fast", checks(template_copy, root, SAMPLE))


def _verdict(report: StaticReport, combo: Combination, label: str, request: pytest.FixtureRequest):
    request.node.user_properties.append((f"static:{label}", report.stats))
    problems = report.problems[combo.id]
    if problems:
        pytest.fail(
            f"{combo.id} (rendered in {report.trees[combo.id]}) with {dict(combo.data)}:\n  "
            + "\n  ".join(problems),
            pytrace=False,
        )


@pytest.mark.tier1
@pytest.mark.parametrize("combo", ALL, ids=lambda c: c.id)
def test_rendered_combination_is_clean(
    combo: Combination, tier1_report: StaticReport, request: pytest.FixtureRequest
) -> None:
    _verdict(tier1_report, combo, "tier1", request)


@pytest.mark.fast
@pytest.mark.parametrize("combo", SAMPLE, ids=lambda c: c.id)
def test_sampled_combination_is_clean(
    combo: Combination, fast_report: StaticReport, request: pytest.FixtureRequest
) -> None:
    _verdict(fast_report, combo, "fast", request)


@pytest.mark.tier1
def test_assembled_trees_equal_plain_copier_renders(tier1_report: StaticReport) -> None:
    """The shortcuts are sound: the default plus a seeded random sample, rendered by plain
    copier.run_copy, equal their assembled trees, and ruff over their whole trees agrees with
    the cover of distinct files (a difference also fails its combination)."""
    eq = tier1_report.stats["equivalence"]
    assert len(eq["sample"]) == min(VERIFIED + 1, len(ALL)), eq
    assert DEFAULT.id in eq["sample"]
    assert eq["mismatched"] == [], f"seed {eq['seed']}: {eq['mismatched']}"
    # ruff over the sample's whole trees finds what the cover of distinct files gave them.
    assert eq["ruff_mismatched"] == [], f"seed {eq['seed']}: {eq['ruff_mismatched']}"


@pytest.mark.tier1
@pytest.mark.fast
def test_accelerated_render_is_identical_to_plain_render(
    parallel_renderer, renderer, tmp_path: Path
) -> None:
    """The pool workers' compile cache (helpers.accelerate_copier, used by tier 4) changes
    no byte."""
    accelerated = parallel_renderer(SAMPLE, tmp_path / "accelerated")
    for combo in SAMPLE:
        plain = renderer(combo.data, tmp_path / "plain" / combo.id)
        assert read_tree(accelerated[combo.id].dst) == read_tree(plain), combo.id
