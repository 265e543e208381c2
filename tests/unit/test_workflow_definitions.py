"""Workflow definitions, their JSON form and conditions: bad ones fail when defined."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atp.core.errors import InvalidInput
from atp.core.workflows import Definition, Step, StepKind, definition_from_dict, evaluate
from atp.core.workflows.conditions import validate_condition
from atp.core.workflows.definition import definition_to_dict
from atp.sdk.workflow import Workflow, where


def signup() -> Workflow:
    wf = Workflow("user.signup", version=3)
    create = wf.step("users.create", retries=2, timeout="30s")
    mail = wf.step("mail.welcome", after=create)
    crm = wf.step("crm.sync", after=create, compensate="crm.unsync")
    wait = wf.wait_signal("email.confirmed", after=[mail, crm], timeout=3600)
    nap = wf.sleep("1h", after=wait, name="cool-off")
    wf.step("users.activate", after=nap, when=lambda d: d["ok"] == True)  # noqa: E712
    return wf


def test_the_dsl_builds_a_checked_definition() -> None:
    definition = signup().definition
    assert definition.name == "user.signup"
    assert definition.version == 3
    create = definition.step("users.create")
    assert (create.max_attempts, create.timeout, create.after) == (3, 30.0, ())
    assert definition.step("email.confirmed").kind is StepKind.SIGNAL
    assert definition.step("cool-off").duration == 3600.0
    assert definition.order()[0] == "users.create"
    assert definition.order()[-1] == "users.activate"


def test_the_json_form_round_trips_through_text() -> None:
    definition = signup().definition
    text = json.dumps(definition_to_dict(definition))
    assert definition_from_dict(json.loads(text)) == definition
    assert Workflow.from_json(json.loads(text)).definition == definition


def test_a_duplicate_step_name_is_refused_at_once() -> None:
    wf = Workflow("dup")
    wf.step("a.b")
    with pytest.raises(InvalidInput, match=r"step named 'a\.b' already"):
        wf.step("a.b")
    wf.step("a.b", name="second")  # a name of its own makes it fine


def test_an_unknown_parent_is_refused_at_once() -> None:
    wf = Workflow("unknown")
    with pytest.raises(InvalidInput, match="not a step"):
        wf.step("a.b", after="nowhere")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [
                {"name": "a", "subject": "x.a", "after": ["b"]},
                {"name": "b", "subject": "x.b", "after": ["a"]},
            ],
            "cycle",
        ),
        ([{"name": "a", "subject": "x.a", "after": ["a"]}], "after itself"),
        ([{"name": "a", "subject": "x.a"}, {"name": "a", "subject": "x.b"}], "duplicate"),
        ([{"name": "a", "subject": "x.a", "after": ["ghost"]}], "unknown steps"),
        ([{"name": "a"}], "without a subject"),
        ([{"name": "a", "subject": "bad subject"}], "subject"),
        ([{"name": "a", "kind": "signal"}], "without a signal"),
        ([{"name": "a", "kind": "sleep", "duration": -1}], "duration"),
        ([{"name": "a", "kind": "sleep", "duration": 1, "subject": "x.y"}], "takes no subject"),
        ([{"name": "a", "kind": "dance"}], "kind"),
        ([{"name": "a", "subject": "x.a", "colour": 1}], "unknown keys"),
        ([{"name": "a", "subject": "x.a", "when": {"path": "x", "op": "~="}}], "op"),
        ([{"name": "a", "subject": "x.a", "max_attempts": 0}], "max_attempts"),
        ([], "no steps"),
    ],
)
def test_bad_json_definitions_are_refused(steps: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        definition_from_dict({"name": "bad", "version": 1, "steps": steps})


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"name": "x"},
        {"name": "", "version": 1, "steps": []},
        {"name": "x", "version": 0, "steps": [{"name": "a", "subject": "x.a"}]},
        {"name": "x", "version": 1, "steps": [{"name": "a", "subject": "x.a"}], "extra": 1},
    ],
)
def test_malformed_definitions_are_invalid(data: Any) -> None:
    with pytest.raises(InvalidInput):
        definition_from_dict(data)


def test_a_three_step_cycle_names_its_steps() -> None:
    steps = (
        Step("a", after=("c",), subject="x.a"),
        Step("b", after=("a",), subject="x.b"),
        Step("c", after=("b",), subject="x.c"),
    )
    with pytest.raises(InvalidInput, match=r"cycle among steps \['a', 'b', 'c'\]"):
        Definition("loop", 1, steps).check()


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ({"path": "approved", "op": "truthy"}, {"approved": True}, True),
        ({"path": "approved", "op": "truthy"}, {}, False),
        ({"path": "approved", "op": "falsy"}, {}, True),
        ({"path": "a.b.1", "op": "eq", "value": 5}, {"a": {"b": [4, 5]}}, True),
        ({"path": "a.-1", "op": "eq", "value": 5}, {"a": [4, 5]}, True),
        ({"path": "n", "op": "gt", "value": 3}, {"n": "text"}, False),
        ({"path": "n", "op": "le", "value": 3}, {"n": 3}, True),
        ({"path": "", "op": "in", "value": ["a", "b"]}, "b", True),
        ({"path": "tags", "op": "contains", "value": "vip"}, {"tags": ["vip"]}, True),
        ({"path": "x", "op": "exists"}, {"x": None}, True),
        ({"path": "x", "op": "ne", "value": 1}, {}, False),
        (
            {"all": [{"path": "a", "op": "truthy"}, {"not": {"path": "b", "op": "truthy"}}]},
            {"a": 1, "b": 0},
            True,
        ),
        ({"any": [{"path": "a", "op": "truthy"}, {"path": "b", "op": "truthy"}]}, {}, False),
    ],
)
def test_conditions_evaluate(condition: dict[str, Any], value: Any, expected: bool) -> None:
    assert evaluate(validate_condition(condition), value) is expected


@pytest.mark.parametrize(
    "condition",
    [
        [],
        {"all": []},
        {"not": 1},
        {"path": 1, "op": "eq"},
        {"path": "x", "op": "exists", "value": 1},
        {"path": "x", "op": "in", "value": 3},
        {"path": "x", "op": "eq", "extra": 1},
    ],
)
def test_malformed_conditions_are_invalid(condition: Any) -> None:
    with pytest.raises(InvalidInput):
        validate_condition(condition)


def test_lambdas_become_json_conditions() -> None:
    wf = Workflow("lambdas")
    wf.step("a.b")
    cases = {
        "plain": (lambda d: d["approved"], {"path": "approved", "op": "truthy"}),
        "compare": (
            lambda d: d["order"]["total"] >= 100,
            {"path": "order.total", "op": "ge", "value": 100},
        ),
        "combined": (
            lambda d: (d["a"] == 1) | ~d["b"],
            {"any": [{"path": "a", "op": "eq", "value": 1}, {"path": "b", "op": "falsy"}]},
        ),
        "member": (
            lambda d: d["tier"].is_in(["gold", "vip"]),
            {"path": "tier", "op": "in", "value": ["gold", "vip"]},
        ),
    }
    for name, (fn, expected) in cases.items():
        wf.step("x.y", name=name, after="a.b", when=fn)
        assert wf.definition.step(name).when == expected
    wf.step("x.y", name="where", after="a.b", when=where("n") < 3)
    assert wf.definition.step("where").when == {"path": "n", "op": "lt", "value": 3}


@pytest.mark.parametrize(
    "fn",
    [
        lambda d: d["a"] and d["b"],
        lambda d: not d["a"],
        lambda d: len(d) > 1,
        lambda d: "x" in d["tags"],
        lambda d: True,
        lambda d: d["a"] == object(),
    ],
)
def test_lambdas_that_cannot_become_json_are_refused(fn: Any) -> None:
    wf = Workflow("refused")
    with pytest.raises(InvalidInput):
        wf.step("a.b", when=fn)
    assert wf._steps == []
