"""Private server processes (Redis, NATS, etcd, ...) on free ports, killable and restartable.

The implementation is shared with the integration tests, which start the same servers.
"""

from __future__ import annotations

from tests.services import ServerProcess, free_port, start_server

__all__ = ["ServerProcess", "free_port", "start_server"]
