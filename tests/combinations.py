"""The template's answer space, computed from copier.yml (never a hand-written list).

Each question is visited in file order, the way Copier asks them:

* keys starting with ``_`` are settings, not questions;
* a question whose ``when`` renders false is skipped and takes its default;
* a question with ``choices`` branches over every choice value; a choice whose own
  ``validator`` renders a message is not offered (Copier disables it);
* a ``type: bool`` question branches over True and False;
* any other question takes its default (rendered against the answers so far), or its
  placeholder when it has no default (Copier would refuse ``--defaults`` without one);
* a question whose ``validator`` renders a message for the answer makes the combination
  impossible: it is recorded as a refusal (answers up to that question, and the message)
  instead of a combination. Copier stops at the first refused question, so later questions
  are not explored for it.

Templates see the answers given so far, as in an interactive session. (With ``--data``
Copier also shows them the answers to later questions: a validator must only use earlier
questions, or the CLI and the prompt would disagree.)

Templates (``default``, ``when``, ``validator``, choice values) are rendered with a sandboxed
Jinja environment built like Copier's: same ``_envops`` and the jinja2-ansible-filters
extension that provides ``regex_search``, ``regex_replace``, ``to_nice_yaml``...
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

REPO_ROOT = Path(__file__).resolve().parent.parent
COPIER_YML = REPO_ROOT / "copier.yml"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Combination:
    """One valid set of answers.

    ``answers`` holds every question (skipped ones with their default); ``data`` holds only
    the questions Copier asks for these answers, which is what a renderer passes as data.
    """

    id: str
    answers: Mapping[str, Any] = field(hash=False)
    data: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Refusal:
    """Answers Copier must refuse: ``data`` up to and including the refused ``question``."""

    id: str
    question: str
    value: Any
    message: str
    data: Mapping[str, Any] = field(hash=False)
    # "validator" (the question's validator) or "choice" (a choice's own validator)
    kind: str = "validator"


# --- Copier-compatible rendering ---------------------------------------------------------


def cast_to_bool(value: Any) -> bool:
    """Copier's own str -> bool rules (``when``, bool answers)."""
    try:
        return bool(float(value))
    except (TypeError, ValueError):
        pass
    if isinstance(value, str):
        lower = value.strip().lower()
        if lower in {"", "n", "no", "f", "false", "off", "~", "null", "none"}:
            return False
        if lower in {"y", "yes", "t", "true", "on"}:
            return True
    return bool(value)


def _cast(type_name: str, value: Any) -> Any:
    """Cast an answer to its question type, as Copier's ``cast_answer`` does."""
    if type_name == "bool":
        return cast_to_bool(value)
    if type_name in {"str", "path"}:
        return str(value)
    if type_name == "int":
        return int(value)
    if type_name == "float":
        return float(value)
    if type_name in {"yaml", "json"} and isinstance(value, str):
        return yaml.safe_load(value) if type_name == "yaml" else json.loads(value)
    return value


def make_jinja_env(envops: Mapping[str, Any] | None = None) -> SandboxedEnvironment:
    """A Jinja environment with the filters and options Copier gives the template."""
    options = dict(envops or {})
    undefined = options.pop("undefined", None)
    if undefined == "jinja2.StrictUndefined":
        options["undefined"] = jinja2.StrictUndefined
    env = SandboxedEnvironment(
        extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"], **options
    )
    kinds = {"posix": PurePosixPath, "windows": PureWindowsPath, "native": PurePath}
    env.globals["pathjoin"] = lambda *parts, mode="posix": str(kinds[mode](*parts))
    return env


@dataclass
class Question:
    name: str
    spec: dict[str, Any]

    @property
    def type_name(self) -> str:
        if "type" in self.spec:
            return str(self.spec["type"])
        # Copier infers the type from the default's Python type, else treats it as YAML.
        inferred = type(self.spec.get("default")).__name__
        return inferred if inferred in {"bool", "int", "float", "str"} else "yaml"


