"""The published OpenAPI document fuzzed with schemathesis against a running server.

Every operation (tasks, dead letters, schedules, workflows and runs) gets a small,
bounded number of generated requests, sent with an admin token, in both modes:
positive (data the document allows) must be accepted, negative (data it forbids) must
be refused with a 4xx. In either mode no response may be a 5xx, and every response must
match the document (status code, content type, headers and body schema). The operations
are walked by hand rather than through schemathesis' pytest plugin, whose lazy fixture
loading does not run on pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import APIOperation

from atp.adapters.http._models import DURATION_FORMAT, INT_RANGE, MAX_DELAY
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 40
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
MODE_CHECKS = {
    GenerationMode.POSITIVE: checks.positive_data_acceptance,
    GenerationMode.NEGATIVE: checks.negative_data_rejection,
}
UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATIONS = st.sampled_from(sorted(UNITS)).flatmap(
    lambda unit: st.integers(1, int(MAX_DELAY / UNITS[unit])).map(lambda n: f"{n}{unit}")
)
"""Texts of the format ``atp-duration``, within the default max_delay (the server's)."""
schemathesis.openapi.format(DURATION_FORMAT, DURATIONS)

BEYOND_JSON_SCHEMA = {
    "POST /v1/workflows": "a definition's graph: known parents, no cycle, fields per kind",
    "POST /v1/schedules": "a cron expression and an IANA time zone",
    "DELETE /v1/limits": "a target's grammar (subject or key pattern) depends on `key`",
    "GET /v1/tasks": "a time's grammar; a key needs an exact `subject`; a range in order",
}
"""Operations whose valid input the document cannot fully state: their positive data
may be refused (400); every other check still holds for them."""


NOTHING_TO_NEGATE = {"GET /healthz", "GET /readyz"}
"""Operations without input (not even a token): no negative request exists for them."""


@pytest.mark.parametrize("mode", list(MODE_CHECKS), ids=str)
def test_the_server_keeps_the_documents_promises(api_server: ApiServer, mode: GenerationMode):
    bearer = {"HTTPBearer": {"bearer": api_server.tokens["admin"]}}
    config = SchemathesisConfig.from_dict({"auth": {"openapi": bearer}})
    schema = schemathesis.openapi.from_url(api_server.url + "/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 27  # tasks, dead letters, schedules, workflows, runs, health
    for operation in operations:
        try:
            fuzz(operation, mode)
        except Unsatisfiable:
            assert (mode, operation.label in NOTHING_TO_NEGATE) == (GenerationMode.NEGATIVE, True)


def fuzz(operation: APIOperation, mode: GenerationMode) -> None:
    """Send ``MAX_EXAMPLES`` generated requests of ``mode`` and check every answer."""
    exempt = mode.is_positive and operation.label in BEYOND_JSON_SCHEMA
    wanted = CHECKS if exempt else [*CHECKS, MODE_CHECKS[mode]]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        if mode.is_positive:  # the payload's integer range is stated in words only
            assume(_integers_fit(case.body))
        case.call_and_validate(checks=wanted)

    check()


def _integers_fit(value: object) -> bool:
    """Whether every integer in ``value`` lies in the range a payload may hold."""
    if isinstance(value, dict):
        return all(_integers_fit(item) for item in value.values())
    if isinstance(value, list):
        return all(_integers_fit(item) for item in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return INT_RANGE[0] <= value <= INT_RANGE[1]
    return True
