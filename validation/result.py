"""What a gate returns: a verdict, measured values and thresholds, all as JSON without floats.

Numbers are rendered by :func:`fmt` (12 significant digits, plain decimal
notation), so the same inputs give byte-identical canonical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

Verdict = Literal["passed", "warned", "failed", "insufficient_data", "error"]
VERDICTS: tuple[str, ...] = ("passed", "warned", "failed", "insufficient_data", "error")
# Severity order used to combine verdicts: the worst one wins.
_SEVERITY: dict[str, int] = {
    "passed": 0,
    "warned": 1,
    "insufficient_data": 2,
    "failed": 3,
    "error": 4,
}
SIGNIFICANT_DIGITS = 12


def fmt(value: float | int | Decimal) -> str:
    """A measured number as a plain decimal string with 12 significant digits."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a measured number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    text = format(Decimal(format(number, f".{SIGNIFICANT_DIGITS}g")), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def dec(value: float) -> Decimal:
    """The decimal a threshold is compared with: exactly the number shown in ``values``."""
    return Decimal(fmt(value))


def worst(verdicts: list[Verdict]) -> Verdict:
    """The most severe of ``verdicts`` (error > failed > insufficient_data > warned > passed)."""
    if not verdicts:
        return "passed"
    return max(verdicts, key=lambda v: _SEVERITY[v])


def jsonable(value: Any) -> Any:
    """JSON data without floats: floats (and numpy numbers) become :func:`fmt` strings."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)):
        return fmt(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return jsonable(value.tolist())
    raise TypeError(f"{type(value).__name__} is not JSON data")


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate on one model version.

    ``values`` and ``thresholds`` hold decimal strings; ``details`` holds
    JSON data without floats (per group, per feature, per decile).
    """

    gate_id: str
    kind: str
    verdict: Verdict
    blocking: bool
    values: dict[str, str]
    thresholds: dict[str, str]
    details: dict[str, Any]
    library_versions: dict[str, str]
    message: str

    @property
    def ok(self) -> bool:
        """True when the gate does not stop approval (passed or warned)."""
        return self.verdict in ("passed", "warned")

    def canonical(self) -> dict[str, Any]:
        """JSON data, no floats, deterministic for the same inputs."""
        return {
            "gate_id": self.gate_id,
            "kind": self.kind,
            "verdict": self.verdict,
            "blocking": self.blocking,
            "values": {str(k): str(v) for k, v in sorted(self.values.items())},
            "thresholds": {str(k): str(v) for k, v in sorted(self.thresholds.items())},
            "details": jsonable(self.details),
            "library_versions": dict(sorted(self.library_versions.items())),
            "message": self.message,
        }
