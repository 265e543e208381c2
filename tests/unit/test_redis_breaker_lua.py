"""The breaker scripts' constants, pinned to the Python they mirror: the waiter-list
prefixes no room opens, the circuits' names, and the order of a state's fields."""

from __future__ import annotations

import re

from atp.core.flow.breaker import BREAKER_PREFIX, Circuit
from atp.core.flow.rules import PAUSE_PREFIX
from atp.plugins.redis._breakers import _HASH_FIELDS
from atp.plugins.redis._connection import Scripts


def lua_constant(script: str, name: str) -> str:
    source, _ = Scripts.source(script)
    found = re.search(rf"^local {name} = (.+)$", source, flags=re.MULTILINE)
    assert found is not None, f"{script}.lua defines no {name}"
    return found.group(1)


def strings(value: str) -> list[str]:
    return re.findall(r"'([^']*)'", value)


def test_the_flow_scripts_hold_back_pause_and_breaker_lists() -> None:
    prefixes = strings(lua_constant("flow_park", "PAUSE_PREFIX, BREAKER_PREFIX"))
    assert prefixes == [PAUSE_PREFIX, BREAKER_PREFIX]
    assert {len(prefix) for prefix in prefixes} == {2}, "is_held compares two bytes"


def test_the_breaker_scripts_name_the_circuits_and_fields_as_python() -> None:
    for script in ("breaker_observe", "breaker_probe", "breaker_reset"):
        circuits = strings(lua_constant(script, "CLOSED, OPEN, HALF_OPEN"))
        assert circuits == [Circuit.CLOSED, Circuit.OPEN, Circuit.HALF_OPEN]
        assert tuple(strings(lua_constant(script, "FIELDS"))) == _HASH_FIELDS
