"""Distinct-artifact rendering: every combination's files without rendering every combination.

A rendered file depends only on the answers its templates read: its path parts, its content
(with everything it includes or imports) and the ``_exclude`` rules that select it. Those
names come from Jinja's AST (``jinja2.meta``), never from a hand list. Each template file is
rendered once per distinct tuple of the values of its names, and each combination's tree is
assembled as a manifest (path -> content hash and mode) from those renders.

A computed answer (``store_family``, ``lock_backend``) is a name like any other: the
enumerator's answers hold its value for every combination, so keying by that value is as
exact as keying by the answers it is computed from (and coarser keys mean fewer renders).

The rendering mirrors Copier's own (its Jinja environment, loader, suffix, answers file,
path rules and exclusion matcher are taken from Copier itself); ``compare_with_copier``
proves a manifest equal, byte for byte, to a plain ``copier.run_copy`` of the same answers.
Anything the analysis cannot follow (a dynamic include, ``_folder_name``...) raises
``Unsupported`` instead of guessing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from unicodedata import normalize

from copier._tools import OS
from jinja2 import meta, nodes

# Names Copier puts in every render context whose value is the same for every combination
# of one render (with the attributes of _copier_conf a template may read).
_CONSTANT_NAMES = {"_copier_phase", "_copier_operation"}
_CONF_ATTRIBUTES = {"answers_file", "src_path", "sep", "os"}
# Names whose value depends on where or how Copier runs: not reproducible from the answers.
_UNSUPPORTED_NAMES = {"_folder_name", "_copier_python", "_external_data"}
ANSWERS = "_copier_answers"
MISSING = "<missing>"
# Analysis channels the synthetic tests switch off to prove the equivalence check catches a
# dependency the analysis misses.
CHANNELS = frozenset({"includes", "copier_answers", "exclude"})


class Unsupported(Exception):
    """The template uses something the dependency analysis cannot follow."""


@dataclass
class Entry:
    """One path under the template's subdirectory (a file or a directory)."""

    src: str  # relative to the template copy root (the subdirectory), posix
    is_dir: bool
    is_template: bool
    parts: tuple[str, ...]  # path parts to render (suffix removed)
    path_names: tuple[str, ...]
    content_names: tuple[str, ...] = ()
    mode: int = 0


