"""A Client's connection to ``atp server`` over REST (httpx).

``HttpRemote`` offers the Client's ``Operations``; task bodies are converted in
``atp.sdk.wire.rest``, the same module the server converts with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from atp.core.clock import SystemClock
from atp.core.errors import AtpError, BackendUnavailable, IdempotencyConflict
from atp.core.fleet import Fleet
from atp.core.flow.breaker import BreakerState
from atp.core.flow.rules import Limit
from atp.core.flow.service import FlowStatus
from atp.core.model import JSON, State, TaskRecord
from atp.core.ports import Clock, Page
from atp.core.schedules import Schedule, schedule_from_dict
from atp.core.service import Published, PublishRequest
from atp.core.workflows.definition import Definition, definition_from_dict, definition_to_dict
from atp.core.workflows.runs import Run, RunPage, RunState, run_from_dict
from atp.sdk._operations import Consumer, Operations
from atp.sdk.wire import fleet, rest
from atp.sdk.wire.problems import error_from

__all__ = ["HttpFleet", "HttpFlow", "HttpRemote"]

TIMEOUT = 30.0
Call = Callable[..., Awaitable[Any]]


class HttpRemote:
    """The REST API of one server (or a load balancer in front of several), as a
    Client's ``Operations``."""

    consumer: Consumer | None = None
    """Leasing tasks remotely needs gRPC (``grpc://``)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        clock: Clock | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.clock = clock or SystemClock()
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.tasks = HttpTasks(self.call)
        self.schedules = HttpSchedules(self.call)
        self.workflows = HttpWorkflows(self.call)
        self.flow = HttpFlow(self.call)
        self.fleet = HttpFleet(self.call)

    def __repr__(self) -> str:
        return f"HttpRemote({str(self._http.base_url)!r})"

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the decoded JSON answer (None for 204), atp errors back."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__  # httpx's may be empty (a reset link)
            raise BackendUnavailable(f"atp server {self._http.base_url}: {reason}") from exc
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        raise _problem(response)


class HttpTasks:
    """The ``/v1/tasks`` and ``/v1/dead-letters`` operations, as ``TaskService`` offers them."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        body = {"tasks": [rest.request_out(r) for r in requests]}
        found = await self._call("POST", "/v1/tasks/batch", json=body)
        return [rest.published_in(p) for p in found["tasks"]]

    async def get(self, task_id: str) -> TaskRecord:
        return rest.record_in(await self._call("GET", f"/v1/tasks/{_quote(task_id)}"))

    async def cancel(self, task_id: str) -> TaskRecord:
        return rest.record_in(await self._call("DELETE", f"/v1/tasks/{_quote(task_id)}"))

    async def query(
        self,
        *,
        subject: str | None = None,
        states: Sequence[State] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        params = _params(
            subject=subject, cursor=cursor, limit=limit, state=[str(s) for s in states or ()]
        )
        return rest.page_in(await self._call("GET", "/v1/tasks", params=params))

    async def counts(self) -> dict[tuple[str, State], int]:
        found = await self._call("GET", "/v1/counts")
        return {(c["subject"], State(c["state"])): c["count"] for c in found["counts"]}

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        params = _params(subject=subject, cursor=cursor, limit=limit)
        return rest.page_in(await self._call("GET", "/v1/dead-letters", params=params))

    async def requeue(
        self,
        task_id: str,
        *,
        delay: float | None = None,
        payload: JSON = None,
        replace_payload: bool = False,
    ) -> TaskRecord:
        body: dict[str, Any] = {} if delay is None else {"delay": delay}
        if replace_payload:
            body["payload"] = payload
        path = f"/v1/dead-letters/{_quote(task_id)}/requeue"
        return rest.record_in(await self._call("POST", path, json=body))

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        body = {"ids": None if ids is None else list(ids)}
        return int((await self._call("POST", "/v1/dead-letters/purge", json=body))["purged"])


class HttpSchedules:
    """The ``/v1/schedules`` operations, as ``ScheduleService`` offers them."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def add(self, schedule: Schedule) -> Schedule:
        body = {
            "name": schedule.name,
            "expression": schedule.expression,
            "subject": schedule.subject,
            "payload": schedule.payload,
            "tz": schedule.tz,
            "misfire": schedule.misfire.value,
            "overlap": schedule.overlap.value,
        }
        return schedule_from_dict(await self._call("POST", "/v1/schedules", json=body))

    async def get(self, name: str) -> Schedule:
        return schedule_from_dict(await self._call("GET", f"/v1/schedules/{_quote(name)}"))

    async def list(self) -> list[Schedule]:
        found = await self._call("GET", "/v1/schedules")
        return [schedule_from_dict(item) for item in found["items"]]

    async def pause(self, name: str) -> Schedule:
        path = f"/v1/schedules/{_quote(name)}/pause"
        return schedule_from_dict(await self._call("POST", path))

    async def resume(self, name: str) -> Schedule:
        path = f"/v1/schedules/{_quote(name)}/resume"
        return schedule_from_dict(await self._call("POST", path))

    async def trigger(self, name: str) -> Published:
        found = await self._call("POST", f"/v1/schedules/{_quote(name)}/trigger")
        return rest.published_in(found)

    async def remove(self, name: str) -> None:
        await self._call("DELETE", f"/v1/schedules/{_quote(name)}")


class HttpWorkflows:
    """The ``/v1/workflows`` and ``/v1/runs`` operations, as ``WorkflowEngine`` offers them."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def register(self, definitions: Sequence[Definition]) -> list[bool]:
        """One request per definition, in order: checked here first, so a malformed one
        stores nothing; a later one refused by the server leaves the earlier ones stored."""
        checked = [definition.check() for definition in definitions]
        created = []
        for definition in checked:
            body = definition_to_dict(definition)
            created.append(bool((await self._call("POST", "/v1/workflows", json=body))["created"]))
        return created

    async def definition(self, name: str, version: int | None = None) -> Definition:
        params = _params(version=version)
        found = await self._call("GET", f"/v1/workflows/{_quote(name)}", params=params)
        return definition_from_dict(found)

    async def definitions(self) -> list[Definition]:
        found = await self._call("GET", "/v1/workflows")
        return [definition_from_dict(item) for item in found["items"]]

    async def start(
        self,
        name: str,
        input: JSON = None,
        *,
        version: int | None = None,
        run_id: str | None = None,
    ) -> Run:
        body = {"input": input, **_params(version=version, run_id=run_id)}
        path = f"/v1/workflows/{_quote(name)}/runs"
        return run_from_dict(await self._call("POST", path, json=body))

    async def signal(self, run_id: str, name: str, payload: JSON = None) -> Run:
        body = {"name": name, "payload": payload}
        path = f"/v1/runs/{_quote(run_id)}/signals"
        return run_from_dict(await self._call("POST", path, json=body))

    async def get(self, run_id: str) -> Run:
        return run_from_dict(await self._call("GET", f"/v1/runs/{_quote(run_id)}"))

    async def list(
        self,
        *,
        workflow: str | None = None,
        states: Sequence[RunState | str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> RunPage:
        params = _params(
            workflow=workflow,
            cursor=cursor,
            limit=limit,
            state=[str(s).upper() for s in states or ()],
        )
        found = await self._call("GET", "/v1/runs", params=params)
        return RunPage([run_from_dict(item) for item in found["items"]], found.get("next_cursor"))

    async def cancel(self, run_id: str) -> Run:
        return run_from_dict(await self._call("DELETE", f"/v1/runs/{_quote(run_id)}"))


class HttpFlow:
    """The ``/v1/limits`` and ``/v1/pauses`` operations, as ``FlowService`` offers them."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def status(self) -> FlowStatus:
        return rest.status_in(await self._call("GET", "/v1/limits"))

    async def set_limit(self, limit: Limit) -> Limit:
        body = rest.limit_out(limit)
        for derived in ("name", "updated_at"):
            body.pop(derived)
        return rest.limit_in(await self._call("PUT", "/v1/limits", json=body))

    async def remove_limit(self, target: str, *, key: bool = False) -> None:
        params = {"target": target, "key": "true" if key else "false"}
        await self._call("DELETE", "/v1/limits", params=params)

    async def pause(self, pattern: str) -> bool:
        found = await self._call("POST", "/v1/pauses", json={"pattern": pattern})
        return bool(found["changed"])

    async def resume(self, pattern: str) -> int:
        found = await self._call("DELETE", "/v1/pauses", params={"pattern": pattern})
        return int(found["woken"])


class HttpFleet:
    """The ``/v1/workers`` and ``/v1/breakers`` reads, as ``FleetService`` offers them."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def workers(self) -> Fleet:
        return fleet.fleet_from_dict(await self._call("GET", "/v1/workers"))

    async def breakers(self) -> list[BreakerState]:
        found = await self._call("GET", "/v1/breakers")
        return [fleet.breaker_from_dict(item) for item in found["breakers"]]


def _problem(response: httpx.Response) -> AtpError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "type" not in body:
        return BackendUnavailable(f"atp server answered {response.status_code}")
    retry_after = float(response.headers.get("Retry-After", "1") or 1)
    error = error_from(str(body["type"]), str(body.get("detail", "")), retry_after)
    if isinstance(error, IdempotencyConflict):  # with the items it names (KeyActive too)
        return type(error).from_details(error.message, body)
    return error


def _quote(task_id: str) -> str:
    return quote(task_id, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != []}


_: type[Operations] = HttpRemote
