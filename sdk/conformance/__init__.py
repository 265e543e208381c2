"""Port conformance suites: pytest classes a plugin author subclasses to test a backend.

Each suite checks every guarantee its port states in ``atp.core.ports``. Subclass it
under a ``Test`` name (the suites themselves are not named ``Test*``, so pytest collects
only your subclass) and provide the backend as a fixture::

    import pytest_asyncio

    from atp.sdk.conformance import TaskStoreConformance

    class TestMyStore(TaskStoreConformance):
        @pytest_asyncio.fixture
        async def store(self, clock):
            store = MyStore(url, clock=clock)
            yield store
            await store.close()

The suites need pytest and pytest-asyncio; their tests are marked ``asyncio`` so they run
in strict mode too, where an async fixture must be a ``pytest_asyncio.fixture`` (in
auto mode ``pytest.fixture`` does as well).
``unique(prefix)`` makes names (subjects, groups, leases) no other test or run uses, so a
suite can run against a shared server. Each suite's docstring says how it uses time.
"""

import pytest

_CHECKS = (
    "activity",
    "_breaker_support",
    "_flow_support",
    "_store_dedup",
    "_store_history",
    "_store_intake",
    "_store_listing",
    "_store_running",
    "_store_support",
    "_support",
    "breakers",
    "coordinator",
    "flow",
    "fused",
    "limiter",
    "registry",
    "schedules",
    "store",
    "transport",
    "workflows",
)
pytest.register_assert_rewrite(*(f"{__name__}.{module}" for module in _CHECKS))

from atp.sdk.conformance._support import unique  # noqa: E402
from atp.sdk.conformance.activity import ActivityConformance  # noqa: E402
from atp.sdk.conformance.breakers import BreakerLedgerConformance  # noqa: E402
from atp.sdk.conformance.coordinator import CoordinatorConformance  # noqa: E402
from atp.sdk.conformance.flow import FlowLedgerConformance  # noqa: E402
from atp.sdk.conformance.fused import FusedConformance  # noqa: E402
from atp.sdk.conformance.limiter import LimiterConformance  # noqa: E402
from atp.sdk.conformance.registry import RegistryConformance  # noqa: E402
from atp.sdk.conformance.schedules import ScheduleStoreConformance  # noqa: E402
from atp.sdk.conformance.store import TaskStoreConformance  # noqa: E402
from atp.sdk.conformance.transport import TransportConformance  # noqa: E402
from atp.sdk.conformance.workflows import WorkflowStoreConformance  # noqa: E402

__all__ = [
    "ActivityConformance",
    "BreakerLedgerConformance",
    "CoordinatorConformance",
    "FlowLedgerConformance",
    "FusedConformance",
    "LimiterConformance",
    "RegistryConformance",
    "ScheduleStoreConformance",
    "TaskStoreConformance",
    "TransportConformance",
    "WorkflowStoreConformance",
    "unique",
]
