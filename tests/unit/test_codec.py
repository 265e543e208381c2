import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp.core import codec
from atp.core.errors import InvalidInput
from atp.core.model import AttemptError, RetryPolicy, State, Task, TaskRecord

FULL = Task(
    id="01JXT21Q00BD4JRQFT7K0Y2D4Q",
    subject="orders.close",
    payload={"order_id": 42, "items": [1, 2.5, None, True], "note": "café"},
    headers={"traceparent": "00-abc-def-01"},
    idempotency_key="order-42",
    run_at=1_750_000_030.5,
    created_at=1_750_000_000.25,
    attempt=2,
    max_attempts=5,
    retry=RetryPolicy(base=0.5, factor=3.0, cap=60.0, jitter=False),
    timeout=12.5,
    priority=-3,
    schedule="nightly",
    tick=1_750_000_000.0,
    workflow_run="run-1",
    step="charge",
)
MINIMAL = Task(id="T1", subject="a")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("task", [FULL, MINIMAL])
def test_task_round_trips(task):
    assert codec.decode_task(codec.encode_task(task)) == task
    assert codec.task_from_dict(codec.task_to_dict(task)) == task


@pytest.mark.parametrize("task", [FULL, MINIMAL])
def test_a_stored_envelope_reads_back_unchecked_as_the_same_task(task):
    stored = codec.loads(codec.dumps(codec.task_to_dict(task)))
    assert codec.task_from_stored_dict(stored) == task


def test_absent_optional_fields_are_omitted():
    data = codec.task_to_dict(MINIMAL)
    assert set(data) == {
        "id",
        "subject",
        "payload",
        "headers",
        "run_at",
        "created_at",
        "attempt",
        "priority",
    }


@given(json_values)
def test_any_json_payload_round_trips(payload):
    task = MINIMAL.replace(payload=payload)
    assert codec.decode_task(codec.encode_task(task)).payload == payload


def test_record_round_trips_with_its_error_history():
    record = TaskRecord(
        task=FULL,
        state=State.DEAD,
        updated_at=1_750_000_100.0,
        lease_owner="w1",
        lease_until=1_750_000_130.0,
        result={"done": True},
        errors=(
            AttemptError(1, 1_750_000_010.0, "boom", "error"),
            AttemptError(2, 1_750_000_020.0, "attempt timed out after 5s", "timeout"),
        ),
        cancel_requested=True,
        finished_at=1_750_000_100.0,
    )
    assert codec.decode_record(codec.encode_record(record)) == record
    assert codec.record_to_dict(record)["state"] == "DEAD"


def test_minimal_record_round_trips():
    record = TaskRecord(task=MINIMAL, state=State.SCHEDULED, updated_at=1.0)
    assert codec.decode_record(codec.encode_record(record)) == record


def test_dumps_refuses_what_json_cannot_hold():
    with pytest.raises(InvalidInput, match="not JSON-serialisable"):
        codec.dumps({"when": object()})


def test_dumps_accepts_non_string_keys():
    assert codec.loads(codec.dumps({1: "a"})) == {"1": "a"}


@pytest.mark.parametrize("data", [b"{", b"", "nope", b"\xff"])
def test_loads_refuses_malformed_json(data):
    with pytest.raises(InvalidInput, match="malformed JSON"):
        codec.loads(data)


def test_loads_accepts_text():
    assert codec.loads('{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"task"', "must be a JSON object, got str"),
        (b'{"subject": "a"}', "'id' must be a non-empty string"),
        (b'{"id": "", "subject": "a"}', "'id' must be a non-empty string"),
        (b'{"id": 7, "subject": "a"}', "'id' must be a non-empty string"),
        (b'{"id": "T"}', "subject must be a non-empty string"),
        (b'{"id": "T", "subject": "a..b"}', "empty token"),
        (b'{"id": "T", "subject": "a", "headers": ["x"]}', "headers must map strings"),
        (b'{"id": "T", "subject": "a", "headers": {"k": 1}}', "headers must map strings"),
        (b'{"id": "T", "subject": "a", "run_at": "soon"}', "malformed task envelope"),
        (b'{"id": "T", "subject": "a", "attempt": "x"}', "'attempt' must be an integer"),
        (b'{"id": "T", "subject": "a", "max_attempts": []}', "'max_attempts' must be an integer"),
        (b'{"id": "T", "subject": "a", "timeout": "x"}', "malformed task envelope"),
        (b'{"id": "T", "subject": "a", "retry": {"base": "x"}}', "malformed task envelope"),
    ],
)
def test_malformed_envelopes_are_refused(envelope, reason):
    with pytest.raises(InvalidInput, match=reason):
        codec.decode_task(envelope)


def test_envelope_defaults_fill_absent_fields():
    task = codec.decode_task(b'{"id": "T", "subject": "a", "headers": null, "retry": {}}')
    assert task == Task(id="T", subject="a")


def test_partial_retry_policy_takes_defaults():
    task = codec.decode_task(b'{"id": "T", "subject": "a", "retry": {"cap": 9}}')
    assert task.retry == RetryPolicy(cap=9.0)


def test_numbers_are_coerced_to_their_field_types():
    task = codec.decode_task(b'{"id": "T", "subject": "a", "run_at": 5, "max_attempts": 3.0}')
    assert task.run_at == 5.0
    assert isinstance(task.run_at, float)
    assert task.max_attempts == 3
    assert isinstance(task.max_attempts, int)
