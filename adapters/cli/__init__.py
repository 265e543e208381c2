"""The atp command line: ``atp dev|worker|scheduler|publish|task|dlq|plugins``.

Every failure is one ``error: ...`` line on stderr and a documented exit code
(``atp.adapters.cli._errors``); never a traceback.
"""

from atp.adapters.cli._main import cli, main

__all__ = ["cli", "main"]
