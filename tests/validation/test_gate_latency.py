"""Latency gate: p99 single-row scoring time."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from policies.schema import GateSpec
from validation.inputs import GateInputs
from validation.latency import nearest_rank
from validation.runner import run_gate


def test_nearest_rank() -> None:
    values = list(range(1, 101))
    assert nearest_rank(values, 0.99) == 99
    assert nearest_rank(values, 0.50) == 50
    assert nearest_rank([7], 0.99) == 7
    assert nearest_rank(list(range(1, 1001)), 0.99) == 990


def test_fast_model_passes(make_inputs: Callable[..., GateInputs]) -> None:
    spec = GateSpec(id="latency", kind="latency", params={"max_p99_ms": 100, "runs": 200})
    result = run_gate(spec, make_inputs())
    assert result.verdict == "passed"
    p50, p99, top = (Decimal(result.values[k]) for k in ("p50_ms", "p99_ms", "max_ms"))
    assert Decimal(0) < p50 <= p99 <= top
    assert p99 <= Decimal(100)
    assert result.message == f"p99 latency {result.values['p99_ms']} ms <= 100 ms"
    assert result.details == {"runs": 200, "warmup": 50, "num_threads": 1, "features": 11}


def test_limit_below_any_possible_time_fails(make_inputs: Callable[..., GateInputs]) -> None:
    spec = GateSpec(
        id="latency", kind="latency", params={"max_p99_ms": "0.000001", "runs": 20, "warmup": 0}
    )
    result = run_gate(spec, make_inputs())
    assert result.verdict == "failed"
    assert result.message == f"p99 latency {result.values['p99_ms']} ms > 0.000001 ms"


def test_warning_level(make_inputs: Callable[..., GateInputs]) -> None:
    spec = GateSpec(
        id="latency",
        kind="latency",
        params={"max_p99_ms": 100, "warn_p99_ms": "0.000001", "runs": 20},
    )
    result = run_gate(spec, make_inputs())
    assert result.verdict == "warned"
    assert result.thresholds == {"max_p99_ms": "100", "warn_p99_ms": "0.000001"}
