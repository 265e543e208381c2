"""The TaskStore conformance suite: every guarantee of ``atp.core.ports.TaskStore``.

Subclass it under a ``Test`` name and provide a ``store`` fixture::

    class TestMyStore(TaskStoreConformance):
        @pytest.fixture
        async def store(self, clock):
            store = make_my_store(clock)   # a fresh, EMPTY store
            yield store
            await store.close()

The store must be empty at the start of each test: take_due, recover, redispatch,
purge and prune act on the whole store, and the suite checks exactly what they touched.
On a shared server, give each test its own key prefix, schema or database.

Time: every TaskStore method takes its times as arguments, so this suite never waits.
Its times are offsets from ``clock.now()``; the default ``clock`` fixture is a
``ManualClock`` and overriding it with a ``SystemClock`` changes nothing.
"""

from __future__ import annotations

import pytest

from atp.core.ports import Clock, TaskStore
from atp.sdk.conformance._store_dedup import DedupChecks
from atp.sdk.conformance._store_history import HistoryChecks
from atp.sdk.conformance._store_intake import IntakeChecks
from atp.sdk.conformance._store_listing import ListingChecks
from atp.sdk.conformance._store_running import RunningChecks
from atp.sdk.conformance._support import PortSuite, missing_fixture, unique

__all__ = ["TaskStoreConformance"]


class TaskStoreConformance(
    IntakeChecks, RunningChecks, HistoryChecks, ListingChecks, DedupChecks, PortSuite
):
    """Checks a TaskStore against the contract in ``atp.core.ports``."""

    @pytest.fixture
    def store(self, clock: Clock) -> TaskStore:
        """Override: a fresh, empty TaskStore built with ``clock``."""
        missing_fixture(self, "store")

    @pytest.fixture
    def subject(self) -> str:
        """A subject no other test uses."""
        return f"{unique('store')}.work"
