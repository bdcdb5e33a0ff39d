"""Session fixtures of the template's tests, and the numbers in the terminal summary."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import Rendered, copy_template, render, render_many

# Numbers for the terminal summary, gathered from test reports (controller process only).
_SUMMARY: dict[str, Any] = {
    "static": {},
    "tier2": [],
    "tier3": [],
    "tier4": [],
    "tier5": [],
    "bench": [],
    "tiers": {},
}
TIERS = ("tier1", "tier2", "tier3", "tier4", "tier5", "bench", "slow")


def pytest_configure(config: pytest.Config) -> None:
    # Keep a developer's own Copier settings (defaults, trusted templates) out of the tests.
    # Copier 9.19.1 rejects an empty settings file (it loads as None), hence "{}".
    settings_dir = tempfile.mkdtemp(prefix="copier-settings-")
    settings = Path(settings_dir, "settings.yml")
    settings.write_text("{}\n", encoding="utf-8")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    _SUMMARY["settings_dir"] = settings_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SUMMARY["settings_dir"], ignore_errors=True)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def template_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain copy of copier.yml + template/ + hooks/, made once per session (per xdist
    worker): rendering the git repository itself would render its last tag, not the tree."""
    return copy_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def renderer(template_copy: Path) -> Callable[[Mapping[str, Any], Path], Path]:
    """render(data, dst) -> dst, through copier.run_copy (defaults=True, unsafe=False)."""

    def _render(data: Mapping[str, Any], dst: Path) -> Path:
        render(template_copy, dst, data)
        return dst

    return _render


@pytest.fixture(scope="session")
def parallel_renderer(template_copy: Path) -> Callable[[Iterable[Any], Path], dict[str, Rendered]]:
    """Render many combinations in a process pool (os.cpu_count() workers); each result
    carries its render time, its file manifest and any render error."""

    def _render_many(combos: Iterable[Any], root: Path) -> dict[str, Rendered]:
        return render_many(template_copy, root, combos)

    return _render_many


# --- terminal summary ----------------------------------------------------------------------
# Tests attach their numbers as user_properties: those travel with the reports, so the
# summary also works when pytest-xdist runs the tests in worker processes.


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    summary = _SUMMARY
    _record_tier_time(report)
    for name, value in report.user_properties:
        if name.startswith("static:"):
            summary["static"][name.removeprefix("static:")] = value
        elif name in ("tier3", "tier4", "tier5", "bench") and report.when == "call":
            summary[name].append(value)
    if "tier2" in report.keywords and (report.when == "call" or report.outcome != "passed"):
        props = dict(report.user_properties)
        summary["tier2"].append(
            {
                "id": report.nodeid.partition("[")[2].rstrip("]") or report.nodeid,
                "phase": "" if report.when == "call" else f" (in {report.when})",
                "outcome": report.outcome,
                "start": getattr(report, "start", 0.0),
                "stop": getattr(report, "stop", 0.0),
                "steps": props.get("tier2_steps", {}),
            }
        )


def _record_tier_time(report: pytest.TestReport) -> None:
    """Per tier: tests, failures, and the span from its first start to its last stop (wall
    time even when xdist runs tests of several tiers side by side)."""
    tier = next((t for t in TIERS if t in report.keywords), "other")
    start, stop = getattr(report, "start", 0.0), getattr(report, "stop", 0.0)
    row = _SUMMARY["tiers"].setdefault(
        tier, {"tests": 0, "failed": 0, "first_start": start, "last_stop": stop}
    )
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        row["tests"] += 1
    row["failed"] += int(report.outcome == "failed")
    if start:
        row["first_start"] = min(row["first_start"] or start, start)
    row["last_stop"] = max(row["last_stop"], stop)


