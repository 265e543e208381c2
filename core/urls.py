"""Reading backend URLs: the one way every plugin parses its query options."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import parse_qsl

from atp.core.errors import InvalidInput
from atp.core.quoting import hint

__all__ = ["mask", "query_options"]

HIDDEN = "***"
_SECRET_OPTION = re.compile(r"([?&](?:password|passwd|pass|secret|token|auth)=)[^&#]*", re.I)


def query_options(what: str, query: str, known: Collection[str]) -> dict[str, str]:
    """Parse a URL's query into options, refusing what a backend cannot mean.

    ``what`` names the URL in errors (``"etcd URL 'etcd://…'"``). Raises InvalidInput for
    a malformed query, an option given twice, or one not in ``known`` (with a hint).
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidInput(f"{what}: malformed query string: {exc}") from exc
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in known:
            raise InvalidInput(f"{what}: unknown option {key!r}{hint(key, known)}")
        if key in options:
            raise InvalidInput(f"{what}: option {key!r} is given twice")
        options[key] = value
    return options


def mask(url: str) -> str:
    """``url`` fit to show or log: every password (or lone credential) replaced by ``***``.

    ``redis://:pw@h/0`` -> ``redis://:***@h/0``, ``nats://u:pw@a,u:pw@b`` ->
    ``nats://u:***@a,u:***@b``, ``redis://token@h`` -> ``redis://***@h``; a
    ``password=`` (or ``token=``, ``secret=``) query option is hidden too. Each host's
    credential runs to its last ``@``, so a password holding ``@`` or ``/`` is hidden
    whole; a URL with no authority (``sqlite:///a@b.db``) keeps its path.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    main, question, query = rest.partition("?")
    at = main.rfind("@")
    if at >= 0 and not main.startswith("/"):
        slash = main.find("/", at)
        end = len(main) if slash < 0 else slash
        main = ",".join(map(_hidden_user, main[:end].split(","))) + main[end:]
    if question:
        query = _SECRET_OPTION.sub(rf"\g<1>{HIDDEN}", "?" + query)[1:]
    return scheme + separator + main + question + query


def _hidden_user(host: str) -> str:
    userinfo, at, address = host.rpartition("@")
    if not at:
        return host
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{HIDDEN}@{address}" if colon else f"{HIDDEN}@{address}"
