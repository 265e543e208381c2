"""Scopes: what a token may do. ``publish:<pattern>``, ``consume:<pattern>``, ``read``, ``admin``.

``admin`` may do everything; ``read`` may get and list tasks and dead letters;
``publish:orders.*`` may publish (and cancel) tasks whose subject matches ``orders.*``;
``consume:orders.>`` may retrieve, ack, nack and heartbeat tasks of patterns it covers.
A workflow run is started, signalled and cancelled under ``publish`` (``require_run``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atp.core.errors import InvalidInput, PermissionDenied
from atp.core.subjects import matches, validate_pattern

__all__ = ["Scopes", "covers", "parse_scopes"]

_PLAIN = ("read", "admin")
_PATTERNED = ("publish", "consume")


def parse_scopes(texts: Iterable[str]) -> Scopes:
    """Parse scope strings; InvalidInput names the first malformed one."""
    publish: list[str] = []
    consume: list[str] = []
    plain: set[str] = set()
    for text in texts:
        kind, colon, pattern = str(text).partition(":")
        if not colon and kind in _PLAIN:
            plain.add(kind)
        elif colon and kind in _PATTERNED:
            validate_pattern(pattern)
            (publish if kind == "publish" else consume).append(pattern)
        else:
            raise InvalidInput(
                f"unknown scope {text!r}: scopes are read, admin, publish:<pattern> and "
                "consume:<pattern> (e.g. publish:orders.*)"
            )
    return Scopes(tuple(publish), tuple(consume), "read" in plain, "admin" in plain)


def covers(scope: str, pattern: str) -> bool:
    """Whether every subject ``pattern`` matches also matches ``scope`` (both patterns)."""
    have, want = scope.split("."), pattern.split(".")
    for index, token in enumerate(have):
        if token == ">":
            return len(want) > index
        if index >= len(want) or want[index] == ">":
            return False
        if token != "*" and (want[index] == "*" or want[index] != token):
            return False
    return len(want) == len(have)


@dataclass(frozen=True, slots=True)
class Scopes:
    """The parsed scopes of one token; the ``require_*`` methods raise PermissionDenied."""

    publish: tuple[str, ...] = ()
    consume: tuple[str, ...] = ()
    read: bool = False
    admin: bool = False

    def texts(self) -> list[str]:
        """The scopes as strings, as a tokens file spells them."""
        plain = [name for name in _PLAIN if getattr(self, name)]
        return [
            *plain,
            *(f"publish:{p}" for p in self.publish),
            *(f"consume:{p}" for p in self.consume),
        ]

    def require_read(self) -> None:
        if not (self.read or self.admin):
            raise PermissionDenied("this token lacks the 'read' scope")

    def require_admin(self) -> None:
        if not self.admin:
            raise PermissionDenied("this token lacks the 'admin' scope")

    def require_publish(self, subject: str) -> None:
        if not (self.admin or any(matches(p, subject) for p in self.publish)):
            raise PermissionDenied(f"this token may not publish to subject {subject!r}")

    def require_run(self, workflow: str, subjects: Sequence[str]) -> None:
        """Start, signal or cancel a run of ``workflow``, whose tasks publish ``subjects``:
        publish on each of them; a run that publishes none needs publish on the workflow's
        name (read as a subject), so a read or consume token never drives a run."""
        for subject in subjects:
            self.require_publish(subject)
        if not (subjects or self.admin or any(matches(p, workflow) for p in self.publish)):
            raise PermissionDenied(
                f"this token may not run workflow {workflow!r}: it publishes no subject, "
                "so its runs need publish on the workflow's name"
            )

    def require_consume_subject(self, subject: str) -> None:
        if not (self.admin or any(matches(p, subject) for p in self.consume)):
            raise PermissionDenied(f"this token may not consume subject {subject!r}")

    def require_consume(self, pattern: str) -> None:
        if not (self.admin or any(covers(p, pattern) for p in self.consume)):
            raise PermissionDenied(f"this token may not consume pattern {pattern!r}")


ALL = Scopes(admin=True)
"""What a request may do when authentication is switched off."""
