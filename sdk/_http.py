"""A Client's connection to ``atp server`` over REST (httpx)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from atp.core.errors import AtpError, BackendUnavailable
from atp.core.model import JSON, AttemptError, State, Task, TaskRecord
from atp.core.ports import Page
from atp.core.schedules import Schedule, schedule_from_dict
from atp.core.service import Published, PublishRequest
from atp.core.workflows.definition import Definition, definition_from_dict, definition_to_dict
from atp.core.workflows.runs import Run, RunPage, RunState, run_from_dict
from atp.sdk._remote import error_from

__all__ = ["HttpRemote"]

TIMEOUT = 30.0
Call = Callable[..., Awaitable[Any]]


class HttpRemote:
    """The REST API of one server (or a load balancer in front of several)."""

    def __init__(self, url: str, token: str | None, *, timeout: float = TIMEOUT) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers,
                                       timeout=timeout)  # fmt: skip
        self.schedules = HttpSchedules(self._call)
        self.workflows = HttpWorkflows(self._call)

    def __repr__(self) -> str:
        return f"HttpRemote({str(self._http.base_url)!r})"

    async def publish(self, requests: Sequence[PublishRequest]) -> list[Published]:
        body = {"tasks": [_request(r) for r in requests]}
        found = await self._call("POST", "/v1/tasks/batch", json=body)
        return [Published(p["id"], p["created"], p["run_at"]) for p in found["tasks"]]

    async def get(self, task_id: str) -> TaskRecord:
        return _record(await self._call("GET", f"/v1/tasks/{_quote(task_id)}"))

    async def cancel(self, task_id: str) -> TaskRecord:
        return _record(await self._call("DELETE", f"/v1/tasks/{_quote(task_id)}"))

    async def query(
        self,
        *,
        subject: str | None = None,
        states: Sequence[State] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        params = _params(subject=subject, cursor=cursor, limit=limit,
                         state=[str(s) for s in states or ()])  # fmt: skip
        return _page(await self._call("GET", "/v1/tasks", params=params))

    async def counts(self) -> dict[tuple[str, State], int]:
        found = await self._call("GET", "/v1/counts")
        return {(c["subject"], State(c["state"])): c["count"] for c in found["counts"]}

    async def dead_letters(
        self, *, subject: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page:
        params = _params(subject=subject, cursor=cursor, limit=limit)
        return _page(await self._call("GET", "/v1/dead-letters", params=params))

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
        return _record(await self._call("POST", path, json=body))

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        body = {"ids": None if ids is None else list(ids)}
        return int((await self._call("POST", "/v1/dead-letters/purge", json=body))["purged"])

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"atp server {self._http.base_url}: {exc}") from exc
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        raise _problem(response)


class HttpSchedules:
    """The ``/v1/schedules`` operations, as ``ScheduleService`` offers them."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def add(self, schedule: Schedule) -> Schedule:
        body = {"name": schedule.name, "expression": schedule.expression,
                "subject": schedule.subject, "payload": schedule.payload, "tz": schedule.tz,
                "misfire": schedule.misfire.value, "overlap": schedule.overlap.value}  # fmt: skip
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
        return Published(found["id"], found["created"], found["run_at"])

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
        self, name: str, input: JSON = None, *, version: int | None = None,
        run_id: str | None = None,
    ) -> Run:  # fmt: skip
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
        params = _params(workflow=workflow, cursor=cursor, limit=limit,
                         state=[str(s).upper() for s in states or ()])  # fmt: skip
        found = await self._call("GET", "/v1/runs", params=params)
        return RunPage([run_from_dict(item) for item in found["items"]], found.get("next_cursor"))

    async def cancel(self, run_id: str) -> Run:
        return run_from_dict(await self._call("DELETE", f"/v1/runs/{_quote(run_id)}"))


def _problem(response: httpx.Response) -> AtpError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "type" not in body:
        return BackendUnavailable(f"atp server answered {response.status_code}")
    retry_after = float(response.headers.get("Retry-After", "1") or 1)
    return error_from(str(body["type"]), str(body.get("detail", "")), retry_after)


def _quote(task_id: str) -> str:
    return quote(task_id, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != []}


def _request(request: PublishRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": request.subject,
        "payload": request.payload,
        "headers": dict(request.headers),
        "priority": request.priority,
    }
    optional = {"delay": request.delay, "run_at": request.run_at,
                "idempotency_key": request.idempotency_key,
                "max_attempts": request.max_attempts, "timeout": request.timeout}  # fmt: skip
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.retry is not None:
        r = request.retry
        body["retry"] = {"base": r.base, "factor": r.factor, "cap": r.cap, "jitter": r.jitter}
    return body


def _page(body: Mapping[str, Any]) -> Page:
    return Page([_record(item) for item in body["items"]], body.get("next_cursor"))


def _record(body: Mapping[str, Any]) -> TaskRecord:
    task = Task(
        id=body["id"], subject=body["subject"], payload=body.get("payload"),
        headers=dict(body.get("headers") or {}), idempotency_key=body.get("idempotency_key"),
        run_at=body["run_at"], created_at=body["created_at"], attempt=body["attempt"],
        max_attempts=body.get("max_attempts"), timeout=body.get("timeout"),
        priority=body.get("priority", 0), schedule=body.get("schedule"),
        workflow_run=body.get("workflow_run"), step=body.get("step"),
    )  # fmt: skip
    errors = tuple(AttemptError(e["attempt"], e["at"], e["message"], e["kind"])
                   for e in body.get("errors", []))  # fmt: skip
    return TaskRecord(
        task=task, state=State(body["state"]), updated_at=body["updated_at"],
        lease_owner=body.get("lease_owner"), lease_until=body.get("lease_until"),
        result=body.get("result"), errors=errors,
        cancel_requested=body.get("cancel_requested", False),
        finished_at=body.get("finished_at"),
    )  # fmt: skip
