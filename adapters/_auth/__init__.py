"""Authentication, scopes and rate limits shared by the REST and gRPC APIs."""

from atp.adapters._auth.config import ServerSettings
from atp.adapters._auth.guard import Guard, Principal
from atp.adapters._auth.scopes import Scopes, covers, parse_scopes
from atp.adapters._auth.tokens import Token, TokenBook, hash_secret, new_token

__all__ = [
    "Guard",
    "Principal",
    "Scopes",
    "ServerSettings",
    "Token",
    "TokenBook",
    "covers",
    "hash_secret",
    "new_token",
    "parse_scopes",
]
