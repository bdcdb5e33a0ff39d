"""A small synthetic template using every copier.yml feature the enumerator handles."""

from __future__ import annotations

from pathlib import Path

import yaml

SYNTHETIC = """\
_subdirectory: template
_envops:
  keep_trailing_newline: true
name:
  type: str
  placeholder: Demo App
  validator: >-
    {% if not (name | regex_search('^[A-Z][A-Za-z ]+$')) %}name must start with a capital{% endif %}
slug:
  type: str
  default: "{{ name | lower | regex_replace('[^a-z0-9]+', '-') }}"
deploy:
  type: str
  choices:
    Kubernetes: k8s
    Compose: compose
  default: k8s
scheduler:
  type: str
  choices:
    In-process: inproc
    CronJob:
      value: cronjob
      validator: "{% if deploy != 'k8s' %}CronJob scheduler only with Kubernetes{% endif %}"
    None: none
  default: inproc
replicas:
  type: int
  default: 2
  when: "{{ deploy == 'compose' }}"
db:
  type: bool
  default: false
pool:
  type: str
  choices: {Small: s, Large: l}
  default: s
  when: "{{ db }}"
tracing:
  type: bool
  default: true
  validator: "{% if tracing and scheduler == 'none' %}tracing needs a scheduler{% endif %}"
mode: plain
"""
NAMES = ["name", "slug", "deploy", "scheduler", "replicas", "db", "pool", "tracing", "mode"]


def make_template(root: Path, copier_yml: str) -> Path:
    """A template whose output is its answers: what Copier recorded, and every value seen."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "copier.yml").write_text(copier_yml, encoding="utf-8")
    tpl = root / "template"
    tpl.mkdir()
    (tpl / "{{ _copier_conf.answers_file }}.jinja").write_text(
        "{{ _copier_answers | to_nice_yaml }}", encoding="utf-8"
    )
    names = [k for k in yaml.safe_load(copier_yml) if not k.startswith("_")]
    seen = "{{ dict(" + ", ".join(f"{n}={n}" for n in names) + ") | to_nice_yaml }}"
    (tpl / "seen.yml.jinja").write_text(seen, encoding="utf-8")
    return root
