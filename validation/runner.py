"""Run a policy's gates on a candidate. Fail closed.

An unknown gate kind, parameters of the wrong kind, a missing input or a gate
that raises gives the verdict ``"error"`` with the reason in ``message``:
never a pass. A gate that returns something other than a :class:`GateResult`
with a known verdict is an error too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from core.errors import GovregError, InputError
from validation.result import VERDICTS, GateResult
from validation.spec import GateSpecLike, PolicyLike
from validation.versions import library_versions

if TYPE_CHECKING:
    from validation.inputs import GateInputs

GateFunction = Callable[[GateSpecLike, "GateInputs"], GateResult]


class EmptyPolicyError(InputError):
    """A policy without gates: it would approve anything, so it is refused."""


def _gates() -> dict[str, GateFunction]:
    from validation import (
        data_schema,
        explainability,
        fairness,
        latency,
        performance,
        stability,
    )

    return {
        "performance": performance.evaluate,
        "fairness": fairness.evaluate,
        "data_schema": data_schema.evaluate,
        "explainability": explainability.evaluate,
        "stability": stability.evaluate,
        "latency": latency.evaluate,
    }


def error_result(spec: GateSpecLike, reason: str) -> GateResult:
    """The result of a gate that could not be evaluated: verdict ``"error"``."""
    return GateResult(
        gate_id=str(spec.id),
        kind=str(spec.kind),
        verdict="error",
        blocking=bool(spec.blocking),
        values={},
        thresholds={},
        details={},
        library_versions=library_versions(),
        message=reason,
    )


def run_gate(
    spec: GateSpecLike, inputs: GateInputs, *, gates: dict[str, GateFunction] | None = None
) -> GateResult:
    """Evaluate one gate; any failure to evaluate is an ``"error"`` result, never a pass.

    ``gates`` replaces the table of gate functions (kind -> function); tests
    use it to plug in a gate that raises.
    """
    table = _gates() if gates is None else gates
    function = table.get(str(spec.kind))
    if function is None:
        return error_result(spec, f"unknown gate kind '{spec.kind}': refusing to evaluate it")
    try:
        result = function(spec, inputs)
    except GovregError as exc:
        return error_result(spec, f"missing or invalid input: {exc}")
    except Exception as exc:  # noqa: BLE001 -- fail closed: any crash of a gate is an error verdict
        return error_result(spec, f"gate raised {type(exc).__name__}: {exc}")
    if not isinstance(result, GateResult) or result.verdict not in VERDICTS:
        return error_result(spec, "gate returned no valid result")
    return result


def run_policy(
    policy: PolicyLike,
    inputs: GateInputs,
    *,
    before_gate: Callable[[GateSpecLike], None] | None = None,
) -> list[GateResult]:
    """Evaluate every gate of ``policy`` (a ``policies.schema.Policy``) in order.

    One result per gate; a policy without gates is refused (the schema
    refuses it already; this holds for any other caller too). ``before_gate``
    is told each gate before it runs (progress for the user).
    """
    if not policy.gates:
        raise EmptyPolicyError(f"policy {policy.ref} has no gates; an empty policy fails")
    table = _gates()
    results = []
    for spec in policy.gates:
        if before_gate is not None:
            before_gate(spec)
        results.append(run_gate(spec, inputs, gates=table))
    return results
