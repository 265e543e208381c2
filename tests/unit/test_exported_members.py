"""The public surface of atp.sdk is pinned: a change to it is a decision, made here."""

import atp.sdk
import atp.sdk.testing

SDK = [
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
TESTING = ["NotIdle", "TestPlatform", "TestScheduler", "TestWorker"]


def test_sdk_exports():
    assert atp.sdk.__all__ == SDK


def test_testing_exports():
    assert atp.sdk.testing.__all__ == TESTING


def test_every_export_exists_and_is_documented():
    for module in (atp.sdk, atp.sdk.testing):
        for name in module.__all__:
            member = getattr(module, name)
            assert member.__doc__, f"{module.__name__}.{name} has no docstring"


def test_nothing_public_is_left_out():
    public = {name for name in vars(atp.sdk) if not name.startswith("_")}
    modules = {"app", "client", "sync", "testing", "conformance", "workflow", "wire", "outbox"}
    assert public - modules == set(SDK)
