"""Method handlers built from the service descriptors, with a request decoder that never
raises.

grpc answers a request its decoder cannot parse with UNKNOWN and logs a traceback for
each one. Here a malformed request reaches the servicer as a ``Malformed`` value instead,
which it answers with INVALID_ARGUMENT (``parsed``), and only a debug line is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from atp.core.errors import InvalidInput

__all__ = ["Malformed", "add_servicer", "parsed"]

log = logging.getLogger("atp.grpc")


class Malformed:
    """A request whose bytes are not a valid message of the method's input type."""

    def __init__(self, type_name: str, reason: str) -> None:
        self.message = f"the request is not a valid {type_name} message: {reason}"


def parsed(request: Any) -> None:
    """Raise InvalidInput if ``request`` could not be decoded."""
    if isinstance(request, Malformed):
        raise InvalidInput(request.message)


def add_servicer(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Serve every method of ``service`` with the method of the same name of ``servicer``."""
    handlers = {method.name: _handler(method, servicer) for method in service.methods}
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(service.full_name, handlers)


def _handler(method: Any, servicer: object) -> grpc.RpcMethodHandler[Any, Any]:
    if method.client_streaming:  # its servicer would have to check every message
        raise TypeError(f"{method.full_name}: client-streaming methods are not served")
    make = (
        grpc.unary_stream_rpc_method_handler
        if method.server_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return make(
        getattr(servicer, method.name),
        request_deserializer=_decoder(GetMessageClass(method.input_type)),
        response_serializer=GetMessageClass(method.output_type).SerializeToString,
    )


def _decoder(message_class: Any) -> Callable[[bytes], Any]:
    name = message_class.DESCRIPTOR.full_name

    def decode(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            log.debug("malformed %s request: %s", name, exc)
            return Malformed(name, _reason(exc))

    return decode


def _reason(exc: DecodeError) -> str:
    """upb's text after the type name it already repeats ('...: Wire format was corrupt')."""
    return str(exc).rpartition(": ")[2] or "cannot be parsed"
