"""Unit tests of combinations.py on synthetic copier.yml files, checked against Copier itself.

The real copier.yml may not (yet) use every feature the enumerator supports (when, per-choice
validators, cross-question validators), so these templates do, and each enumerated
combination and refusal is confirmed by rendering with Copier.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from combinations import AnswerSpace, answer_space
from copier import run_copy
from synthetic import NAMES, SYNTHETIC, make_template

pytestmark = [pytest.mark.tier1, pytest.mark.fast]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnswerSpace]:
    root = make_template(tmp_path_factory.mktemp("synthetic"), SYNTHETIC)
    return root, AnswerSpace(root / "copier.yml")


def test_enumeration_follows_choices_bools_when_and_validators(synthetic) -> None:
    _, space = synthetic
    combos = space.combinations
    # deploy x scheduler: k8s allows 3 schedulers, compose 2 (CronJob disabled) -> 5;
    # db: False, or True with 2 pools -> 3; tracing: 2, or 1 when scheduler is none.
    assert len(combos) == (2 * 3 + 2 * 3 + 1 * 3) + (2 * 3 + 1 * 3)
    assert len({c.id for c in combos}) == len(combos)
    for c in combos:
        assert list(c.answers) == NAMES
        assert c.answers["name"] == "Demo App"  # placeholder stands in for a missing default
        assert c.answers["slug"] == "demo-app"  # rendered default, with an ansible filter
        assert c.answers["mode"] == "plain"  # shorthand question: its value is the default
        # A question skipped by `when` takes its default and is not passed as data.
        assert ("replicas" in c.data) == (c.answers["deploy"] == "compose")
        assert ("pool" in c.data) == c.answers["db"]
        assert c.answers["replicas"] == 2
        assert not (c.answers["deploy"] == "compose" and c.answers["scheduler"] == "cronjob")
        assert not (c.answers["tracing"] and c.answers["scheduler"] == "none")


def test_refusals_record_the_message(synthetic) -> None:
    _, space = synthetic
    refusals = space.refusals
    choice = [r for r in refusals if r.kind == "choice"]
    assert [(r.question, r.value, r.message) for r in choice] == [
        ("scheduler", "cronjob", "CronJob scheduler only with Kubernetes")
    ]
    assert choice[0].data["deploy"] == "compose"
    validator = [r for r in refusals if r.kind == "validator"]
    assert len(validator) == 2 * 3  # (k8s|compose, none) x (db off, db with 2 pools)
    assert {(r.question, r.value, r.message) for r in validator} == {
        ("tracing", True, "tracing needs a scheduler")
    }
    assert len({r.id for r in refusals}) == len(refusals)


def test_defaults_and_validation_messages(synthetic) -> None:
    _, space = synthetic
    defaults = space.default_answers()
    assert defaults == space.default_combination().answers
    assert (defaults["deploy"], defaults["scheduler"], defaults["db"]) == ("k8s", "inproc", False)
    assert space.validation_message("name", {"name": "lower"}) == "name must start with a capital"
    assert space.validation_message("name", {"name": "Fine Name"}) == ""
    assert space.choice_values("scheduler", {"deploy": "compose"}) == ["inproc", "none"]


def test_pairwise_cover_covers_every_pair_deterministically(synthetic) -> None:
    root, space = synthetic
    cover = space.pairwise_cover()
    assert cover[0] == space.default_combination()
    again = AnswerSpace(root / "copier.yml").pairwise_cover()
    assert [c.id for c in cover] == [c.id for c in again]
    varying = space.varying_questions()
    assert varying == ["deploy", "scheduler", "db", "pool", "tracing"]

    def pairs(combos):
        return {
            ((a, c.answers[a]), (b, c.answers[b]))
            for c in combos
            for a, b in itertools.combinations(varying, 2)
        }

    assert pairs(cover) == pairs(space.combinations)
    assert len(cover) < len(space.combinations)


def test_pairwise_cover_is_much_smaller_than_the_product(tmp_path: Path) -> None:
    questions = {
        f"q{i}": {"type": "str", "choices": {v: v for v in "abc"}, "default": "a"} for i in range(5)
    }
    (tmp_path / "copier.yml").write_text(yaml.safe_dump(questions), encoding="utf-8")
    space = AnswerSpace(tmp_path / "copier.yml")
    assert len(space.combinations) == 3**5
    cover = space.pairwise_cover()
    # 11 is the smallest covering array of strength 2 for five 3-valued questions (CAN(2,5,3));
    # the one greedy pass the cover used to be found 15.
    assert len(cover) == 11
    assert len({(c.answers["q0"], c.answers["q4"]) for c in cover}) == 9

    def pairs(combos):
        return {
            (a, c.answers[a], b, c.answers[b])
            for c in combos
            for a, b in itertools.combinations(sorted(c.answers), 2)
        }

    # No combination but the default is redundant: each one covers a pair no other does.
    for dropped in cover[1:]:
        assert pairs(c for c in cover if c is not dropped) != pairs(cover), dropped.id


def test_every_combination_renders_as_enumerated(synthetic, tmp_path: Path) -> None:
    root, space = synthetic
    for c in space.combinations:
        dst = tmp_path / c.id
        run_copy(str(root), str(dst), data=dict(c.data), defaults=True, unsafe=False, quiet=True)
        recorded = yaml.safe_load((dst / ".copier-answers.yml").read_text(encoding="utf-8"))
        recorded.pop("_src_path")
        assert recorded == dict(c.data), c.id
        seen = yaml.safe_load((dst / "seen.yml").read_text(encoding="utf-8"))
        assert seen == dict(c.answers), c.id


def test_every_refusal_is_refused_by_copier(synthetic, tmp_path: Path) -> None:
    root, space = synthetic
    for r in space.refusals:
        dst = tmp_path / r.id
        with pytest.raises(ValueError, match=r.message):
            run_copy(str(root), str(dst), data=dict(r.data), defaults=True, quiet=True)
        assert not dst.exists() or not any(dst.iterdir())


def test_real_copier_yml_is_enumerable() -> None:
    space = answer_space()
    assert space.combinations, "copier.yml yields no valid combination"
    assert space.default_combination() in space.combinations
    # Every choice value and both bool values appear in a combination or a refusal.
    for q in space.questions:
        choices = q.spec.get("choices")
        if isinstance(choices, dict):
            expected = {str(v["value"] if isinstance(v, dict) else v) for v in choices.values()}
        elif q.type_name == "bool":
            expected = {"True", "False"}
        else:
            continue
        seen = {str(c.answers[q.name]) for c in space.combinations}
        seen |= {str(r.value) for r in space.refusals if r.question == q.name}
        assert expected <= seen, f"{q.name}: {sorted(expected - seen)} never enumerated"


def test_lowest_versions_subset_holds_every_value_and_leaves_each_one_at_the_newest(
    tmp_path: Path,
) -> None:
    questions = {
        f"q{i}": {"type": "str", "choices": {v: v for v in "abcd"[: 3 + i % 2]}, "default": "a"}
        for i in range(5)
    }
    (tmp_path / "copier.yml").write_text(yaml.safe_dump(questions), encoding="utf-8")
    space = AnswerSpace(tmp_path / "copier.yml")
    cover = space.pairwise_cover()
    lowest = space.lowest_versions_subset()
    newest = [c for c in cover if c not in lowest]

    def values(combos):
        return {(q, c.answers[q]) for c in combos for q in space.varying_questions()}

    assert lowest and all(c in cover for c in lowest)
    assert space.default_combination() not in lowest
    assert values(lowest) == values(cover)
    assert values(newest) == values(cover)
    assert len(lowest) < len(cover) / 2
    assert [c.id for c in AnswerSpace(tmp_path / "copier.yml").lowest_versions_subset()] == [
        c.id for c in lowest
    ]


def test_a_priced_cover_puts_dear_values_in_as_few_projects_as_the_pairs_allow(
    tmp_path: Path,
) -> None:
    # q0 is a yes/no question whose "yes" is dear (a database, say); four three-valued ones.
    questions = {"q0": {"type": "str", "choices": {"no": "no", "yes": "yes"}, "default": "no"}}
    questions |= {
        f"q{i}": {"type": "str", "choices": {v: v for v in "abc"}, "default": "a"}
        for i in range(1, 5)
    }
    (tmp_path / "copier.yml").write_text(yaml.safe_dump(questions), encoding="utf-8")
    space = AnswerSpace(tmp_path / "copier.yml")

    def cost(answers) -> float:
        return 10.0 if answers["q0"] == "yes" else 1.0

    plain, priced = space.pairwise_cover(), space.pairwise_cover(cost=cost)
    # q0=yes pairs with the three values of each other question: three projects can hold them
    # all. The smallest cover (10 projects) needs five; the priced one takes more projects.
    assert sum(c.answers["q0"] == "yes" for c in plain) == 5
    assert sum(c.answers["q0"] == "yes" for c in priced) == 3
    assert len(priced) > len(plain)
    assert sum(map(cost, (c.answers for c in priced))) < sum(map(cost, (c.answers for c in plain)))

    def pairs(combos):
        return {
            (a, c.answers[a], b, c.answers[b])
            for c in combos
            for a, b in itertools.combinations(sorted(c.answers), 2)
        }

    assert pairs(priced) == pairs(space.combinations)


def test_what_a_project_holds_is_in_two_projects_one_of_them_at_the_lowest_versions(
    tmp_path: Path,
) -> None:
    questions = {
        f"q{i}": {"type": "str", "choices": {v: v for v in "abc"}, "default": "a"} for i in range(4)
    }
    (tmp_path / "copier.yml").write_text(yaml.safe_dump(questions), encoding="utf-8")
    space = AnswerSpace(tmp_path / "copier.yml")

    def cost(answers) -> float:
        return 10.0 if answers["q0"] == "c" else 1.0

    def holds(answers) -> set[str]:  # a package only one pair of answers declares
        return {"pair-only"} if (answers["q0"], answers["q1"]) == ("c", "c") else set()

    # Priced alone, the cover holds the pair once; asked to hold it, twice.
    assert sum(bool(holds(c.answers)) for c in space.pairwise_cover(cost=cost)) == 1
    cover = space.pairwise_cover(cost=cost, holds=holds)
    assert sum(bool(holds(c.answers)) for c in cover) == 2
    lowest = space.lowest_versions_subset(cost=cost, holds=holds)
    assert sum(bool(holds(c.answers)) for c in lowest) == 1


def test_tier2_installs_every_declared_dependency_at_its_lowest_and_at_its_newest() -> None:
    from test_tier2_runtime import COVER, LOWEST, declared_dependencies

    space = answer_space()
    declared = set().union(*(declared_dependencies(c.answers) for c in space.combinations))
    lowest = set().union(*(declared_dependencies(c.answers) for c in LOWEST))
    newest = set().union(*(declared_dependencies(c.answers) for c in COVER if c not in LOWEST))
    assert declared - lowest == set()
    assert declared - newest == set()
    assert {"django", "psycopg", "alembic", "celery"} <= declared  # the reader reads them
    for question in ("framework", "cache_backend", "database", "storage_provider", "scheduler"):
        every = {c.answers[question] for c in space.combinations}
        assert {c.answers[question] for c in LOWEST} == every, question
    assert not {c.id for c in LOWEST} & {c.id for c in space.framework_defaults()}


def test_the_swap_pass_replaces_dear_projects_by_a_cheaper_one_that_holds_what_they_held() -> None:
    from combinations import Combination, _swap_for_cheaper

    def item(name: str, pairs: int, things: int, cost: float):
        return (Combination(name, {}, {}), pairs, things, cost)

    anchor = item("anchor", 0b0001, 0b01, 1.0)
    dear_a, dear_b = item("a", 0b0110, 0b10, 5.0), item("b", 0b1000, 0b00, 5.0)
    other = item("other", 0b0010, 0b10, 1.0)  # holds thing 2 a second time
    cheap = item("cheap", 0b1100, 0b10, 3.0)  # a's and b's pairs, for less than either pair
    dearer = item("dearer", 0b1110, 0b10, 20.0)
    cover = [anchor, dear_a, dear_b, other]
    swapped = _swap_for_cheaper(
        cover, 1, [dearer, cheap, *cover], pairs_required=0b1111, once=0b11, twice=0b10
    )
    assert [c.id for c, *_ in swapped] == ["anchor", "other", "cheap"]
    # Nothing cheaper holds what a project alone holds: the cover is kept as it is.
    assert _swap_for_cheaper(swapped, 1, [dearer, *swapped], 0b1111, 0b11, 0b10) == swapped
