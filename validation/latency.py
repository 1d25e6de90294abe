"""Latency gate: p99 time to score one row with the candidate's LightGBM booster.

One validation row as a ``(1, n_features)`` float64 array, ``warmup`` calls
discarded, then ``runs`` timed calls of ``Booster.predict`` (``num_threads``
threads, 1 by default: for one row, waking an OpenMP team costs more than
the trees) with ``time.perf_counter_ns``. The p99 is the nearest-rank 99th percentile.
Timing varies from run to run, so ``values`` (the measured times) differ
between runs; the verdict is stable while the model is far from the limit.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from validation.result import GateResult, Verdict, fmt
from validation.spec import GateSpecLike, LatencyParamsLike, params_of
from validation.versions import library_versions

if TYPE_CHECKING:
    from validation.inputs import GateInputs


def nearest_rank(sorted_values: list[int], q: float) -> int:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ascending ``sorted_values``."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def single_row_timings(
    inputs: GateInputs, *, runs: int, warmup: int, num_threads: int = 1
) -> list[int]:
    """Ascending nanosecond timings of ``runs`` single-row predictions after ``warmup``."""
    booster = inputs.booster
    row = inputs.x_validation[:1].copy()
    for _ in range(warmup):
        booster.predict(row, num_threads=num_threads)
    timings: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        booster.predict(row, num_threads=num_threads)
        timings.append(clock() - start)
    timings.sort()
    return timings


def evaluate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    """p99 single-row scoring time <= max_p99_ms."""
    params: LatencyParamsLike = params_of(spec)
    timings = single_row_timings(
        inputs, runs=params.runs, warmup=params.warmup, num_threads=params.num_threads
    )
    p50_ms = Decimal(nearest_rank(timings, 0.50)) / Decimal(1_000_000)
    p99_ms = Decimal(nearest_rank(timings, 0.99)) / Decimal(1_000_000)
    max_ms = Decimal(timings[-1]) / Decimal(1_000_000)
    values = {"p50_ms": fmt(p50_ms), "p99_ms": fmt(p99_ms), "max_ms": fmt(max_ms)}
    thresholds = {"max_p99_ms": fmt(params.max_p99_ms)}
    verdict: Verdict
    if p99_ms > params.max_p99_ms:
        verdict = "failed"
        message = f"p99 latency {values['p99_ms']} ms > {thresholds['max_p99_ms']} ms"
    elif params.warn_p99_ms is not None and p99_ms > params.warn_p99_ms:
        verdict = "warned"
        message = f"p99 latency {values['p99_ms']} ms > warning level {fmt(params.warn_p99_ms)} ms"
    else:
        verdict = "passed"
        message = f"p99 latency {values['p99_ms']} ms <= {thresholds['max_p99_ms']} ms"
    if params.warn_p99_ms is not None:
        thresholds["warn_p99_ms"] = fmt(params.warn_p99_ms)
    details = {
        "runs": params.runs,
        "warmup": params.warmup,
        "num_threads": params.num_threads,
        "features": len(inputs.features),
    }
    return GateResult(
        gate_id=spec.id,
        kind=spec.kind,
        verdict=verdict,
        blocking=spec.blocking,
        values=values,
        thresholds=thresholds,
        details=details,
        library_versions=library_versions("lightgbm"),
        message=message,
    )
