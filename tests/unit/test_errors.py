import pytest

from atp.core import errors
from atp.core.errors import (
    AlreadyExists,
    AtpError,
    BackendUnavailable,
    ConfigError,
    Fail,
    FencedOut,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PluginError,
    RateLimited,
    Retry,
    StateConflict,
    Unauthenticated,
    translate_errors,
)

TREE = {
    InvalidInput: (AtpError, 400, "INVALID_ARGUMENT"),
    PayloadTooLarge: (InvalidInput, 413, "INVALID_ARGUMENT"),
    NotFound: (AtpError, 404, "NOT_FOUND"),
    AlreadyExists: (AtpError, 409, "ALREADY_EXISTS"),
    IdempotencyConflict: (AlreadyExists, 409, "ALREADY_EXISTS"),
    StateConflict: (AtpError, 409, "FAILED_PRECONDITION"),
    FencedOut: (StateConflict, 409, "FAILED_PRECONDITION"),
    Unauthenticated: (AtpError, 401, "UNAUTHENTICATED"),
    PermissionDenied: (AtpError, 403, "PERMISSION_DENIED"),
    RateLimited: (AtpError, 429, "RESOURCE_EXHAUSTED"),
    BackendUnavailable: (AtpError, 503, "UNAVAILABLE"),
    ConfigError: (AtpError, 500, "FAILED_PRECONDITION"),
    PluginError: (AtpError, 500, "INTERNAL"),
}


@pytest.mark.parametrize(("kind", "expected"), TREE.items())
def test_each_error_has_its_place_status_and_code(kind, expected):
    parent, status, code = expected
    assert kind.__mro__[1] is parent
    assert (kind.http_status, kind.grpc_code) == (status, code)
    assert kind.__doc__


def test_every_error_class_is_in_the_tree_and_slugs_are_unique():
    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    atp_errors = {c for c in classes if issubclass(c, AtpError)} - {AtpError}
    assert atp_errors == set(TREE)
    slugs = [c.type_slug for c in (*atp_errors, AtpError)]
    assert len(set(slugs)) == len(slugs)


def test_errors_keep_their_message():
    error = NotFound("no task with id 'x'")
    assert error.message == str(error) == "no task with id 'x'"


def test_handler_signals_are_not_atp_errors():
    assert not issubclass(Retry, AtpError)
    assert not issubclass(Fail, AtpError)


def test_retry_carries_a_delay_and_a_reason():
    assert (Retry().delay, Retry().reason) == (None, "retry requested")
    retry = Retry(delay=30, reason="rate limited")
    assert (retry.delay, retry.reason, str(retry)) == (30, "rate limited", "rate limited")


def test_fail_carries_its_reason():
    fail = Fail("card declined")
    assert fail.reason == str(fail) == "card declined"


class ClientLibraryError(Exception):
    pass


class ClientTimeout(ClientLibraryError):
    pass


MAPPING = {
    ClientTimeout: lambda exc: BackendUnavailable(f"timed out: {exc}"),
    ClientLibraryError: lambda exc: InvalidInput(f"refused: {exc}"),
}


def test_a_mapped_exception_is_re_raised_as_its_atp_error_with_the_cause():
    with pytest.raises(BackendUnavailable, match="timed out: slow") as caught:  # noqa: SIM117
        with translate_errors(MAPPING):
            raise ClientTimeout("slow")
    assert isinstance(caught.value.__cause__, ClientTimeout)


def test_the_first_matching_mapping_entry_wins():
    with pytest.raises(InvalidInput, match="refused: bad"), translate_errors(MAPPING):
        raise ClientLibraryError("bad")


def test_atp_errors_pass_through_unchanged():
    original = NotFound("gone")
    with pytest.raises(NotFound) as caught, translate_errors({Exception: MAPPING[ClientTimeout]}):
        raise original
    assert caught.value is original


def test_unmapped_exceptions_pass_through_unchanged():
    with pytest.raises(KeyError), translate_errors(MAPPING):
        raise KeyError("x")


def test_nothing_happens_without_an_exception():
    with translate_errors(MAPPING):
        value = 1
    assert value == 1
