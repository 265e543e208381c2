"""How the leader builds each scheduler component from its Platform.

A component takes only what it uses (the store, the dispatcher, the clock, the emitter,
plain settings values); these factories are the one place that reads them off the
Platform, when leadership begins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from atp.core.cron.service import schedule_store
from atp.core.errors import ConfigError
from atp.core.platform import Platform
from atp.core.ports import BreakerLedger, FlowLedger, ScheduleStore
from atp.core.scheduler.component import Component, Leadership
from atp.core.scheduler.cron import Cron
from atp.core.scheduler.flow_sweep import FlowSweep
from atp.core.scheduler.forwarder import Forwarder
from atp.core.scheduler.pruner import Pruner
from atp.core.scheduler.reaper import Reaper
from atp.core.service import TaskService
from atp.core.workflows.engine import WorkflowEngine
from atp.core.workflows.sweep import WorkflowSweep

__all__ = [
    "ComponentFactory",
    "cron",
    "flow_sweep",
    "forwarder",
    "pruner",
    "reaper",
    "workflow_sweep",
]

ComponentFactory = Callable[[Platform, Leadership], Component]
"""Builds one component from the Platform and the leader it runs under."""

_cron_log = logging.getLogger("atp.scheduler.cron")
_sweep_log = logging.getLogger("atp.scheduler.workflows")


def forwarder(platform: Platform, leader: Leadership) -> Forwarder:
    """The Forwarder, over the platform's store and dispatcher."""
    return Forwarder(
        platform.store,
        platform.dispatcher,
        platform.clock,
        platform.settings,
        durable=platform.transport.capabilities.durable,
        leader=leader,
    )


def cron(platform: Platform, leader: Leadership) -> Cron:
    """The Cron component, publishing through a TaskService; idle over a store that keeps
    no schedules (logged as an error, since declared schedules would never fire)."""
    return Cron(
        _schedules(platform),
        TaskService(platform),
        platform.store,
        platform.clock,
        platform.emit,
        leader=leader,
    )


def workflow_sweep(platform: Platform, leader: Leadership) -> WorkflowSweep:
    """The WorkflowSweep; idle over a store that keeps no workflows."""
    try:
        engine: WorkflowEngine | None = WorkflowEngine(platform)
    except ConfigError as exc:
        _sweep_log.info("workflow runs are not swept: %s", exc)
        engine = None
    return WorkflowSweep(engine, platform.clock, leader=leader)


def reaper(platform: Platform, leader: Leadership) -> Reaper:
    """The Reaper, over the platform's store and dispatcher."""
    return Reaper(
        platform.store,
        platform.dispatcher,
        platform.clock,
        platform.emit,
        platform.settings,
        durable=platform.transport.capabilities.durable,
        leader=leader,
    )


def flow_sweep(platform: Platform, leader: Leadership) -> FlowSweep:
    """The FlowSweep, every ``reap_interval``; idle over a store that keeps no ledger."""
    store = platform.store
    ledger = store if isinstance(store, FlowLedger) else None
    breakers = store if isinstance(store, BreakerLedger) else None
    settings = platform.settings
    return FlowSweep(
        ledger,
        platform.clock,
        settings.reap_interval,
        reserve=settings.lease,
        leader=leader,
        breakers=breakers,
    )


def pruner(platform: Platform, leader: Leadership) -> Pruner:
    """The Pruner, over the platform's store."""
    settings = platform.settings
    return Pruner(
        platform.store,
        platform.clock,
        retention=settings.retention,
        batch=settings.forward_batch,
        leader=leader,
    )


def _schedules(platform: Platform) -> ScheduleStore | None:
    try:
        return schedule_store(platform)
    except ConfigError as exc:
        _cron_log.error("cron schedules are not fired: %s", exc)
        return None
