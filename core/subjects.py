"""Subject grammar: NATS-style dot tokens; patterns add ``*`` (one token) and ``>`` (the rest).

A subject is 1 to 16 tokens of ``[A-Za-z0-9_-]``, joined by dots, at most 255 characters:
``orders.close``, ``sms.send.eu-west``. A pattern may use ``*`` for exactly one token and
``>`` as its last token for one or more tokens: ``orders.*``, ``sms.>``, ``>``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from atp.core.errors import InvalidInput
from atp.core.quoting import quote

__all__ = ["compile_pattern", "matches", "validate_pattern", "validate_subject"]

MAX_SUBJECT_LENGTH = 255
MAX_TOKENS = 16
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\Z")
_VALID: set[str] = set()
_VALID_CACHE_SIZE = 10_000


def validate_subject(subject: object) -> str:
    """Return ``subject`` if it is a valid concrete subject, else raise InvalidInput."""
    if isinstance(subject, str) and subject in _VALID:
        return subject
    tokens = _split(subject, "subject")
    for token in tokens:
        if not _TOKEN.match(token):
            raise InvalidInput(
                f"subject {quote(subject)}: token {quote(token)} must match [A-Za-z0-9_-]+ "
                "(wildcards are only allowed in subscription patterns)"
            )
    if len(_VALID) < _VALID_CACHE_SIZE:  # a bounded memo: subjects repeat, tasks don't
        _VALID.add(str(subject))
    return str(subject)


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid subscription pattern, else raise InvalidInput."""
    tokens = _split(pattern, "pattern")
    for index, token in enumerate(tokens):
        if token == ">" and index != len(tokens) - 1:
            raise InvalidInput(f"pattern {quote(pattern)}: '>' may only be the last token")
        if token not in ("*", ">") and not _TOKEN.match(token):
            raise InvalidInput(
                f"pattern {quote(pattern)}: token {quote(token)} must be '*', '>' "
                "or match [A-Za-z0-9_-]+"
            )
    return str(pattern)


def _split(value: object, what: str) -> list[str]:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {quote(value)}")
    if len(value) > MAX_SUBJECT_LENGTH:
        raise InvalidInput(f"{what} is {len(value)} characters, the limit is {MAX_SUBJECT_LENGTH}")
    tokens = value.split(".")
    if len(tokens) > MAX_TOKENS:
        raise InvalidInput(
            f"{what} {quote(value)} has {len(tokens)} tokens, the limit is {MAX_TOKENS}"
        )
    if "" in tokens:
        raise InvalidInput(f"{what} {quote(value)} has an empty token (leading, trailing or '..')")
    return tokens


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """Return a fast predicate that tells whether a subject matches ``pattern``."""
    validate_pattern(pattern)
    if "*" not in pattern and ">" not in pattern:
        return pattern.__eq__
    parts = []
    for token in pattern.split("."):
        if token == "*":
            parts.append(r"[^.]+")
        elif token == ">":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(token))
    regex = re.compile(r"\.".join(parts) + r"\Z")
    return lambda subject: regex.match(subject) is not None


def matches(pattern: str, subject: str) -> bool:
    """Tell whether ``subject`` matches the subscription ``pattern``."""
    return compile_pattern(pattern)(subject)
