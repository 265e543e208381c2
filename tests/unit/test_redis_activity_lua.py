"""The Redis scripts' activity constants, pinned to the ports they mirror.

``_common.lua`` buckets the attempts that ended by ``ACTIVITY_BUCKET`` and lets a
bucket's key expire two buckets after ``ACTIVITY_KEPT``; both must be what Python says.
"""

from __future__ import annotations

import re

from atp.core.ports import ACTIVITY_BUCKET, ACTIVITY_KEPT
from atp.plugins.redis._connection import Scripts


def lua_constant(script: str, name: str) -> str:
    source, _ = Scripts.source(script)
    found = re.search(rf"^local {name} = (.+)$", source, flags=re.MULTILINE)
    assert found is not None, f"{script}.lua defines no {name}"
    return found.group(1)


def test_buckets_and_their_expiry_are_the_ports() -> None:
    assert float(lua_constant("finish", "ACTIVITY_BUCKET")) == ACTIVITY_BUCKET
    assert float(lua_constant("finish", "ACTIVITY_TTL")) == ACTIVITY_KEPT + 2 * ACTIVITY_BUCKET
