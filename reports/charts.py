"""Small hand-built SVG charts for the report (no plotting library).

Each function returns SVG markup (escaped) sized for an A4 column; WeasyPrint
draws it inline as vector graphics. Inputs are plain numbers already read
from the gate results (the ROC curve and histograms too: the performance gate
records them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 460
FONT = 'font-family="DejaVu Sans, sans-serif"'
BLUE = "#1f5f99"
ORANGE = "#c8651b"
GREY = "#888888"
RED = "#b22222"


def _t(
    x: float,
    y: float,
    text: str,
    *,
    size: int = 9,
    anchor: str = "start",
    fill: str = "#222",
    weight: str = "normal",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}" font-weight="{weight}" {FONT}>{escape(text)}</text>'
    )


def _svg(height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


@dataclass(frozen=True)
class _Frame:
    left: float
    top: float
    width: float
    height: float
    x_max: float = 1.0
    y_max: float = 1.0

    def x(self, value: float) -> float:
        return self.left + self.width * min(max(value / self.x_max, 0.0), 1.0)

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - min(max(value / self.y_max, 0.0), 1.0))

    def axes(self, x_label: str, y_label: str, ticks: int = 5) -> list[str]:
        out = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.width}" height="{self.height}" '
            'fill="none" stroke="#444" stroke-width="0.8"/>'
        ]
        for i in range(ticks + 1):
            fx = self.x_max * i / ticks
            fy = self.y_max * i / ticks
            out.append(
                _t(self.x(fx), self.top + self.height + 11, _num(fx), size=8, anchor="middle")
            )
            out.append(_t(self.left - 4, self.y(fy) + 3, _num(fy), size=8, anchor="end"))
            if 0 < i < ticks:
                out.append(
                    f'<line x1="{self.left}" y1="{self.y(fy):.1f}" '
                    f'x2="{self.left + self.width}" y2="{self.y(fy):.1f}" '
                    'stroke="#ddd" stroke-width="0.5"/>'
                )
        out.append(
            _t(self.left + self.width / 2, self.top + self.height + 24, x_label, anchor="middle")
        )
        out.append(
            f'<text transform="translate({self.left - 30:.1f},{self.top + self.height / 2:.1f}) '
            f'rotate(-90)" font-size="9" text-anchor="middle" {FONT}>{escape(y_label)}</text>'
        )
        return out


def _polyline(
    frame: _Frame,
    points: Sequence[tuple[float, float]],
    color: str,
    width: float = 1.6,
    dash: str = "",
) -> str:
    path = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{width}"{extra}/>'


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (label, color) in enumerate(items):
        yy = y + i * 12
        out.append(f'<rect x="{x}" y="{yy - 7}" width="10" height="8" fill="{color}"/>')
        out.append(_t(x + 14, yy, label, size=8))
    return out


def roc(
    points: Sequence[tuple[float, float]],
    ks: tuple[float, float, float, float],
    auc: str,
    ks_value: str,
) -> str:
    f = _Frame(left=50, top=12, width=250, height=200)
    body = f.axes(
        "false positive rate (repaid applicants declined)", "true positive rate (defaults declined)"
    )
    body.append(_polyline(f, [(0, 0), (1, 1)], GREY, 0.8, "3,3"))
    body.append(_polyline(f, points, BLUE))
    fpr, tpr, _gap, score = ks
    body.append(
        f'<line x1="{f.x(fpr):.1f}" y1="{f.y(fpr):.1f}" x2="{f.x(fpr):.1f}" y2="{f.y(tpr):.1f}" '
        f'stroke="{ORANGE}" stroke-width="1.4"/>'
    )
    body.append(f'<circle cx="{f.x(fpr):.1f}" cy="{f.y(tpr):.1f}" r="3" fill="{ORANGE}"/>')
    body.extend(_legend(312, 30, [(f"ROC, AUC {auc}", BLUE), (f"KS {ks_value}", ORANGE)]))
    body.append(_t(312, 62, f"KS point: FPR {fpr:.3f},", size=8))
    body.append(_t(312, 73, f"TPR {tpr:.3f}, score {score:.3f}", size=8))
    return _svg(250, body, "ROC curve with the KS point")


def histogram(edges: Sequence[float], defaults: Sequence[float], repaid: Sequence[float]) -> str:
    top = max([*defaults, *repaid, 0.01])
    f = _Frame(left=50, top=12, width=300, height=150, y_max=top * 1.1)
    body = f.axes("predicted probability of default", "share of outcome group")
    for values, color, offset in ((repaid, BLUE, 0.0), (defaults, ORANGE, 0.5)):
        for i, v in enumerate(values):
            x0, x1 = f.x(edges[i]), f.x(edges[i + 1])
            w = (x1 - x0) / 2
            body.append(
                f'<rect x="{x0 + offset * (x1 - x0):.1f}" y="{f.y(v):.1f}" width="{w:.1f}" '
                f'height="{f.y(0) - f.y(v):.1f}" fill="{color}" opacity="0.85"/>'
            )
    body.extend(_legend(362, 30, [("repaid (0)", BLUE), ("defaulted (1)", ORANGE)]))
    return _svg(200, body, "Score distributions by outcome")


def calibration(rows: Sequence[tuple[int, float, float]]) -> str:
    """``rows``: (decile, mean predicted, observed rate)."""
    top = max([p for _, p, _ in rows] + [o for _, _, o in rows] + [0.05]) * 1.1
    f = _Frame(left=50, top=12, width=250, height=180, x_max=top, y_max=top)
    body = f.axes("mean predicted default rate", "observed default rate")
    body.append(_polyline(f, [(0, 0), (top, top)], GREY, 0.8, "3,3"))
    body.append(_polyline(f, [(p, o) for _, p, o in rows], BLUE, 1.2))
    for decile, p, o in rows:
        body.append(f'<circle cx="{f.x(p):.1f}" cy="{f.y(o):.1f}" r="2.6" fill="{BLUE}"/>')
        body.append(_t(f.x(p) + 4, f.y(o) - 3, str(decile), size=7, fill=GREY))
    body.extend(_legend(312, 30, [("deciles of score", BLUE), ("perfect calibration", GREY)]))
    return _svg(230, body, "Calibration by score decile")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None
    high: float | None = None
    color: str = BLUE
    note: str = ""


def bars(
    items: Sequence[Bar],
    *,
    x_max: float,
    x_label: str,
    lines: Sequence[tuple[float, str, str]] = (),
    label_width: int = 150,
    title: str = "",
) -> str:
    """Horizontal bars with optional confidence whiskers and reference lines."""
    row = 15
    height = 30 + row * len(items) + 24
    f = _Frame(
        left=label_width,
        top=10,
        width=WIDTH - label_width - 70,
        height=row * len(items) + 6,
        x_max=x_max,
    )
    body = [
        f'<line x1="{f.left}" y1="{f.top}" x2="{f.left}" y2="{f.top + f.height}" '
        'stroke="#444" stroke-width="0.8"/>',
        f'<line x1="{f.left}" y1="{f.top + f.height}" x2="{f.left + f.width}" '
        f'y2="{f.top + f.height}" stroke="#444" stroke-width="0.8"/>',
    ]
    for i in range(5):
        v = x_max * i / 4
        body.append(_t(f.x(v), f.top + f.height + 11, _num(v), size=8, anchor="middle"))
    for i, item in enumerate(items):
        y = f.top + 4 + i * row
        body.append(_t(f.left - 5, y + 8, item.label, size=8, anchor="end"))
        body.append(
            f'<rect x="{f.left}" y="{y:.1f}" width="{f.x(item.value) - f.left:.1f}" '
            f'height="{row - 5}" fill="{item.color}" opacity="0.85"/>'
        )
        if item.low is not None and item.high is not None:
            yc = y + (row - 5) / 2
            body.append(
                f'<line x1="{f.x(item.low):.1f}" y1="{yc:.1f}" x2="{f.x(item.high):.1f}" '
                f'y2="{yc:.1f}" stroke="#111" stroke-width="1"/>'
            )
            for end in (item.low, item.high):
                body.append(
                    f'<line x1="{f.x(end):.1f}" y1="{yc - 3:.1f}" x2="{f.x(end):.1f}" '
                    f'y2="{yc + 3:.1f}" stroke="#111" stroke-width="1"/>'
                )
        body.append(_t(f.left + f.width + 4, y + 8, item.note or _num(item.value), size=8))
    for value, label, color in lines:
        body.append(
            f'<line x1="{f.x(value):.1f}" y1="{f.top:.1f}" x2="{f.x(value):.1f}" '
            f'y2="{f.top + f.height:.1f}" stroke="{color}" stroke-width="1" '
            'stroke-dasharray="4,2"/>'
        )
        body.append(
            _t(f.x(value), f.top + f.height + 22, label, size=7, anchor="middle", fill=color)
        )
    body.append(_t(f.left + f.width / 2, height - 2, x_label, size=8, anchor="middle"))
    return _svg(height, body, title or x_label)
