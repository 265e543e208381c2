"""The gRPC request decoder: a malformed request becomes a value the servicer refuses."""

from __future__ import annotations

import pytest

from atp.adapters.grpc._handlers import _decoder, parsed
from atp.core.errors import InvalidInput
from atp.sdk.wire.pb import tasks_pb2 as pb


def test_a_request_that_decodes_is_the_message():
    request = _decoder(pb.TaskId)(pb.TaskId(id="01A").SerializeToString())
    parsed(request)
    assert request.id == "01A"


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xff\xfe"])
def test_a_request_that_does_not_decode_is_refused_as_invalid_input(data):
    request = _decoder(pb.TaskId)(data)  # never raises: grpc would log a traceback
    with pytest.raises(InvalidInput, match=r"not a valid atp\.v1\.TaskId message: \w"):
        parsed(request)
