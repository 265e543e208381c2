"""The app the circuit-breaker process tests run: a handler whose downstream is down while
the file ``$BREAKER_DOWN`` exists; every attempt is noted in ``$FLOW_LEDGER``
(``flow_app.note``)."""

from __future__ import annotations

import os
import time
from typing import Any

from flow_app import note

from atp.core.flow.breaker import Breaker
from atp.core.model import RetryPolicy
from atp.sdk.app import App

SUBJECT = "mail.send"
POLICY = Breaker(ratio=0.5, window=30, min_volume=5, open_for=3)

app = App("breaker-e2e")


@app.task(SUBJECT, breaker=POLICY, max_attempts=100, retry=RetryPolicy(base=0.2, cap=0.2))
def send(payload: dict[str, Any]) -> None:
    """Note the start; fail while the downstream is down."""
    note("start", start=time.time(), payload=payload)
    if os.path.exists(os.environ["BREAKER_DOWN"]):
        raise ConnectionError("smtp relay down")
