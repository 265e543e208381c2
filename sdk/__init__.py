"""What users import: ``App`` to declare handlers, ``Client`` to publish and inspect tasks.

    from atp.sdk import App, Client, Retry

Test helpers live in ``atp.sdk.testing``; port conformance suites for plugin authors in
``atp.sdk.conformance``. Neither is imported here.
"""

from atp.core.context import current_task
from atp.core.errors import (
    AlreadyExists,
    AtpError,
    BackendUnavailable,
    ConfigError,
    Fail,
    FencedOut,
    IdempotencyConflict,
    InvalidInput,
    KeyActive,
    NotFound,
    PayloadTooLarge,
    PluginError,
    Retry,
    StateConflict,
)
from atp.core.fleet import Fleet
from atp.core.flow.breaker import Breaker, BreakerState, Circuit
from atp.core.flow.rules import Limit, Rate
from atp.core.flow.service import FlowStatus
from atp.core.model import AttemptError, Dedup, DedupMode, RetryPolicy, State, Task, TaskRecord
from atp.core.ports import Member, Page
from atp.core.settings import Settings
from atp.core.workflows.runs import Run, RunState, StepState
from atp.sdk.app import App, TaskContext, context
from atp.sdk.client import Client, Published, PublishRequest
from atp.sdk.sync import SyncClient
from atp.sdk.workflow import Workflow

__all__ = [
    "AlreadyExists",
    "App",
    "AtpError",
    "AttemptError",
    "BackendUnavailable",
    "Breaker",
    "BreakerState",
    "Circuit",
    "Client",
    "ConfigError",
    "Dedup",
    "DedupMode",
    "Fail",
    "FencedOut",
    "Fleet",
    "FlowStatus",
    "IdempotencyConflict",
    "InvalidInput",
    "KeyActive",
    "Limit",
    "Member",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PluginError",
    "PublishRequest",
    "Published",
    "Rate",
    "Retry",
    "RetryPolicy",
    "Run",
    "RunState",
    "Settings",
    "State",
    "StateConflict",
    "StepState",
    "SyncClient",
    "Task",
    "TaskContext",
    "TaskRecord",
    "Workflow",
    "context",
    "current_task",
]
