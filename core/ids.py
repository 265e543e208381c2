"""Time-sortable unique ids: 48 bits of milliseconds and 80 random bits, Crockford base32.

Ids sort by creation time across processes (to the millisecond) and, within one process,
strictly by creation order, so a listing by id is a listing by age.
"""

from __future__ import annotations

import os
import socket
import threading

__all__ = ["first_id", "id_time", "is_id", "new_id", "process_name"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {char: value for value, char in enumerate(_ALPHABET)}
_lock = threading.Lock()
_last = [0, 0]  # last millisecond, last random part


def new_id(now: float) -> str:
    """Return a new 26-character id stamped with ``now`` (seconds since the epoch)."""
    millis = int(now * 1000)
    with _lock:
        if millis <= _last[0]:
            millis = _last[0]
            rand = _last[1] + 1  # same millisecond: keep the order strictly increasing
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last[0], _last[1] = millis, rand
    return _encode((millis << 80) | (rand & ((1 << 80) - 1)))


def id_time(task_id: str) -> float:
    """Return the creation time (seconds) stamped into ``task_id``."""
    value = 0
    for char in task_id[:10]:
        value = value * 32 + _DECODE[char]
    return value / 1000


def first_id(at: float) -> str:
    """The smallest id ``new_id`` can stamp with ``at`` or later: ids at or after ``at``
    (to the millisecond) sort at or after it, so a time range is an id range."""
    millis = min(max(int(at * 1000), 0), _MAX_MILLIS)
    return _encode(millis << 80)[:10] + "0" * 16


_MAX_MILLIS = 32**10 - 1
"""The largest time the first ten characters can hold: later bounds above every id."""


def is_id(text: object) -> bool:
    """Whether ``text`` has the form of an id ``new_id`` returns (26 characters, the first
    at most ``7``, as 130 bits hold 128)."""
    return (
        isinstance(text, str)
        and len(text) == 26
        and text[0] in "01234567"
        and all(char in _DECODE for char in text)
    )


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> two characters


def _encode(value: int) -> str:
    """26 characters, most significant first: 13 lookups of 10 bits each."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


def process_name(role: str = "") -> str:
    """A name for a worker or scheduler: host, pid and a random part, unique per start."""
    suffix = os.urandom(3).hex()
    return f"{socket.gethostname()}:{os.getpid()}:{suffix}" + (f":{role}" if role else "")
