"""The published OpenAPI document fuzzed with schemathesis against a running server.

Every operation (tasks, dead letters, schedules, workflows and runs) gets a small,
bounded number of generated requests (valid and invalid), sent with an admin token: no
response may be a 5xx, and every response must match the document (status code,
content type, headers and body schema). The operations are
walked by hand rather than through schemathesis' pytest plugin, whose lazy fixture
loading does not run on pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 12
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def test_no_server_error_and_every_response_matches_the_schema(api_server: ApiServer):
    schema = schemathesis.openapi.from_url(api_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 27  # tasks, dead letters, schedules, workflows, runs, health
    headers = api_server.headers("admin")
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()