@dataclass
class Artifacts:
    """Per combination: files (path -> (sha256, mode)), directories and render errors."""

    files: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    dirs: dict[str, set[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    stats: dict[str, Any] = field(default_factory=dict)

    def tree(self, combo_id: str) -> dict[str, bytes | None]:
        """Every path with its bytes (None for a directory), like helpers.read_tree."""
        tree: dict[str, bytes | None] = dict.fromkeys(self.dirs[combo_id])
        for rel, (sha, _) in self.files[combo_id].items():
            tree[rel] = self.blobs[sha]
        return dict(sorted(tree.items()))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TemplateAnalysis:
    """Copier's view of one template: environment, settings and per-file dependencies."""

    def __init__(self, src: Path, blind: Iterable[str] = ()) -> None:
        from copier._main import Worker  # Copier's own environment and settings, read only

        self.blind = frozenset(blind)
        unknown = self.blind - CHANNELS
        if unknown:
            raise ValueError(f"unknown analysis channels {sorted(unknown)}")
        self.src = Path(src)
        self.worker = Worker(src_path=str(src), dst_path=tempfile.gettempdir(), quiet=True)
        self.template = self.worker.template
        self.env = self.worker.jinja_env
        self.suffix = self.template.templates_suffix
        self.local = Path(self.template.local_abspath)
        self.questions = set(self.template.questions_data)
        self.answers_relpath = str(self.template.answers_relpath)
        if any(m in self.template.subdirectory for m in ("{{", "{%")):
            raise Unsupported("a templated _subdirectory")
        if self.template.preserve_symlinks:
            raise Unsupported("_preserve_symlinks")
        self.root = self.local / self.template.subdirectory
        self.exclusions = list(self.worker.all_exclusions)
        self._compiled: dict[str, Any] = {}
        self._names_cache: dict[str, set[str]] = {}
        self.exclude_names = tuple(
            sorted(set().union(*(self.string_names(e) for e in self.exclusions)))
        )
        self.entries = self._scan()

    # --- dependency analysis -------------------------------------------------------------

    def _names(self, ast: nodes.Template, where: str, seen: frozenset[str]) -> set[str]:
        names = set(meta.find_undeclared_variables(ast))
        for node in ast.find_all(nodes.Name):
            if node.name == "_copier_conf":
                names.add("_copier_conf")
        if "_copier_conf" in names:
            self._check_conf(ast, where)
        bad = names & _UNSUPPORTED_NAMES
        if bad:
            raise Unsupported(f"{where} reads {sorted(bad)}")
        if "includes" not in self.blind:
            for ref in meta.find_referenced_templates(ast):
                if ref is None:
                    raise Unsupported(f"{where}: an include/import/extends with a computed name")
                if ref in seen:
                    continue
                source = self.env.loader.get_source(self.env, ref)[0]
                names |= self._names(self.env.parse(source), ref, seen | {ref})
        return names

    def _check_conf(self, ast: nodes.Template, where: str) -> None:
        """_copier_conf only through attributes with one value per template."""
        uses = [n for n in ast.find_all(nodes.Name) if n.name == "_copier_conf"]
        attrs = [n.attr for n in ast.find_all(nodes.Getattr) if _is_conf(n.node)]
        if len(attrs) != len(uses) or not set(attrs) <= _CONF_ATTRIBUTES:
            raise Unsupported(f"{where} reads _copier_conf beyond {sorted(_CONF_ATTRIBUTES)}")

    def expand(self, names: Iterable[str]) -> tuple[str, ...]:
        """The answer names a set of template names stands for, sorted."""
        result = set()
        for name in names:
            if name == ANSWERS:
                # The answers file: every answer it records, and the template's source.
                if "copier_answers" not in self.blind:
                    result.add(ANSWERS)
            elif name in self.questions:
                result.add(name)
            # Globals, filters' names, _copier_conf attributes and names no combination
            # defines have one value for every combination: no dependency.
        return tuple(sorted(result))

    def string_names(self, source: str) -> set[str]:
        if source not in self._names_cache:
            ast = self.env.parse(source)
            self._names_cache[source] = self._names(ast, repr(source), frozenset())
        return self._names_cache[source]

    def _scan(self) -> list[Entry]:
        entries = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames.sort()
            base = Path(dirpath)
            listed = [(d, True) for d in dirnames] + [(f, False) for f in sorted(filenames)]
            for name, is_dir in listed:
                rel = (base / name).relative_to(self.root)
                if (base / name).is_symlink() and not (base / name).resolve().is_relative_to(
                    self.local
                ):
                    raise Unsupported(f"{rel}: a symlink out of the template")
                # Copier: a path with a templated sibling (X and X.jinja) is not rendered.
                if self.suffix and (self.root / f"{rel}{self.suffix}").exists():
                    continue
                is_template = bool(self.suffix) and name.endswith(self.suffix)
                parts = (rel.with_suffix("") if is_template else rel).parts  # as Copier does
                path_names = set().union(*(self.string_names(p) for p in parts))
                entry = Entry(
                    src=rel.as_posix(),
                    is_dir=is_dir,
                    is_template=is_template and not is_dir,
                    parts=parts,
                    path_names=self.expand(path_names),
                )
                if not is_dir:
                    path = base / name
                    entry.mode = self._mode(path)
                    if entry.is_template:
                        ref = (path.relative_to(self.local)).as_posix()
                        source = self.env.loader.get_source(self.env, ref)[0]
                        if "yield" in source and re.search(r"{%-?\s*yield\b", source):
                            raise Unsupported(f"{rel}: a yield tag")
                        entry.content_names = self.expand(
                            self._names(self.env.parse(source), ref, frozenset({ref}))
                        )
                entries.append(entry)
        return entries

    def _mode(self, path: Path) -> int:
        mode = path.stat().st_mode
        git_mode = self.template.git_index_modes.get(
            PurePosixPath(path.relative_to(self.local).as_posix())
        )
        return mode if git_mode is None else (mode & ~0o111) | (git_mode & 0o111)

    # --- rendering -----------------------------------------------------------------------

    def context(self, answers: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """The render context Copier builds for these answers (Worker._render_context)."""
        remembered: dict[str, Any] = {}
        for key, value in (("_commit", self.template.commit), ("_src_path", self.template.url)):
            if value is not None:
                remembered[key] = value
        secret = self.template.secret_questions
        remembered.update((k, v) for k, v in answers.items() if k in data and k not in secret)
        conf = {
            "answers_file": PurePosixPath(self.answers_relpath),
            "src_path": self.local,
            "sep": os.sep,
            "os": OS,
        }
        return {
            **answers,
            ANSWERS: remembered,
            "_copier_conf": conf,
            "_copier_phase": "render",
        }

    def render_string(self, source: str, context: Mapping[str, Any]) -> str:
        if source not in self._compiled:
            self._compiled[source] = self.env.from_string(source)
        return self._compiled[source].render(**context)

    def render_file(self, entry: Entry, context: Mapping[str, Any]) -> bytes:
        path = self.root / entry.src
        if not entry.is_template:
            return path.read_bytes()
        ref = path.relative_to(self.local).as_posix()
        return self.env.get_template(ref).render(**context).encode()

    def render_path(self, entry: Entry, context: Mapping[str, Any]) -> str | None:
        """The destination path (None: not rendered), as Copier's _render_parts."""
        rendered: list[str] = []
        for part in entry.parts:
            text = self.render_string(part, context)
            if not text:
                return None
            if text == self.answers_relpath:
                return self.answers_relpath
            rendered.append(text)
        result = "/".join(rendered)
        # Copier's own quirk: a non-template whose rendered path has a templated sibling
        # next to the template root's copier.yml is not rendered.
        if not entry.is_template and (self.local / f"{result}{self.suffix}").exists():
            return None
        return result

    def exclude_lines(self, context: Mapping[str, Any]) -> tuple[str, ...]:
        """The rendered ``_exclude`` patterns, one per line, as Copier's matcher reads them."""
        ctx = {**context, "_copier_operation": "copy"}
        lines = []
        for exclusion in self.exclusions:
            lines += re.split(r"\r\n|\r|\n", self.render_string(exclusion, ctx))
        return tuple(normalize("NFD", x) for x in lines)

    def exclude_matcher(self, context: Mapping[str, Any]) -> Any:
        """Copier's exclusion matcher: a path -> whether ``_exclude`` leaves it out."""
        return ExcludeMatcher(self.exclude_lines(context), {}).excluded


class ExcludeMatcher:
    """Copier's gitignore-style matcher over the rendered patterns. Without a negated pattern
    ("!..."), a path is excluded when any one pattern matches it, so each pattern's verdict on
    a path is computed once and shared (``verdicts``) by every matcher holding that pattern."""

    def __init__(
        self,
        lines: tuple[str, ...],
        verdicts: dict[tuple[str, str], bool],
        line_specs: dict[str, Any] | None = None,
    ) -> None:
        from copier._main import _pathspec_pattern
        from pathspec import PathSpec

        self._lines = tuple(dict.fromkeys(line for line in lines if line.strip()))
        self._negated = any(line.lstrip().startswith("!") for line in self._lines)
        # With a negation the order of the patterns matters: Copier's whole matcher decides.
        self._spec = PathSpec.from_lines(_pathspec_pattern, lines) if self._negated else None
        self._verdicts = verdicts
        self._single: dict[str, Any] = {} if line_specs is None else line_specs

    def excluded(self, path: str | Path) -> bool:
        path = str(path)
        if self._spec is not None:
            return bool(self._spec.match_file(path))
        for line in self._lines:
            verdict = self._verdicts.get((line, path))
            if verdict is None:
                verdict = self._verdicts[line, path] = bool(self._line_spec(line).match_file(path))
            if verdict:
                return True
        return False

    def _line_spec(self, line: str) -> Any:
        from copier._main import _pathspec_pattern
        from pathspec import PathSpec

        if line not in self._single:
            self._single[line] = PathSpec.from_lines(_pathspec_pattern, [line])
        return self._single[line]


def _is_conf(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "_copier_conf"


def _token(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def render_artifacts(
    src: Path, combos: Iterable[Any], blind: Iterable[str] = ()
) -> tuple[TemplateAnalysis, Artifacts]:
    """Assemble every combination's files from one render per distinct dependency tuple."""
    analysis = TemplateAnalysis(src, blind)
    arts = Artifacts()
    path_cache: dict[tuple[str, tuple[str, ...]], str | None] = {}
    content_cache: dict[tuple[str, tuple[str, ...]], str] = {}
    matchers: dict[tuple[str, ...], Any] = {}
    excluded_cache: dict[tuple[int, str], bool] = {}
    matcher_ids: dict[tuple[str, ...], int] = {}
    parents_cache: dict[str, tuple[str, ...]] = {}
    verdicts: dict[tuple[str, str], bool] = {}  # (exclude pattern, path) -> matched
    line_specs: dict[str, Any] = {}
    for combo in combos:
        answers = dict(combo.answers)
        context = analysis.context(answers, combo.data)
        tokens = {name: _token(answers.get(name, MISSING)) for name in analysis.questions}
        tokens[ANSWERS] = _token(context[ANSWERS])

        def key(names: tuple[str, ...], tokens: dict[str, str] = tokens) -> tuple[str, ...]:
            return tuple(tokens[n] for n in names)

        files: dict[str, tuple[str, int]] = {}
        dirs: set[str] = set()
        try:
            ex_names = analysis.exclude_names if "exclude" not in analysis.blind else ()
            ex_key = key(ex_names)
            if ex_key not in matchers:
                lines = analysis.exclude_lines(context)
                matchers[ex_key] = ExcludeMatcher(lines, verdicts, line_specs).excluded
                matcher_ids[ex_key] = len(matcher_ids)
            matcher, matcher_id = matchers[ex_key], matcher_ids[ex_key]
            for entry in analysis.entries:
                pkey = (entry.src, key(entry.path_names))
                if pkey not in path_cache:
                    path_cache[pkey] = analysis.render_path(entry, context)
                dst = path_cache[pkey]
                if dst is None:
                    continue
                if (matcher_id, dst) not in excluded_cache:
                    excluded_cache[matcher_id, dst] = matcher(dst)
                if excluded_cache[matcher_id, dst]:
                    continue
                if entry.is_dir:
                    dirs.add(dst)
                    continue
                ckey = (entry.src, key(entry.content_names))
                if ckey not in content_cache:
                    data = analysis.render_file(entry, context)
                    content_cache[ckey] = sha256(data)
                    arts.blobs.setdefault(content_cache[ckey], data)
                if dst in files:
                    raise Unsupported(f"two template paths render to {dst}")
                files[dst] = (content_cache[ckey], entry.mode)
                if dst not in parents_cache:
                    parents_cache[dst] = tuple(
                        p.as_posix() for p in PurePosixPath(dst).parents if p.name
                    )
                dirs.update(parents_cache[dst])
        except Unsupported:
            raise
        except Exception as error:  # reported as this combination's failure
            arts.errors[combo.id] = f"{type(error).__name__}: {error}"
        arts.files[combo.id] = files
        arts.dirs[combo.id] = dirs
    arts.stats = {
        "template_paths": len(analysis.entries),
        "renders": len(content_cache),
        "distinct_contents": len(arts.blobs),
        "files_assembled": sum(len(f) for f in arts.files.values()),
    }
    return analysis, arts


# --- materialising and proving -----------------------------------------------------------


def write_blobs(arts: Artifacts, root: Path, names: Mapping[str, str]) -> dict[str, Path]:
    """Each distinct content written once, under its file name (names: sha -> a path)."""
    paths = {}
    for sha, data in arts.blobs.items():
        path = root / sha[:20] / PurePosixPath(names.get(sha, "blob")).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[sha] = path
    return paths


def materialise(
    files: Mapping[str, tuple[str, int]], dirs: Iterable[str], dst: Path, blobs: Mapping[str, Path]
) -> Path:
    """A tree made of hard links to the blobs (no content is written again)."""
    dst.mkdir(parents=True, exist_ok=True)
    made = {"."}
    for d in sorted(dirs):
        (dst / d).mkdir(parents=True, exist_ok=True)
        made.update(p.as_posix() for p in (PurePosixPath(d), *PurePosixPath(d).parents))
    for rel, (sha, _) in files.items():
        target = os.path.join(dst, rel)
        parent = os.path.dirname(rel) or "."
        if parent not in made:
            os.makedirs(os.path.join(dst, parent), exist_ok=True)
            made.add(parent)
        try:
            os.link(blobs[sha], target)
        except OSError:  # another filesystem: copy
            Path(target).write_bytes(blobs[sha].read_bytes())
    return dst


def plain_renders(src: Path, combos: Iterable[Any], root: Path) -> dict[str, Path]:
    """Each combination rendered by plain copier.run_copy (no patches, no cache)."""
    from helpers import render

    trees = {}
    for i, combo in enumerate(combos):
        trees[combo.id] = root / f"plain{i:03d}"
        render(src, trees[combo.id], combo.data)
    return trees


def tree_differences(arts: Artifacts, combo_id: str, plain_root: Path) -> list[str]:
    """Every path, byte and executable bit where an assembled tree and a real one differ."""
    plain = {p.relative_to(plain_root).as_posix(): p for p in sorted(plain_root.rglob("*"))}
    assembled = arts.tree(combo_id)
    found = []
    for rel in sorted(set(plain) | set(assembled)):
        if rel not in assembled:
            found.append(f"{rel}: rendered by Copier, missing from the assembled tree")
        elif rel not in plain:
            found.append(f"{rel}: assembled, but Copier does not render it")
        elif plain[rel].is_dir() != (assembled[rel] is None):
            found.append(f"{rel}: a directory in one tree, a file in the other")
        elif assembled[rel] is not None:
            if plain[rel].read_bytes() != assembled[rel]:
                found.append(f"{rel}: content differs from Copier's render")
            elif bool(plain[rel].stat().st_mode & stat.S_IXUSR) != bool(
                arts.files[combo_id][rel][1] & stat.S_IXUSR
            ):
                found.append(f"{rel}: executable bit differs from Copier's render")
    return found


def compare_with_copier(
    src: Path, arts: Artifacts, combos: Iterable[Any], root: Path
) -> dict[str, list[str]]:
    """Render combinations with plain copier.run_copy and compare them with their assembled
    trees; returns the differences per combination id (empty: sound)."""
    trees = plain_renders(src, combos, root)
    differences = {cid: tree_differences(arts, cid, tree) for cid, tree in trees.items()}
    return {cid: found for cid, found in differences.items() if found}
