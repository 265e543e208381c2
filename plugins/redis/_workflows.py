"""Workflows in the Redis store (the WorkflowStore port), on the store's shard.

- a hash per workflow name, ``workflow:<name>``: version -> definition JSON, written
  once (``HSETNX``); a sorted set ``workflows`` of the names;
- a hash per run, ``run:<id>``: ``j`` (the run_to_dict JSON), ``rev``, ``wf``, ``st``;
- sorted sets of run ids, score 0, listed by id: ``runs`` (all), ``runs_in:<state>``
  and ``workflow_runs:<name>`` (one workflow's);
- ``runs_due``: the active runs that have a ``wake_at``, scored by it, for the sweep.

Every write is one script for the whole batch; run writes compare ``rev`` inside it.
Reads are pipelines: a listing merges the newest ids of the state indexes (or reads the
``runs`` index); one by workflow walks that workflow's index in pages, filtering on ``wf``
and ``st`` before the JSON is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atp.core.codec import dumps, loads
from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.records import changed_definition
from atp.core.workflows.definition import Definition, definition_from_dict, definition_to_dict
from atp.core.workflows.runs import (
    Run,
    RunPage,
    RunQuery,
    RunState,
    run_from_dict,
    run_to_dict,
)
from atp.plugins.redis._connection import Link, Scripts
from atp.plugins.redis._records import num
from atp.plugins.redis.keys import StoreKeys

__all__ = ["WorkflowMethods"]

_PAGE = 500
_STATES = [state.value for state in RunState]


class WorkflowMethods:
    """The WorkflowStore methods of RedisStore."""

    _link: Link
    _keys: StoreKeys

    async def put_definitions(self, definitions: Sequence[Definition], *, now: float) -> list[bool]:
        """Create each (name, version) not stored yet, all or none; a stored one must have
        the same steps (else AlreadyExists, writing nothing)."""
        if not definitions:
            return []
        keys = [(d.name, d.version) for d in definitions]
        if len(set(keys)) != len(keys):
            raise InvalidInput("a workflow version appears twice in one batch")
        bodies = [dumps(definition_to_dict(d)) for d in definitions]
        script_keys = [self._keys.index("workflows"), *(self._keys.workflow(n) for n, _ in keys)]
        for _ in range(len(definitions) + 1):  # a pass may settle one stored in other bytes
            args: list[Any] = []
            for (name, version), body in zip(keys, bodies, strict=True):
                args += [name, version, body]
            reply = await self._workflow_script("workflow_put_definitions", script_keys, args)
            if reply[0] == 1:
                return [flag == 1 for flag in reply[1:]]
            index, stored = int(reply[1]) - 1, reply[2]
            if loads(stored) != definition_to_dict(definitions[index]):
                raise AlreadyExists(changed_definition(*keys[index]))
            bodies[index] = stored
        raise AssertionError("unreachable: every definition was settled")

    async def get_definitions(
        self, keys: Sequence[tuple[str, int | None]]
    ) -> list[Definition | None]:
        """The definition of each (name, version), the highest for a None version, from one
        snapshot."""
        if not keys:
            return []
        script_keys = [self._keys.workflow(name) for name, _ in keys]
        args = ["" if version is None else version for _, version in keys]
        reply = await self._workflow_script("workflow_get_definitions", script_keys, args)
        return [None if body is None else definition_from_dict(loads(body)) for body in reply]

    async def list_definitions(self) -> list[Definition]:
        """Every definition, by name, then version."""
        async with self._link.guard("listing workflow definitions"):
            client = self._link.client
            names = [n.decode() for n in await client.zrange(self._keys.index("workflows"), 0, -1)]
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._keys.workflow(name))
                tables = await pipe.execute()
        found = [definition_from_dict(loads(body)) for table in tables for body in table.values()]
        return sorted(found, key=lambda d: (d.name, d.version))

    async def create_runs(self, runs: Sequence[Run]) -> list[Run]:
        """Store new runs at revision 1, all or none; AlreadyExists for a taken id."""
        if not runs:
            return []
        ids = [run.id for run in runs]
        if len(set(ids)) != len(ids):
            raise AlreadyExists("a workflow run id appears twice in one batch")
        created = [run.replace(revision=1) for run in runs]
        keys = [self._keys.index("runs"), self._keys.index("runs_due"), *self._state_keys()]
        args: list[Any] = [*_STATES]
        for run in created:
            keys += [self._keys.run(run.id), self._keys.workflow_runs(run.workflow)]
            args += [run.id, run.workflow, run.state.value, _due(run), _encode(run)]
        taken = await self._workflow_script("workflow_create_runs", keys, args)
        if taken != 0:
            raise AlreadyExists(f"a workflow run with id {ids[int(taken) - 1]!r} exists already")
        return created

    async def get_runs(self, ids: Sequence[str]) -> list[Run | None]:
        """The run of each id, or None for an unknown id (one round trip)."""
        if not ids:
            return []
        async with (
            self._link.guard("reading workflow runs"),
            self._link.client.pipeline(transaction=False) as pipe,
        ):
            for run_id in ids:
                pipe.hget(self._keys.run(run_id), "j")
            bodies = await pipe.execute()
        return [None if body is None else _decode(body) for body in bodies]

    async def update_runs(self, runs: Sequence[Run]) -> list[bool]:
        """Compare-and-set each run on its revision, in one script; per run whether it
        was written (at ``revision + 1``)."""
        if not runs:
            return []
        keys = [self._keys.index("runs_due"), *self._state_keys()]
        args: list[Any] = [*_STATES]
        for run in runs:
            new = run.replace(revision=run.revision + 1)
            keys += [self._keys.run(run.id), self._keys.workflow_runs(run.workflow)]
            args += [
                run.id,
                run.revision,
                new.revision,
                run.workflow,
                run.state.value,
                _due(run),
                _encode(new),
            ]
        reply = await self._workflow_script("workflow_update_runs", keys, args)
        return [flag == 1 for flag in reply]

    async def list_runs(self, query: RunQuery) -> RunPage:
        """Runs matching ``query``, newest first (by id); the cursor is the last id of the
        page. The JSON is read after the ids, so a run that changed in between and no
        longer matches is left out of its page."""
        if query.limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {query.limit}")
        if query.workflow is not None:
            ids = await self._ids_of_workflow(query.workflow, query)
        elif query.states is not None:
            states = sorted(query.states)
            ids = await self._newest([self._keys.runs_in(s) for s in states], query)
        else:
            ids = await self._newest([self._keys.index("runs")], query)
        page = ids[: query.limit]
        runs = await self.get_runs(page)
        # Checked again on the JSON: a run may have changed between the two reads.
        items = [run for run in runs if run is not None and query.matches(run)]
        return RunPage(items, page[-1] if len(ids) > query.limit else None)

    async def due_runs(self, *, now: float, limit: int) -> list[Run]:
        """Active runs with ``wake_at <= now``, earliest first, then by id; reads only."""
        if limit < 1:
            return []
        async with self._link.guard("reading due workflow runs"):
            ids = await self._link.client.zrangebyscore(
                self._keys.index("runs_due"), "-inf", num(now), start=0, num=limit
            )
        runs = await self.get_runs([run_id.decode() for run_id in ids])
        due = [run for run in runs if run is not None and _due_by(run, now)]
        return sorted(due, key=lambda run: (run.wake_at, run.id))

    async def _newest(self, indexes: list[str], query: RunQuery) -> list[str]:
        """Up to ``limit + 1`` ids below the cursor, newest first: the newest of each
        index, merged, read in one transaction (a consistent view)."""
        if not indexes:
            return []
        upper = "+" if query.cursor is None else "(" + query.cursor
        async with (
            self._link.guard("listing workflow runs"),
            self._link.client.pipeline(transaction=True) as pipe,
        ):
            for index in indexes:
                pipe.zrevrangebylex(index, upper, "-", 0, query.limit + 1)
            pages = await pipe.execute()
        ids = sorted((run_id.decode() for page in pages for run_id in page), reverse=True)
        return ids[: query.limit + 1]

    async def _ids_of_workflow(self, name: str, query: RunQuery) -> list[str]:
        """Up to ``limit + 1`` ids of the workflow's runs in ``query.states``, newest
        first, walking its index in pages and filtering on ``wf`` and ``st``."""
        workflow = name.encode()
        states = None if query.states is None else {s.value.encode() for s in query.states}
        index = self._keys.workflow_runs(name)
        upper = "+" if query.cursor is None else "(" + query.cursor
        found: list[str] = []
        while len(found) <= query.limit:
            async with self._link.guard("listing workflow runs"):
                client = self._link.client
                page = await client.zrevrangebylex(index, upper, "-", 0, _PAGE)
                if not page:
                    break
                async with client.pipeline(transaction=False) as pipe:
                    for run_id in page:
                        pipe.hmget(self._keys.run(run_id.decode()), ("wf", "st"))
                    rows = await pipe.execute()
            for run_id, (wf, st) in zip(page, rows, strict=True):
                if wf == workflow and (states is None or st in states):
                    found.append(run_id.decode())
            upper = "(" + page[-1].decode()
        return found[: query.limit + 1]

    def _state_keys(self) -> list[str]:
        return [self._keys.runs_in(state) for state in _STATES]

    async def _workflow_script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        async with self._link.guard(script):
            return await Scripts.run(self._link, script, keys, args)


def _due(run: Run) -> str:
    """The ``runs_due`` score of a run: its ``due_at``, or '' (not indexed)."""
    return "" if run.due_at is None else num(run.due_at)


def _due_by(run: Run, now: float) -> bool:
    """Checked again on the JSON: a run may have changed since its index entry."""
    return run.due_at is not None and run.due_at <= now


def _encode(run: Run) -> bytes:
    return dumps(run_to_dict(run))


def _decode(body: bytes) -> Run:
    return run_from_dict(loads(body))
