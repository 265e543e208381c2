"""Bearer tokens: ``atp_<id>.<secret>``; only a SHA-256 hash of the secret is ever stored.

The secret is 256 random bits, so a fast hash is enough: nobody can guess their way to
a preimage, and a leaked tokens file reveals no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from atp.adapters._auth.scopes import Scopes, parse_scopes
from atp.core.errors import ConfigError, InvalidInput, Unauthenticated

__all__ = ["PREFIX", "Token", "TokenBook", "hash_secret", "new_token"]

PREFIX = "atp_"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_ALGORITHM = "sha256"


def hash_secret(secret: str) -> str:
    """Return the stored form of a secret: ``sha256:<hex digest>``."""
    return f"{_ALGORITHM}:{hashlib.sha256(secret.encode()).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Token:
    """One configured token: its id, its secret's hash, its scopes and its rate limit."""

    id: str
    hash: str
    scopes: Scopes
    rate: float | None = None
    """Requests per second; None: the server's default."""
    burst: int | None = None
    """Requests allowed at once after a quiet spell; None: the server's default."""

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any]) -> Token:
        """Build a token from one ``[[tokens]]`` entry; ConfigError names what is wrong."""
        try:
            token_id = str(entry["id"])
            digest = str(entry["hash"])
            scopes = parse_scopes(entry.get("scopes", []))
        except KeyError as exc:
            raise ConfigError(f"token entry {dict(entry)!r} has no {exc.args[0]!r}") from exc
        except InvalidInput as exc:
            raise ConfigError(f"token {entry.get('id')!r}: {exc.message}") from exc
        if not _ID.match(token_id) or not digest.startswith(f"{_ALGORITHM}:"):
            raise ConfigError(f"token {token_id!r}: bad id or hash (expected sha256:<hex>)")
        rate, burst = entry.get("rate"), entry.get("burst")
        return cls(
            token_id,
            digest,
            scopes,
            None if rate is None else float(rate),
            None if burst is None else int(burst),
        )

    def to_mapping(self) -> dict[str, Any]:
        """The ``[[tokens]]`` entry for this token."""
        entry: dict[str, Any] = {"id": self.id, "hash": self.hash, "scopes": self.scopes.texts()}
        if self.rate is not None:
            entry["rate"] = self.rate
        if self.burst is not None:
            entry["burst"] = self.burst
        return entry


def new_token(
    token_id: str, scopes: Iterable[str], rate: float | None = None, burst: int | None = None
) -> tuple[str, Token]:
    """Make a token: return the bearer string (show it once) and what to store."""
    if not _ID.match(token_id):
        raise InvalidInput(f"token id {token_id!r} must be 1 to 64 of [A-Za-z0-9_-]")
    secret = secrets.token_urlsafe(32)
    token = Token(token_id, hash_secret(secret), parse_scopes(scopes), rate, burst)
    return f"{PREFIX}{token_id}.{secret}", token


class TokenBook:
    """The configured tokens, looked up by id and checked in constant time."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._tokens: dict[str, Token] = {}
        for token in tokens:
            if token.id in self._tokens:
                raise ConfigError(f"token id {token.id!r} is configured twice")
            self._tokens[token.id] = token

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._tokens

    def verify(self, bearer: str) -> Token:
        """Return the token ``bearer`` proves; Unauthenticated for anything else."""
        token_id, dot, secret = bearer.removeprefix(PREFIX).partition(".")
        token = self._tokens.get(token_id) if bearer.startswith(PREFIX) and dot else None
        expected = token.hash if token is not None else hash_secret("")
        valid = hmac.compare_digest(hash_secret(secret), expected)
        if token is None or not valid:
            raise Unauthenticated("the bearer token is not valid")
        return token
