"""Durable workflows: DAGs of ordinary atp tasks, advanced by workers and the scheduler.

Only the leaf modules are imported here (definitions, conditions, runs), so ``atp.core.ports``
can name their types; the engine lives in ``atp.core.workflows.engine``.
"""

from atp.core.workflows.conditions import evaluate, validate_condition
from atp.core.workflows.definition import (
    Definition,
    Step,
    StepKind,
    definition_from_dict,
    definition_to_dict,
)
from atp.core.workflows.runs import Run, RunPage, RunQuery, RunState, StepRun, StepState

__all__ = [
    "Definition",
    "Run",
    "RunPage",
    "RunQuery",
    "RunState",
    "Step",
    "StepKind",
    "StepRun",
    "StepState",
    "definition_from_dict",
    "definition_to_dict",
    "evaluate",
    "validate_condition",
]
