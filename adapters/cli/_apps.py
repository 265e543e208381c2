"""Loading ``MODULE:APP`` the way uvicorn does, with the working directory importable."""

from __future__ import annotations

import importlib
import logging
import os
import sys

from atp.core.errors import ConfigError, InvalidInput
from atp.sdk.app import App

__all__ = ["DEMO_APP", "load_app"]

log = logging.getLogger("atp.cli")

DEMO_APP = "examples.demo:app"
"""What ``atp dev`` runs when no app is named: the demo in the repository's ``examples/``."""


def load_app(reference: str) -> App:
    """Import ``module.path:attribute`` and return the App it names.

    The working directory goes first on ``sys.path``, so ``atp dev examples.demo:app``
    works from the repository root without installing anything. InvalidInput for a
    malformed reference, a missing module or attribute; ConfigError when importing the
    module fails or the attribute is not an App.
    """
    module_name, attribute = _split(reference)
    module = _import(module_name, reference)
    value: object = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise InvalidInput(f"app {reference!r}: module {module_name!r} has no {attribute!r}")
        value = getattr(value, part)
    if not isinstance(value, App):
        raise ConfigError(f"app {reference!r} is a {type(value).__name__}, not an atp App")
    return value


def _split(reference: str) -> tuple[str, str]:
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidInput(f"app {reference!r} must be written MODULE:APP, e.g. {DEMO_APP}")
    return module_name, attribute


def _import(module_name: str, reference: str) -> object:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise InvalidInput(
                f"app {reference!r}: no module named {exc.name!r} "
                f"(looked in the working directory {os.getcwd()!r} and sys.path)"
            ) from exc
        raise ConfigError(f"app {reference!r}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        log.debug("importing %s failed", module_name, exc_info=True)
        raise ConfigError(
            f"app {reference!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
