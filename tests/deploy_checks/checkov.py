"""checkov, once over every distinct Dockerfile, rendered chart and pipeline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from deploy_checks.common import TESTS_DIR

CHECKOV_CONFIG = TESTS_DIR / "checkov.yaml"


def run_checkov(
    artifacts: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """artifacts: key -> {relative path: text}. One checkov run over all of them; returns the
    failed checks per key, and the passed/failed/skipped totals."""
    checkov = shutil.which("checkov") or str(Path.home() / ".local/bin/checkov")
    if not Path(checkov).exists():
        return {
            key: ["checkov is not installed (uv tool install checkov)"] for key in artifacts
        }, {}
    with tempfile.TemporaryDirectory(prefix="checkov-") as stage:
        for key, files in artifacts.items():
            for rel, text in files.items():
                path = Path(stage, key, rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        result = subprocess.run(
            [
                checkov,
                "--skip-download",
                "--config-file",
                str(CHECKOV_CONFIG),
                "-d",
                stage,
                "--framework",
                "dockerfile",
                "kubernetes",
                "github_actions",
                "gitlab_ci",
                "--quiet",
                "--compact",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=stage,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"},
        )
    try:
        reports = json.loads(result.stdout)
    except json.JSONDecodeError:
        message = f"checkov failed (exit {result.returncode}): {result.stderr[-2000:]}"
        return {key: [message] for key in artifacts}, {}
    reports = reports if isinstance(reports, list) else [reports]
    failed: dict[str, list[str]] = {key: [] for key in artifacts}
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for report in reports:
        summary = report.get("summary", {})
        for name in totals:
            totals[name] += summary.get(name, 0)
        for check in report.get("results", {}).get("failed_checks", []):
            key, _, rel = check["file_path"].lstrip("/").partition("/")
            failed.setdefault(key, []).append(
                f"checkov {check['check_id']} ({check['check_name']}) in {rel}: "
                f"{check.get('resource')}"
            )
    return failed, totals
