"""The registry's wire format and input checks, shared by every Coordinator that offers
``atp.core.ports.Registry`` (ADR 0041).

A member is stored as compact JSON (``encode_member``); the backend keeps its expiry
beside it (a ZSET score, a column, an etcd lease) and sets ``expires_at`` on reading.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from atp.core.codec import DECODE_ERRORS, dumps, loads
from atp.core.errors import InvalidInput
from atp.core.ports import Member

__all__ = [
    "check_announce",
    "check_names",
    "decode_member",
    "decode_members",
    "encode_member",
    "expiring",
    "member_from_dict",
    "member_to_dict",
]

log = logging.getLogger("atp.registry")
_FIELDS = tuple(field.name for field in dataclasses.fields(Member))


def member_to_dict(member: Member) -> dict[str, Any]:
    """The JSON object of ``member``, every field included (``patterns`` as a list)."""
    data = {field: getattr(member, field) for field in _FIELDS}
    data["patterns"] = list(member.patterns)
    return data


def member_from_dict(data: Mapping[str, Any], expires_at: float | None = None) -> Member:
    """The member ``member_to_dict`` wrote, with ``expires_at`` if given; KeyError or
    TypeError if a field is missing or of the wrong type (``DECODE_ERRORS`` covers both)."""
    patterns = _typed(data, "patterns", list)
    if not all(isinstance(pattern, str) for pattern in patterns):
        raise TypeError("member field 'patterns': expected a list of strings")
    return Member(
        name=_typed(data, "name", str),
        role=_typed(data, "role", str),
        host=_typed(data, "host", str),
        pid=_typed(data, "pid", int),
        version=_typed(data, "version", str),
        group=_typed(data, "group", str),
        patterns=tuple(patterns),
        concurrency=_typed(data, "concurrency", int),
        running=_typed(data, "running", int),
        started_at=float(_typed(data, "started_at", (int, float))),
        seen_at=float(_typed(data, "seen_at", (int, float))),
        expires_at=float(data.get("expires_at", 0.0) if expires_at is None else expires_at),
    )


def encode_member(member: Member) -> bytes:
    """Compact JSON of ``member``, as the backends store it."""
    return dumps(member_to_dict(member), f"member {member.name!r}")


def decode_member(data: bytes | str, expires_at: float | None = None) -> Member:
    """The member ``encode_member`` wrote, with ``expires_at`` if given (the backend's own
    record of the expiry wins over the one in the JSON)."""
    return member_from_dict(loads(data), expires_at)


def decode_members(
    rows: Iterable[tuple[bytes | str, float | None]], role: str | None = None
) -> list[Member]:
    """The members of ``(encoding, expires_at)`` rows (of ``role``, if given), sorted by
    name; an undecodable row is logged and left out, as it names no one to list. An
    ``expires_at`` of None keeps the one in the encoding."""
    found = []
    for data, expires_at in rows:
        try:
            member = decode_member(data, expires_at)
        except DECODE_ERRORS as exc:
            log.warning("registry: a member's record cannot be decoded, left out: %s", exc)
            continue
        if role is None or member.role == role:
            found.append(member)
    return sorted(found, key=lambda member: member.name)


def expiring(member: Member, expires_at: float) -> Member:
    """``member`` listed until ``expires_at``."""
    return dataclasses.replace(member, expires_at=expires_at)


def check_announce(members: Sequence[Member], ttl: float) -> list[bytes]:
    """Each member's encoding, in order; InvalidInput, before anything is written, for a
    ttl that is not a positive finite number, a member without a name or role, a name
    given twice, or a field JSON cannot hold."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise InvalidInput(f"announce: ttl must be a positive number of seconds, got {ttl!r}")
    seen: set[str] = set()
    for member in members:
        if not isinstance(member, Member):
            raise InvalidInput(f"announce: expected a Member, got {type(member).__name__}")
        if not member.name or not isinstance(member.name, str):
            raise InvalidInput(f"announce: a member needs a name, got {member.name!r}")
        if not member.role or not isinstance(member.role, str):
            raise InvalidInput(f"announce: member {member.name!r} needs a role")
        if member.name in seen:
            raise InvalidInput(f"announce: member {member.name!r} is given twice")
        seen.add(member.name)
    return [encode_member(member) for member in members]


def check_names(names: Sequence[str]) -> None:
    """Refuse, with InvalidInput, a name that is not a string (withdrawing "" is a no-op)."""
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(f"withdraw: a member name is a string, got {name!r}")


def _typed(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"member field {key!r}: unexpected {type(value).__name__}")
    return value
