"""The Redis scripts' error-history bound and entry marker, pinned to the Python they mirror.

``_common.lua`` cuts a task's error history without decoding its JSON: it finds entries
by the text each one starts with. Both the bound and that text must be what Python uses.
"""

from __future__ import annotations

import re

import pytest

from atp.core.model import ERROR_HISTORY, AttemptError
from atp.plugins.redis._connection import Scripts
from atp.plugins.redis._records import encode_error


def lua_constant(script: str, name: str) -> str:
    source, _ = Scripts.source(script)
    found = re.search(rf"^local {name} = (.+)$", source, flags=re.MULTILINE)
    assert found is not None, f"{script}.lua defines no {name}"
    return found.group(1)


@pytest.mark.parametrize("script", ["finish", "finish_ack", "recover"])
def test_every_appending_script_keeps_the_models_history(script: str) -> None:
    assert int(lua_constant(script, "ERROR_HISTORY")) == ERROR_HISTORY


@pytest.mark.parametrize("traceback", [None, "Traceback: x"])
def test_every_stored_error_starts_with_the_entry_marker(traceback: str | None) -> None:
    marker = lua_constant("finish", "ENTRY").strip("'").encode()
    error = AttemptError(7, 1.5, '{"attempt":1}', "error", traceback)
    assert encode_error(error).startswith(marker)
    recover, _ = Scripts.source("recover")
    assert f"local err = '{marker.decode()}'" in recover  # the lease error recover.lua writes
