"""Conditions on workflow edges, as small JSON objects any language can write.

A condition is evaluated over one value (see ``Step.when``) and is one of:

- ``{"path": "a.b.0", "op": "eq", "value": 1}``: the value at ``path`` (dot-separated keys
  and list indexes; ``""`` is the whole value) compared with ``op``: ``eq``, ``ne``, ``gt``,
  ``ge``, ``lt``, ``le``, ``in`` (the value is one of a list), ``contains`` (a list or
  string holds ``value``), ``exists``, ``truthy``, ``falsy`` (the last three take no value);
- ``{"all": [c, ...]}``, ``{"any": [c, ...]}``, ``{"not": c}``.

A missing path is never an error: it reads as absent (``exists`` is false, comparisons are
false, ``falsy`` is true). No code is ever evaluated.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from atp.core.errors import InvalidInput
from atp.core.model import JSON

__all__ = ["OPERATORS", "evaluate", "validate_condition"]

_MISSING = object()
MAX_DEPTH = 16

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda found, value: found in value,
    "contains": lambda found, value: isinstance(found, list | str) and value in found,
}
_UNARY = ("exists", "truthy", "falsy")
OPERATORS = (*_COMPARE, *_UNARY)
"""Every ``op`` a path condition may name."""


def validate_condition(condition: JSON, depth: int = 0) -> dict[str, Any]:
    """Return ``condition`` if it is well formed; InvalidInput naming what is wrong."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"condition is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(condition, Mapping):
        raise InvalidInput(f"a condition must be a JSON object, got {condition!r}")
    keys = set(condition)
    if keys in ({"all"}, {"any"}):
        parts = condition["all" if "all" in keys else "any"]
        if not isinstance(parts, list) or not parts:
            raise InvalidInput(f"'all'/'any' take a non-empty list of conditions, got {parts!r}")
        for part in parts:
            validate_condition(part, depth + 1)
    elif keys == {"not"}:
        validate_condition(condition["not"], depth + 1)
    else:
        _validate_path_condition(condition)
    return dict(condition)


def evaluate(condition: Mapping[str, Any], value: JSON) -> bool:
    """Return whether ``condition`` (validated) holds for ``value``."""
    if "all" in condition:
        return all(evaluate(part, value) for part in condition["all"])
    if "any" in condition:
        return any(evaluate(part, value) for part in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], value)
    found = _lookup(value, condition.get("path", ""))
    op = condition["op"]
    if op == "exists":
        return found is not _MISSING
    if op in ("truthy", "falsy"):
        truth = found is not _MISSING and bool(found)
        return truth if op == "truthy" else not truth
    if found is _MISSING:
        return False
    try:
        return bool(_COMPARE[op](found, condition.get("value")))
    except TypeError:  # comparing a string with a number, say: the condition does not hold
        return False


def _validate_path_condition(condition: Mapping[str, Any]) -> None:
    unknown = set(condition) - {"path", "op", "value"}
    if unknown:
        raise InvalidInput(
            f"unknown condition keys {sorted(unknown)}; a condition is "
            "{path, op, value}, {all: [...]}, {any: [...]} or {not: ...}"
        )
    path, op = condition.get("path", ""), condition.get("op")
    if not isinstance(path, str):
        raise InvalidInput(f"condition path must be a string, got {path!r}")
    if op not in OPERATORS:
        raise InvalidInput(f"condition op must be one of {', '.join(OPERATORS)}; got {op!r}")
    if op in _UNARY and "value" in condition:
        raise InvalidInput(f"condition op {op!r} takes no value")
    if op == "in" and not isinstance(condition.get("value"), list):
        raise InvalidInput("condition op 'in' takes a list value")


def _lookup(value: JSON, path: str) -> Any:
    if not path:
        return value
    for key in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
        elif (
            isinstance(value, list)
            and key.lstrip("-").isdigit()
            and -len(value) <= int(key) < len(value)
        ):
            value = value[int(key)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value