def _write_tier_times(terminalreporter: Any) -> None:
    rows = _SUMMARY["tiers"]
    if not rows:
        return
    terminalreporter.section("time per tier (this pytest run)", sep="-")
    for tier, row in sorted(rows.items()):
        wall = row["last_stop"] - row["first_start"]
        terminalreporter.write_line(
            f"{tier:6} {row['tests']:5} tests  {row['failed']:3} failed  {wall:7.1f} s wall"
        )
    # tests/run.sh gathers these from each pytest run into one table at the end.
    if target := os.environ.get("TIER_TIMES_FILE"):
        with open(target, "a", encoding="utf-8") as out:
            for tier, row in sorted(rows.items()):
                wall = row["last_stop"] - row["first_start"]
                out.write(f"{tier}\t{row['tests']}\t{row['failed']}\t{wall:.1f}\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = _SUMMARY
    write = terminalreporter.write_line
    if not hasattr(config, "workerinput"):  # xdist workers report to the controller
        _write_tier_times(terminalreporter)
    for label, s in sorted(summary["static"].items()):
        terminalreporter.section(f"{label}: static checks of rendered combinations", sep="-")
        write(
            f"{s['combinations']} combinations, {s['failed']} failed; "
            f"{s['distinct_files']} distinct files checked ({s['files_rendered']} in the trees, "
            f"from {s['template_renders']} template renders); ruff over {s['ruff_shapes']} of "
            f"{s['ruff_shapes_distinct']} distinct ruff shapes (every distinct file)"
        )
        write(
            f"wall time {s['wall_s']} s, CPU {s['cpu_s']} s (rendering {s['render_wall_s']} s, "
            f"file checks {s['file_checks_wall_s']} s, ruff {s['ruff_wall_s']} s, "
            f"trees {s['trees_wall_s']} s)"
        )
        eq = s["equivalence"]
        write(
            f"plain Copier renders equal to the assembled trees: {len(eq['sample'])} sampled, "
            f"seed {eq['seed']}, mismatched {eq['mismatched'] or 'none'}, ruff on their whole "
            f"trees mismatched {eq['ruff_mismatched'] or 'none'} ({eq['wall_s']} s)"
        )
        deploy = dict(s.get("deploy", {}))
        if len(deploy) > 1:
            write(
                f"deployment checks ({deploy.pop('wall_s')} s): "
                + "; ".join(f"{name}: {value}" for name, value in deploy.items())
            )
    rows = summary["tier2"]
    if rows:
        terminalreporter.section("tier2: rendered projects installed and tested", sep="-")
        for r in rows:
            steps = ", ".join(
                f"{name} {value} s" if isinstance(value, float) else f"{name} {value}"
                for name, value in r["steps"].items()
            )
            took = r["stop"] - r["start"]
            write(f"{r['outcome'].upper():8} {r['id']}{r['phase']}  {took:.1f} s  {steps}".rstrip())
        if all(r["start"] for r in rows):
            wall = max(r["stop"] for r in rows) - min(r["start"] for r in rows)
            write(f"tier-2 wall time {wall:.1f} s for {len(rows)} combinations")
    for c in summary["tier3"]:
        terminalreporter.section(f"tier3: cluster suite of {c['id']}", sep="-")
        write(
            f"replicas {c['replicas']}, requests sent {c['requests_sent']}, failed "
            f"{c['requests_failed']}, session misses {c['session_misses']}, files missing "
            f"{c['files_missing']} of {c['files_uploaded']}, ticks {c['ticks']}, "
            f"executions {c['executions']}, duplicates {c['duplicates']}, restart errors "
            f"{c['restart_errors']}, store recovery {c['recovery_seconds']:.2f} s, "
            f"rotation requests {c['rotation_requests']} (misses {c['rotation_misses']}, "
            f"signed URLs refused {c['rotation_signed_urls_refused']}), flag followed by "
            f"{c['flag_replicas_followed']} replicas in {c['flag_propagation_seconds']:.2f} s, "
            f"suite wall time {c['wall_seconds']:.1f} s"
        )
    for run in summary["bench"]:
        terminalreporter.section(f"bench: stack benchmark of {run['framework']}", sep="-")
        write(
            ", ".join(
                f"{name} {value} s" if isinstance(value, float) else f"{name} {value}"
                for name, value in run["steps"].items()
            )
        )
    for stack in summary["tier5"]:
        terminalreporter.section(f"tier5: Compose stack of {stack['project']}", sep="-")
        timings = stack["timings"]
        write(
            f"services {stack['services']}; requests sent {stack['requests_sent']}, failed "
            f"{stack['requests_failed']}; session requests {stack['session_requests']}, misses "
            f"{stack['session_misses']}; files missing {stack['files_missing']}; ticks "
            f"{stack['ticks']}, duplicates {stack['duplicates']}; rolling restarts "
            f"{stack['restarts']}, errors {stack['restart_errors']}; one-shot runs "
            f"{stack['one_shot_runs']}; store recovery {stack['recovery_seconds']} s, first "
            f"login after it {stack['login_recovery_seconds']} s, refusals after readiness "
            f"{stack['errors_after_readiness']}; broken stack (another SECRET_KEY) "
            f"{stack['broken_secret'] or 'not run'}; server processes per replica "
            f"{stack.get('server_processes') or 'one (not counted)'}; left behind "
            f"{stack['leftovers'] or 'nothing'}"
        )
        write("timings: " + ", ".join(f"{name} {value}" for name, value in timings.items()))
    for t in summary["tier4"]:
        terminalreporter.section("tier4: copier update from the previous release", sep="-")
        write(
            f"{t['from']} -> {t['to']}: {t['combinations']} combinations updated, "
            f"{t['failed']} failed, {t['conflicts']} conflicts; "
            f"median update time {t['median_update_s']} s per project"
        )
