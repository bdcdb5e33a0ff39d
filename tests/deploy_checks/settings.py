"""The deployment settings, loaded by the rendered service itself (tier 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy_checks.common import Artifacts, read_yaml
from deploy_checks.compose import _INTERPOLATION

# Secrets the deployment files leave to a secret store: stand-ins of the right shape.
STAND_IN_SECRETS = {
    "SECRET_KEY": "k8F2-pQ9xZr4Lw7Tn1Vb6Yc3Hs0Ud5Ge8Jm2Ka4",
    "STORE_URL": "redis://store.invalid:6379/0",
    "DATABASE_URL": "postgresql://app:secret@postgres.invalid:5432/app",
    "JOBS_ADMIN_TOKEN": "t7Yq-3LmZ0pR8sWx2Vn5Kc9Hb4Jd6Fg1Qa",
}

# Run with the project's interpreter: argv[1] is a JSON file {"env": {...}, "secrets": {...}}.
# The settings are loaded exactly as at start (environment plus secret files in SECRETS_DIR);
# nothing connects anywhere.
SETTINGS_PROBE = """\
import importlib, json, os, sys, tempfile
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
package = sys.argv[2]
for name in [n for n in os.environ if n.isupper() and not n.startswith(("UV_", "PATH", "HOME"))]:
    del os.environ[name]
os.environ.update(spec["env"])
secrets_dir = Path(tempfile.mkdtemp())
for name, value in spec["secrets"].items():
    (secrets_dir / name).write_text(value + "\\n")
os.environ["SECRETS_DIR"] = str(secrets_dir)
config = importlib.import_module(f"{package}.config")


def feature(module):
    try:
        return importlib.import_module(f"{package}.{module}")
    except ModuleNotFoundError:
        return None


try:
    settings = config.load_settings()
    if database := feature("db.settings"):
        database.DatabaseSettings.load(settings)
    if storage := feature("storage.settings"):
        storage.StorageSettings.load(settings)
    if jobs := feature("jobs.settings"):
        jobs_settings = jobs.JobsSettings.load(settings)
        if celery := feature("jobs.celery_app"):
            celery.CelerySettings.load(settings, jobs_settings)
except config.ConfigError as error:
    sys.exit(f"{spec['label']}: {error}")
print(f"{spec['label']}: settings accepted (APP_ENV={settings.app_env})")
"""


def deployment_environments(tree: Path) -> list[dict[str, Any]]:
    """The environment and secret files each deployment artifact gives the service."""
    found = Artifacts.find(tree)
    database = any(tree.glob("src/*/db/settings.py"))
    jobs = any(tree.glob("src/*/jobs/settings.py"))
    wanted = [
        "SECRET_KEY",
        "STORE_URL",
        *(["DATABASE_URL"] if database else []),
        *(["JOBS_ADMIN_TOKEN"] if jobs else []),
    ]
    specs = []
    if found.chart:
        values = read_yaml(found.chart / "values.yaml")
        env = {k: str(v) for k, v in values["config"].items()}
        secrets = {name: STAND_IN_SECRETS[name] for name in wanted}
        if any(tree.glob("src/*/store/memcached_store.py")):
            # The secret store holds the project's own kind of URL: a service built for
            # Memcached refuses redis:// at start (and would lock on a redis:// LOCK_URL).
            secrets["STORE_URL"] = "memcached://store.invalid:11211"
        specs.append({"label": "chart config + existingSecret", "env": env, "secrets": secrets})
    if found.compose:
        compose = read_yaml(found.compose)
        raw = compose["services"]["app"]["environment"]
        env = {k: _INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in raw.items()}
        declared = compose["services"]["app"].get("secrets", [])
        secrets = {name: STAND_IN_SECRETS[name] for name in declared}
        specs.append({"label": "compose app environment + secrets", "env": env, "secrets": secrets})
    return specs
