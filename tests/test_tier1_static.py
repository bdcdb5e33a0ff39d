"""Tier 1: every combination of answers rendered and checked statically.

The rendering and checking happen once, in a session fixture (in parallel, per-file checks
deduplicated by content hash, one ruff run over all trees); the per-combination tests only
read the verdict, so a failure names its combination.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from combinations import Combination, all_combinations, sample
from helpers import read_tree
from static_checks import StaticReport, run_static_checks


def shard(combos: list[Combination]) -> list[Combination]:
    """TIER1_SHARD=k/n keeps every n-th combination from the k-th (1-based): CI splits tier 1
    over n jobs; each job still checks each distinct artifact of its share once."""
    spec = os.environ.get("TIER1_SHARD", "")
    if not spec:
        return combos
    index, _, count = spec.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise ValueError(f"TIER1_SHARD must look like k/n with 1 <= k <= n, got {spec!r}")
    return combos[int(index) - 1 :: int(count)]


ALL = shard(all_combinations())
SAMPLE = sample()


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
    return once_per_run(
        tmp_path_factory, "tier1", lambda: run_static_checks(template_copy, root, ALL)
    )


@pytest.fixture(scope="session")
def fast_report(template_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> StaticReport:
    root = tmp_path_factory.mktemp("fast")
    return once_per_run(
        tmp_path_factory, "fast", lambda: run_static_checks(template_copy, root, SAMPLE)
    )


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
@pytest.mark.fast
def test_accelerated_render_is_identical_to_plain_render(
    parallel_renderer, renderer, tmp_path: Path
) -> None:
    """The pool workers' compile cache (helpers.accelerate_copier) changes no byte."""
    accelerated = parallel_renderer(SAMPLE, tmp_path / "accelerated")
    for combo in SAMPLE:
        plain = renderer(combo.data, tmp_path / "plain" / combo.id)
        assert read_tree(accelerated[combo.id].dst) == read_tree(plain), combo.id