class AnswerSpace:
    """Enumerates the answer space of one copier.yml."""

    def __init__(self, copier_yml: Path) -> None:
        raw = yaml.safe_load(Path(copier_yml).read_text(encoding="utf-8")) or {}
        self.settings = {k: v for k, v in raw.items() if k.startswith("_")}
        self.questions = [
            Question(k, v if isinstance(v, dict) else {"default": v})
            for k, v in raw.items()
            if not k.startswith("_")
        ]
        self.env = make_jinja_env(self.settings.get("_envops"))
        self._compiled: dict[str, jinja2.Template] = {}
        self._combinations: list[Combination] = []
        self._covers: dict[Any, list[Combination]] = {}
        self._refusals: list[Refusal] = []
        self._explore(0, {}, {})
        self._combinations = _with_unique_ids(self._combinations)

    # Rendering ---------------------------------------------------------------------------

    def render(self, value: Any, context: Mapping[str, Any]) -> Any:
        if isinstance(value, list):
            return [self.render(item, context) for item in value]
        if not isinstance(value, str):
            return value
        if self._is_plain(value):  # e.g. the items of a long list default
            return value
        if value not in self._compiled:  # thousands of combinations reuse a few templates
            self._compiled[value] = self.env.from_string(value)
        return self._compiled[value].render({"_copier_operation": "copy", **context})

    def _is_plain(self, value: str) -> bool:
        """Text Jinja would return unchanged (no markup, no newline it might strip)."""
        markers = (
            self.env.block_start_string,
            self.env.variable_start_string,
            self.env.comment_start_string,
        )
        return (
            not any(m in value for m in markers)
            and "\n" not in value
            and self.env.line_statement_prefix is None
            and self.env.line_comment_prefix is None
        )

    def _validate(self, q: Question, value: Any, context: Mapping[str, Any]) -> str:
        validator = q.spec.get("validator")
        if not validator:
            return ""
        return str(self.render(validator, {**context, q.name: value})).strip()

    def default(self, q: Question, context: Mapping[str, Any]) -> Any:
        if "default" in q.spec:
            return _cast(q.type_name, self.render(q.spec["default"], context))
        if q.spec.get("placeholder"):
            return _cast(q.type_name, self.render(q.spec["placeholder"], context))
        return MISSING

    def choices(self, q: Question, context: Mapping[str, Any]) -> list[tuple[Any, str]]:
        """(value, disabled message) per choice, in the order Copier lists them."""
        choices = q.spec["choices"]
        if isinstance(choices, str):
            choices = yaml.safe_load(self.render(choices, context))
        items = list(choices.items()) if isinstance(choices, dict) else list(choices)
        result = []
        for item in items:
            value = item[1] if isinstance(item, (list, tuple)) else item
            disabled = ""
            if isinstance(value, dict):
                disabled = str(self.render(value.get("validator", ""), context)).strip()
                value = value["value"]
            result.append((_cast(q.type_name, self.render(value, context)), disabled))
        return result

    def is_asked(self, q: Question, context: Mapping[str, Any]) -> bool:
        """Whether the question's ``when`` lets Copier ask it after these answers."""
        return cast_to_bool(self.render(q.spec.get("when", True), context))

    def options(self, q: Question, ctx: Mapping[str, Any]) -> list[tuple[Any, str, str]]:
        """Candidate answers of an asked question: (value, refusal message, refusal kind)."""
        if q.spec.get("multiselect"):
            # Fail loudly rather than enumerate a list answer as if it were one value.
            raise ValueError(f"{q.name}: multiselect questions are not supported by the enumerator")
        if "choices" in q.spec:
            return [
                (value, disabled, "choice") if disabled else (value, *self._check(q, value, ctx))
                for value, disabled in self.choices(q, ctx)
            ]
        if q.type_name == "bool":
            return [(value, *self._check(q, value, ctx)) for value in (True, False)]
        value = self.default(q, ctx)
        if value is MISSING:
            raise ValueError(f"question {q.name!r} has neither a default nor a placeholder")
        return [(value, *self._check(q, value, ctx))]

    def _check(self, q: Question, value: Any, context: Mapping[str, Any]) -> tuple[str, str]:
        return self._validate(q, value, context), "validator"

    # Enumeration -------------------------------------------------------------------------

    def _explore(self, index: int, answers: dict[str, Any], data: dict[str, Any]) -> None:
        if index == len(self.questions):
            self._combinations.append(Combination(self.combination_id(answers), answers, data))
            return
        q = self.questions[index]
        if not self.is_asked(q, answers):
            # Skipped: Copier uses the default without validating it and does not record it.
            default = self.default(q, answers)
            skipped = answers if default is MISSING else {**answers, q.name: default}
            self._explore(index + 1, skipped, data)
            return
        for value, message, kind in self.options(q, answers):
            if message:
                prefix_id = self.combination_id({**answers, q.name: value})
                self._refusals.append(
                    Refusal(
                        id=f"{prefix_id}!{q.name}",
                        question=q.name,
                        value=value,
                        message=message,
                        data={**data, q.name: value},
                        kind=kind,
                    )
                )
                continue
            self._explore(index + 1, {**answers, q.name: value}, {**data, q.name: value})

    def combination_id(self, answers: Mapping[str, Any]) -> str:
        """Short readable id: the values of the branching questions, in question order."""
        tokens = []
        for q in self.questions:
            if q.name not in answers:
                continue
            value = answers[q.name]
            if "choices" in q.spec:
                tokens.append(str(value))
            elif q.type_name == "bool":
                tokens.append(q.name if value else f"no{q.name}")
        return "-".join(tokens) or "default"

    # Public views ------------------------------------------------------------------------

    @property
    def combinations(self) -> list[Combination]:
        return list(self._combinations)

    @property
    def refusals(self) -> list[Refusal]:
        return list(self._refusals)

    def answers_with(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Answers of ``copier copy --defaults --data overrides`` (no validation)."""
        answers: dict[str, Any] = {}
        for q in self.questions:
            value = overrides[q.name] if q.name in overrides else self.default(q, answers)
            if value is not MISSING:
                answers[q.name] = value
        return answers

    def validation_message(self, name: str, overrides: Mapping[str, Any]) -> str:
        """Message the validator of question ``name`` renders for these answers ("" = ok)."""
        q = next(q for q in self.questions if q.name == name)
        answers = self.answers_with(overrides)
        before = {k: v for k, v in answers.items() if k in self._names_before(name)}
        return self._validate(q, answers[name], before)

    def _names_before(self, name: str) -> set[str]:
        names = [q.name for q in self.questions]
        return set(names[: names.index(name)])

    def choice_values(self, name: str, overrides: Mapping[str, Any] | None = None) -> list[Any]:
        """Values a choice question offers (not disabled) after these earlier answers."""
        q = next(q for q in self.questions if q.name == name)
        answers = self.answers_with(overrides or {})
        before = {k: v for k, v in answers.items() if k in self._names_before(name)}
        return [value for value, disabled in self.choices(q, before) if not disabled]

    def question(self, name: str) -> dict[str, Any]:
        return next(q.spec for q in self.questions if q.name == name)

    def default_answers(self) -> dict[str, Any]:
        """What ``copier copy --defaults`` answers (placeholders stand in for required ones)."""
        return self.answers_with({})

    def default_combination(self) -> Combination:
        defaults = self.default_answers()
        for combination in self._combinations:
            if dict(combination.answers) == defaults:
                return combination
        raise ValueError(f"the default answers are not a valid combination: {defaults}")

    def framework_defaults(self) -> list[Combination]:
        """The default combination of each framework: ``--defaults`` plus one framework answer,
        the default's own framework first."""
        if not any(q.name == "framework" for q in self.questions):
            return [self.default_combination()]
        found = []
        for value in self.choice_values("framework"):
            answers = self.answers_with({"framework": value})
            found.append(next(c for c in self._combinations if dict(c.answers) == answers))
        default = self.default_combination()
        return sorted(found, key=lambda c: c.id != default.id)

    def varying_questions(self) -> list[str]:
        """Questions that take more than one value across the valid combinations."""
        return [
            q.name
            for q in self.questions
            if len({_key(c.answers.get(q.name, MISSING)) for c in self._combinations}) > 1
        ]

    def pairwise_cover(
        self,
        attempts: int = 64,
        cost: Callable[[Mapping[str, Any]], float] | None = None,
        holds: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
    ) -> list[Combination]:
        """The default combination of each framework plus a cheap covering array of every
        value pair.

        Covers every pair of values of two varying questions that occurs in some valid
        combination. ``cost`` prices one combination from its answers (tier 2 passes the
        seconds a project of those answers takes); without it every combination costs 1, so
        the cover is simply small. ``holds`` names what a project of those answers contains
        (tier 2 passes its declared dependencies): each such thing is then in two projects of
        the cover wherever two valid combinations hold it, so one can test it at its lowest
        declared version and another at its newest (``lowest_versions_subset``).

        Each attempt is greedy (it takes the combination that covers the most pairs and
        things still uncovered per unit of cost, the earliest on ties) over the candidates in
        one seeded order (the first attempt in enumeration order), then drops every
        combination but the framework defaults that the others make redundant, the dearest
        first. The cheapest cover wins (then the smallest, then the earliest attempt), so the
        result is deterministic. Pairs and things are bits of an int, so an attempt costs
        milliseconds.
        """
        key = (cost, holds)
        if key not in self._covers:
            self._covers[key] = self._cheapest_cover(
                attempts, cost or (lambda answers: 1.0), holds or (lambda answers: ())
            )
        return self._covers[key]

    def lowest_versions_subset(
        self,
        cost: Callable[[Mapping[str, Any]], float] | None = None,
        holds: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
    ) -> list[Combination]:
        """Projects of the pairwise cover (priced by ``cost``, holding ``holds``, as in
        ``pairwise_cover``) that tier 2 runs at the lowest declared versions.

        Every value of every varying question (each framework, each backend, each Python
        version) and everything ``holds`` names (each declared dependency) appears in at least
        one of them, so every dependency's declared lower bound is installed and tested beside
        the others that combination brings. The framework defaults are never picked (the
        default runs the README's inner loop at the newest versions), nor one whose pick would
        leave a value or a thing without a project at the newest versions. Greedy over the
        cover's order: the project holding the most values not yet covered, the earliest on
        ties; deterministic.
        """
        varying = self.varying_questions()
        held = holds or (lambda answers: ())

        def values(c: Combination) -> set[tuple[str, str]]:
            return {(name, _key(c.answers.get(name, MISSING))) for name in varying} | {
                ("holds", thing) for thing in held(c.answers)
            }

        cover = self.pairwise_cover(cost=cost, holds=holds)
        anchors = {c.id for c in self.framework_defaults()}
        candidates = [c for c in cover if c.id not in anchors]
        needed = set().union(*(values(c) for c in candidates)) if candidates else set()
        chosen: list[Combination] = []

        def keeps_newest(pick: Combination) -> bool:
            # Every value must still be tested at the newest versions in some other project.
            rest = [c for c in cover if c not in chosen and c is not pick]
            return values(pick) <= set().union(*(values(c) for c in rest))

        while needed:
            allowed = [c for c in candidates if c not in chosen and keeps_newest(c)]
            pick = max(allowed, key=lambda c: len(values(c) & needed), default=None)
            if pick is None or not values(pick) & needed:
                break
            chosen.append(pick)
            needed -= values(pick)
        return chosen

    def _cheapest_cover(
        self,
        attempts: int,
        cost: Callable[[Mapping[str, Any]], float],
        holds: Callable[[Mapping[str, Any]], Iterable[str]],
    ) -> list[Combination]:
        varying = self.varying_questions()
        bit_of: dict[tuple[Any, ...], int] = {}
        thing_bit: dict[str, int] = {}

        def pair_bits(c: Combination) -> int:
            values = [(name, _key(c.answers.get(name, MISSING))) for name in varying]
            bits = 0
            for pair in itertools.combinations(values, 2):
                bits |= 1 << bit_of.setdefault(pair, len(bit_of))
            return bits

        def thing_bits(c: Combination) -> int:
            return functools.reduce(
                operator.or_,
                (1 << thing_bit.setdefault(thing, len(thing_bit)) for thing in holds(c.answers)),
                0,
            )

        Item = tuple[Combination, int, int, float]  # combination, pairs, things, cost
        candidates: list[Item] = [
            (c, pair_bits(c), thing_bits(c), cost(c.answers)) for c in self._combinations
        ]
        pairs_required = functools.reduce(operator.or_, (p for _, p, _, _ in candidates), 0)
        once, twice = _held_once_and_twice(things for _, _, things, _ in candidates)
        anchors: list[Item] = [
            (c, pair_bits(c), thing_bits(c), cost(c.answers)) for c in self.framework_defaults()
        ]

        def complete(cover: list[Item]) -> bool:
            pairs = functools.reduce(operator.or_, (p for _, p, _, _ in cover), 0)
            return pairs == pairs_required and _held_once_and_twice(
                things for _, _, things, _ in cover
            ) == (once, twice)

        def price(cover: list[Item]) -> tuple[float, int]:
            return sum(price for _, _, _, price in cover), len(cover)

        best: list[Item] = []
        for attempt in range(attempts):
            order = list(candidates)
            if attempt:
                random.Random(attempt).shuffle(order)
            chosen = list(anchors)
            pairs = functools.reduce(operator.or_, (p for _, p, _, _ in anchors), 0)
            seen, seen_twice = _held_once_and_twice(things for _, _, things, _ in anchors)

            while pairs != pairs_required or (seen, seen_twice) != (once, twice):
                # Per unit of cost: pairs not covered yet, things not seen yet, and things seen
                # once that two combinations can hold.
                missing, unseen, once_more = ~pairs, ~seen, seen & twice & ~seen_twice
                pick = max(
                    order,
                    key=lambda item, m=missing, u=unseen, o=once_more: (
                        (
                            (item[1] & m).bit_count()
                            + (item[2] & u).bit_count()
                            + (item[2] & o).bit_count()
                        )
                        / item[3]
                    ),
                )
                chosen.append(pick)
                pairs |= pick[1]
                seen_twice |= pick[2] & seen & twice
                seen |= pick[2]
            # Dearest first (the latest on ties), so a redundant dear project goes before a
            # cheap one.
            for item in sorted(reversed(chosen[len(anchors) :]), key=lambda i: -i[3]):
                others = [other for other in chosen if other is not item]
                if complete(others):
                    chosen = others
            if not best or price(chosen) < price(best):
                best = chosen
        best = _swap_for_cheaper(best, len(anchors), candidates, pairs_required, once, twice)
        return [c for c, _, _, _ in best]


def _swap_for_cheaper(
    cover: list[tuple[Combination, int, int, float]],
    fixed: int,
    candidates: list[tuple[Combination, int, int, float]],
    pairs_required: int,
    once: int,
    twice: int,
) -> list[tuple[Combination, int, int, float]]:
    """Local search on a complete cover: replace one or two of its projects (never the first
    ``fixed``) by one cheaper project that holds every pair and thing only they held, the
    dearest first, until no such swap is left. Greedy covers leave such swaps (a dear
    project picked early for many pairs, most of which later picks also cover)."""
    by_cost = sorted(candidates, key=lambda item: item[3])  # stable: the earliest on ties
    while True:
        movable = cover[fixed:]
        groups = [[item] for item in movable] + [
            list(g) for g in itertools.combinations(movable, 2)
        ]
        for group in sorted(groups, key=lambda g: -sum(item[3] for item in g)):
            others = [item for item in cover if all(item is not g for g in group)]
            pairs = functools.reduce(operator.or_, (p for _, p, _, _ in others), 0)
            seen, seen_twice = _held_once_and_twice(things for _, _, things, _ in others)
            if twice & ~seen:  # a thing only the group held, twice: one project cannot
                continue
            need_pairs = pairs_required & ~pairs
            need_things = (once & ~seen) | (twice & ~seen_twice)
            budget = sum(item[3] for item in group)
            swap = next(
                (
                    item
                    for item in itertools.takewhile(lambda i, b=budget: i[3] < b, by_cost)
                    if item[1] & need_pairs == need_pairs and item[2] & need_things == need_things
                ),
                None,
            )
            if swap is not None:
                cover = [*others, swap]
                break
        else:
            return cover


def _held_once_and_twice(holdings: Iterable[int]) -> tuple[int, int]:
    """Bits set in at least one of ``holdings``, and bits set in at least two."""
    once = twice = 0
    for bits in holdings:
        twice |= once & bits
        once |= bits
    return once, twice


def _key(value: Any) -> str:
    """Hashable, type-aware form of an answer (a list or dict answer stays comparable)."""
    return json.dumps(value, sort_keys=True, default=str)


def _with_unique_ids(combinations: list[Combination]) -> list[Combination]:
    """Ids must be unique pytest ids; suffix a counter should two ever stringify alike."""
    seen: dict[str, int] = {}
    result = []
    for c in combinations:
        n = seen.get(c.id, 0)
        seen[c.id] = n + 1
        result.append(c if n == 0 else Combination(f"{c.id}~{n}", c.answers, c.data))
    return result


@functools.cache
def answer_space(copier_yml: Path = COPIER_YML) -> AnswerSpace:
    return AnswerSpace(Path(copier_yml))


def all_combinations(copier_yml: Path = COPIER_YML) -> list[Combination]:
    return answer_space(copier_yml).combinations


def refused_combinations(copier_yml: Path = COPIER_YML) -> list[Refusal]:
    return answer_space(copier_yml).refusals


def default_answers(copier_yml: Path = COPIER_YML) -> dict[str, Any]:
    return answer_space(copier_yml).default_answers()


def default_combination(copier_yml: Path = COPIER_YML) -> Combination:
    return answer_space(copier_yml).default_combination()


def pairwise_cover(copier_yml: Path = COPIER_YML) -> list[Combination]:
    return answer_space(copier_yml).pairwise_cover()


def sample(copier_yml: Path = COPIER_YML, size: int = 3) -> list[Combination]:
    """Small deterministic sample for the inner loop: the default, then the most different
    combinations (the first ones the pairwise cover picks)."""
    chosen = pairwise_cover(copier_yml)[:size]
    rest = [c for c in all_combinations(copier_yml) if c not in chosen]
    return chosen + rest[: size - len(chosen)]
