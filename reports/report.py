"""The compliance report: evidence JSON -> Jinja2 HTML -> WeasyPrint PDF/A-3b.

:func:`report_context` turns the evidence (and the performance gate's curves) into what
the template shows, in the order an examiner reads; :func:`render_html` fills
the template; :func:`render_pdf` renders PDF/A-3b with the evidence JSON
embedded as an associated file. The generation time lives only in the
embedded evidence, so the same ledger state gives the same pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports import charts

if TYPE_CHECKING:
    from reports.curves import Curves

NOT_RECORDED = "not recorded"
CURVES_NOT_RECORDED = "ROC curve and score histograms: not recorded at evaluation"
EVIDENCE_NAME = "evidence.json"
_PASSING = ("passed", "warned")
_STATISTIC_NAMES = {
    "adverse_impact_ratio": "AIR",
    "true_positive_rate": "TPR",
    "false_positive_rate": "FPR",
}
_INVENTORY = (
    ("purpose", "Purpose"),
    ("owner", "Owner"),
    ("risk_tier", "Risk tier"),
    ("approved_uses", "Approved uses"),
    ("limits", "Limits"),
)
_INVENTORY_KEYS = frozenset(key for key, _ in _INVENTORY)
MAPPING = (
    (
        "1. Summary",
        "SR 11-7 / SR 26-2 model inventory: status, approval and outstanding conditions",
    ),
    (
        "2. Inventory record",
        "SR 11-7 / SR 26-2 inventory: purpose, owner, risk tier, approved uses and limits",
    ),
    (
        "3. Data lineage",
        "SR 11-7 / SR 26-2 development documentation (data); EU AI Act Annex IV 2(d) data "
        "requirements",
    ),
    (
        "4. Gates",
        "SR 11-7 / SR 26-2 independent validation and outcomes analysis; EU AI Act Annex IV "
        "2(g) test logs and metrics; ECOA / Regulation B disparate impact screens "
        "(four-fifths rule) with group sizes and confidence intervals",
    ),
    (
        "5. Reason codes",
        "Regulation B (12 CFR 1002.9) principal reasons for adverse action, tied to the "
        "factors the model scores",
    ),
    (
        "6. Sign-offs",
        "EU AI Act Annex IV 2(g) test reports dated and signed by the responsible persons; "
        "Art. 14 human oversight; SR 11-7 / SR 26-2 effective challenge by an independent "
        "validator",
    ),
    ("7. Policy", "SR 11-7 / SR 26-2 model risk policy and approval criteria, by digest"),
    (
        "8. Audit trail",
        "EU AI Act Art. 12 automatic logging and Art. 18 record keeping; tamper evidence "
        "by signed checkpoints",
    ),
)


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def verdict_line(data: dict[str, Any]) -> tuple[str, str]:
    """(headline, class) of page 1: says plainly whether the version may be used."""
    status = data["status"]
    gates = data["gates"]
    failing = [g for g in gates if g.get("blocking") and g["verdict"] not in _PASSING]
    warned = [g["gate_id"] for g in gates if g["verdict"] == "warned"]
    missing = data["version_record"].get("signoffs_missing", [])
    passed = (
        f"all {len(gates)} gates passed ({', '.join(warned)} with a warning)"
        if warned
        else f"all {len(gates)} gates passed"
    )
    if status in ("approved", "promoted"):
        return (f"APPROVED: {passed} and every required sign-off is recorded.", "ok")
    if status == "gates_failed":
        names = ", ".join(f"{g['gate_id']} ({g['verdict']})" for g in failing) or "no results"
        return f"NOT APPROVED: gates failed: {names}.", "bad"
    if status == "awaiting_signoff":
        need = ", ".join(f"{m['missing']} x {m['role']}" for m in missing)
        return f"NOT APPROVED YET: {passed}; awaiting sign-off: {need}.", "warn"
    if status in ("submitted", "evaluating"):
        return f"NOT APPROVED: evaluation not completed (status {status}).", "warn"
    reason = data["version_record"].get("status_reason") or ""
    tail = f" ({reason})" if reason else ""
    return f"NOT IN USE: status {status}{tail}.", "bad"


def _pairs(values: dict[str, str], thresholds: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())] + [
        {"name": f"threshold {k}", "value": v} for k, v in sorted(thresholds.items())
    ]


def _performance(gate: dict[str, Any], curves: Curves | None, missing: str) -> list[dict[str, str]]:
    figures = []
    if curves is not None:
        from reports.curves import SOURCES

        values = gate.get("values", {})
        source = SOURCES[curves.source]
        figures.append(
            {
                "title": f"ROC curve on the validation set, with the KS point ({source})",
                "svg": charts.roc(
                    curves.roc,
                    curves.ks,
                    values.get("auc", f"{curves.auc:.4f}"),
                    values.get("ks", f"{curves.ks[2]:.4f}"),
                ),
            }
        )
        figures.append(
            {
                "title": "Score distributions by outcome (share of each outcome per bin)",
                "svg": charts.histogram(
                    curves.hist_edges, curves.hist_defaults, curves.hist_repaid
                ),
            }
        )
    else:
        figures.append({"title": "ROC curve and score distributions", "note": missing})
    table = gate.get("details", {}).get("calibration") or []
    if table:
        rows = [(int(r["bin"]), _f(r["mean_predicted"]), _f(r["observed_rate"])) for r in table]
        figures.append({"title": "Calibration by score decile", "svg": charts.calibration(rows)})
    return figures


def _percent(confidence: str) -> str:
    """A confidence level as the report prints it: "0.95" -> "95%"."""
    try:
        return f"{float(confidence) * 100:g}%"
    except ValueError:
        return confidence


def _rounded(value: Any, missing: str = "-") -> str:
    """A measured decimal string at 4 decimals for the group tables (None: ``missing``)."""
    if value is None:
        return missing
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def _group_row(group: dict[str, Any]) -> dict[str, Any]:
    has_air = group.get("adverse_impact_ratio") is not None
    return {
        "group": group["group"],
        "rows": group["rows"],
        "defaults": group.get("defaults", ""),
        "approved": group["approved"],
        "approval_rate": _rounded(group["approval_rate"]),
        "air": _rounded(group.get("adverse_impact_ratio")),
        "air_ci": (
            f"{_rounded(group.get('air_ci_low'))} – {_rounded(group.get('air_ci_high'))}"
            if has_air
            else "-"
        ),
        "tpr": _rounded(group.get("true_positive_rate"), "excluded"),
        "fpr": _rounded(group.get("false_positive_rate"), "excluded"),
    }


def _fairness(gate: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    figures: list[dict[str, str]] = []
    tables: list[dict[str, Any]] = []
    thresholds = gate.get("thresholds", {})
    min_air = _f(thresholds.get("min_adverse_impact_ratio", "0.8"))
    max_eod_text = thresholds.get("max_equalized_odds_difference", "")
    level = _percent(thresholds.get("confidence", "0.95"))
    for attribute, entry in sorted(gate.get("details", {}).get("attributes", {}).items()):
        groups = entry.get("groups") or []
        excluded = entry.get("excluded_groups") or []
        if not groups and not excluded:
            continue
        ref = entry.get("reference_group", "")
        rated = [g for g in groups if g.get("adverse_impact_ratio") is not None]
        if rated:
            air_bars = [
                charts.Bar(
                    label=f"{g['group']} (n={g['rows']})",
                    value=_f(g["adverse_impact_ratio"]),
                    low=_f(g.get("air_ci_low", g["adverse_impact_ratio"])),
                    high=_f(g.get("air_ci_high", g["adverse_impact_ratio"])),
                    color=charts.RED if _f(g["adverse_impact_ratio"]) < min_air else charts.BLUE,
                    note=f"{_f(g['approval_rate']):.1%} approved",
                )
                for g in rated
            ]
            top = max([1.1, *[b.high or b.value for b in air_bars]])
            figures.append(
                {
                    "title": f"{attribute}: adverse impact ratio by group vs '{ref}', "
                    f"with {level} bootstrap confidence intervals; approval rate at right",
                    "svg": charts.bars(
                        air_bars,
                        x_max=round(top + 0.05, 1),
                        x_label="adverse impact ratio (approval rate / reference group's)",
                        lines=[
                            (
                                min_air,
                                "four-fifths line "
                                f"{thresholds.get('min_adverse_impact_ratio', '0.8')}",
                                charts.RED,
                            )
                        ],
                    ),
                }
            )
        eod = entry.get("equalized_odds_difference")
        odds: list[charts.Bar] = []
        for g in groups:
            if g.get("true_positive_rate") is not None:
                odds.append(charts.Bar(f"{g['group']} TPR", _f(g["true_positive_rate"])))
            if g.get("false_positive_rate") is not None:
                odds.append(
                    charts.Bar(
                        f"{g['group']} FPR", _f(g["false_positive_rate"]), color=charts.ORANGE
                    )
                )
        if eod is not None and odds:
            over = _f(eod) > _f(max_eod_text) if max_eod_text else False
            odds.append(
                charts.Bar(
                    "difference",
                    _f(eod),
                    low=_f(entry.get("eod_ci_low", eod)),
                    high=_f(entry.get("eod_ci_high", eod)),
                    color=charts.RED if over else charts.GREY,
                    note=f"CI {_f(entry.get('eod_ci_low', eod)):.3f}-"
                    f"{_f(entry.get('eod_ci_high', eod)):.3f}",
                )
            )
            top = max(b.high or b.value for b in odds)
            figures.append(
                {
                    "title": f"{attribute}: equalized odds (true and false positive rates of "
                    f"declining, by group); difference {eod} with its {level} bootstrap "
                    "confidence interval",
                    "svg": charts.bars(
                        odds,
                        x_max=max(0.1, round(top + 0.1, 1)),
                        x_label="rate",
                        lines=[(_f(max_eod_text), f"limit {max_eod_text}", charts.RED)]
                        if max_eod_text
                        else [],
                    ),
                }
            )
        tables.append(
            {
                "attribute": attribute,
                "reference": ref,
                "groups": [_group_row(g) for g in groups],
                "eod": eod or "not compared",
                "eod_interval": (
                    f"{entry['eod_ci_low']} – {entry['eod_ci_high']}"
                    if eod is not None and "eod_ci_low" in entry
                    else ""
                ),
                "level": level,
                "note": entry.get("note", ""),
                "excluded": [
                    {
                        # results recorded before the outcome limits lack the last fields
                        "group": g.get("group", ""),
                        "rows": g.get("rows", "-"),
                        "defaults": g.get("defaults", "-"),
                        "non_defaults": g.get("non_defaults", "-"),
                        "missed": ", ".join(
                            f"{name} {thresholds.get(name, '')}".strip()
                            for name in g.get("missed", [])
                        ),
                        "excluded_from": ", ".join(
                            _STATISTIC_NAMES.get(s, s) for s in g.get("excluded_from", [])
                        ),
                    }
                    for g in excluded
                ],
            }
        )
    return figures, tables


def _explainability(gate: dict[str, Any]) -> list[dict[str, str]]:
    ranking = gate.get("details", {}).get("importance") or []
    if not ranking:
        return []
    items = [charts.Bar(r["feature"], _f(r.get("mean_abs_shap", 0))) for r in ranking]
    top = max(b.value for b in items) or 1.0
    return [
        {
            "title": "Global feature importance (mean absolute contribution, log-odds)",
            "svg": charts.bars(items, x_max=top * 1.1, x_label="mean |SHAP value|"),
        }
    ]


def _stability(gate: dict[str, Any]) -> list[dict[str, str]]:
    values = gate.get("values", {})
    thresholds = gate.get("thresholds", {})
    names = [k for k in values if k != "max_psi"]
    if not names:
        return []
    warn, fail = _f(thresholds.get("warn_psi", "0.1")), _f(thresholds.get("fail_psi", "0.25"))
    items = [
        charts.Bar(
            k,
            _f(values[k]),
            color=charts.RED
            if _f(values[k]) >= fail
            else (charts.ORANGE if _f(values[k]) >= warn else charts.BLUE),
            note=values[k][:8],
        )
        for k in names
    ]
    top = max([fail * 1.2, *[b.value for b in items]])
    return [
        {
            "title": "Population stability index, training vs validation, by feature and score",
            "svg": charts.bars(
                items,
                x_max=top,
                x_label="PSI",
                lines=[
                    (warn, f"warn {thresholds.get('warn_psi')}", charts.ORANGE),
                    (fail, f"fail {thresholds.get('fail_psi')}", charts.RED),
                ],
            ),
        }
    ]


def gate_views(
    gates: list[dict[str, Any]],
    curves: Curves | None,
    *,
    curves_missing: str = CURVES_NOT_RECORDED,
) -> list[dict[str, Any]]:
    views = []
    for recorded in gates:
        gate = {
            "values": {},
            "thresholds": {},
            "details": {},
            "library_versions": {},
            "message": "",
            "blocking": True,
            "seq": "",
            **recorded,
        }
        kind = gate.get("kind", "")
        figures: list[dict[str, str]] = []
        tables: list[dict[str, Any]] = []
        if kind == "performance":
            figures = _performance(gate, curves, curves_missing or CURVES_NOT_RECORDED)
        elif kind == "fairness":
            figures, tables = _fairness(gate)
        elif kind == "explainability":
            figures = _explainability(gate)
        elif kind == "stability":
            figures = _stability(gate)
        details = gate.get("details", {})
        failed_expectations = [
            r for r in details.get("results", []) if isinstance(r, dict) and not r.get("success")
        ]
        views.append(
            {
                **gate,
                "figures": figures,
                "fairness_tables": tables,
                "monotone": sorted(details.get("monotone", {}).items()),
                "failed_expectations": failed_expectations,
                "calibration": details.get("calibration") or [],
                "categories": _category_tables(kind, details),
                "passed": gate["verdict"] in _PASSING,
            }
        )
    return views


def _category_tables(kind: str, details: dict[str, Any]) -> list[dict[str, Any]]:
    """Per categorical feature: each category's mean contribution (explainability) or its
    training and validation shares (stability)."""
    tables = []
    if kind == "explainability":
        for feature, rows in sorted((details.get("contributions_by_category") or {}).items()):
            tables.append(
                {
                    "feature": feature,
                    "header": ("Category", "Rows sampled", "Mean contribution (log-odds)"),
                    "rows": [
                        (r.get("category"), r.get("rows"), r.get("mean_contribution")) for r in rows
                    ],
                }
            )
    elif kind == "stability":
        for feature, bins in sorted((details.get("bins") or {}).items()):
            if bins and isinstance(bins[0], dict) and "category" in bins[0]:
                tables.append(
                    {
                        "feature": feature,
                        "header": ("Category", "Training share", "Validation share"),
                        "rows": [
                            (b.get("category"), b.get("expected_share"), b.get("actual_share"))
                            for b in bins
                        ],
                    }
                )
    return tables


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in sorted(value.items())) + "}"
    text = str(value)
    return (
        text[:12] + "…" if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text
    )


def trail(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for record in events:
        env = record["envelope"]
        index = json.loads(env["index_fields"])
        detail = ", ".join(
            f"{k}={_short(v)}" for k, v in sorted(index.items()) if k not in ("values", "inputs")
        )
        rows.append(
            {
                "seq": str(env["seq"]),
                "time": env["recorded_at"],
                "type": env["type"],
                "actor": env["actor"],
                "detail": detail,
                "leaf": env["leaf_hash"][:16],
            }
        )
    return rows


def contract_rows(contract: dict[str, Any] | None) -> list[dict[str, str]]:
    """The data contract as table rows: feature, kind, what it takes, training null rate."""
    rows = []
    for feature in (contract or {}).get("features", []):
        if feature.get("kind") == "categorical":
            categories = [str(c) for c in feature.get("categories", [])]
            shown = ", ".join(categories[:12]) + (" ..." if len(categories) > 12 else "")
            takes = f"{len(categories)} categories: {shown}"
        else:
            lo, hi = feature.get("minimum"), feature.get("maximum")
            takes = f"{_short_number(lo)} .. {_short_number(hi)}"
        rate = _f(feature.get("null_rate", "0"))
        rows.append(
            {
                "name": str(feature.get("name")),
                "kind": str(feature.get("kind")),
                "takes": takes,
                "nulls": f"{rate:.2%}" if rate else "none (null refused)",
            }
        )
    return rows


def _short_number(value: Any) -> str:
    return "-" if value is None else f"{_f(value):.6g}"


def reason_rows(texts: dict[str, Any], used: set[str]) -> list[dict[str, Any]]:
    """One row per feature; a categorical feature's texts per category under it."""
    rows = []
    for feature, value in sorted(texts.items()):
        if isinstance(value, dict):
            rows.append(
                {
                    "feature": feature,
                    "text": str(value.get("default", "")),
                    "used": feature in used,
                    "categories": sorted(value.get("categories", {}).items()),
                }
            )
        else:
            rows.append(
                {"feature": feature, "text": str(value), "used": feature in used, "categories": []}
            )
    return rows


_MLFLOW_LINEAGE = (
    ("experiment_id", "MLflow experiment"),
    ("registered_model", "Registered model version"),
    ("logged_model_id", "MLflow logged model"),
    ("source_uri", "Submitted from"),
    ("model_file", "Model file"),
    ("tracking_uri", "Tracking server"),
)
_DECLARED_RUN = ("training_run", "run_id")
_DECLARED_COMMIT = ("source_commit", "commit")
_LINEAGE_TEXT_LIMIT = 300


def lineage_rows(lineage: dict[str, Any]) -> list[dict[str, str]]:
    """The lineage section's rows: the training run and the source commit (what
    govreg recorded from MLflow at submit, ``lineage["mlflow"]``, else what the
    submitter declared, else "not recorded"), the rest of the MLflow record, then
    every other key the submitter declared, as recorded."""
    mlflow = lineage.get("mlflow")
    mlflow = mlflow if isinstance(mlflow, dict) else {}
    declared = {
        k: v for k, v in lineage.items() if k != "mlflow" and k not in _INVENTORY_KEYS and v
    }

    def first(recorded: Any, keys: tuple[str, ...]) -> str:
        for value in (recorded, *(declared.get(k) for k in keys)):
            if value not in (None, "", {}, []):
                return _lineage_text(value)
        return NOT_RECORDED

    rows = [
        {"label": "Training run", "value": first(mlflow.get("run_id"), _DECLARED_RUN)},
        {"label": "Source commit", "value": first(mlflow.get("source_commit"), _DECLARED_COMMIT)},
    ]
    for key, label in _MLFLOW_LINEAGE:
        value = mlflow.get(key)
        if isinstance(value, dict) and key == "registered_model":
            value = f"{value.get('name')} version {value.get('version')}"
        if value not in (None, "", {}):
            rows.append({"label": label, "value": _lineage_text(value)})
    for key in sorted(set(declared) - {*_DECLARED_RUN, *_DECLARED_COMMIT}):
        rows.append({"label": f"{key} (declared)", "value": _lineage_text(declared[key])})
    return rows


def _lineage_text(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > _LINEAGE_TEXT_LIMIT:
        return text[:_LINEAGE_TEXT_LIMIT] + " ... (cut; the evidence bundle holds it whole)"
    return text


def report_context(
    data: dict[str, Any],
    curves: Curves | None,
    verification: dict[str, Any],
    *,
    curves_missing: str = CURVES_NOT_RECORDED,
) -> dict[str, Any]:
    import yaml

    record = data["version_record"]
    lineage = data.get("lineage") or {}
    sub = data["submission"]
    headline, headline_class = verdict_line(data)
    used = set(sub.get("features", []))
    inventory = []
    for key, label in _INVENTORY:
        value = lineage.get(key)
        if isinstance(value, list):
            value = "; ".join(map(str, value))
        inventory.append({"label": label, "value": str(value) if value else NOT_RECORDED})
    datasets = []
    for role in ("train", "validation"):
        entry = sub.get(role, {})
        columns = entry.get("columns", [])
        datasets.append(
            {
                "role": role,
                "digest": entry.get("digest", ""),
                "rows": entry.get("rows", ""),
                "size": entry.get("size", ""),
                "format": entry.get("format", ""),
                "columns": ", ".join(
                    f"{c['name']} ({c['dtype']})" if isinstance(c, dict) else str(c)
                    for c in columns
                ),
                "column_count": len(columns),
            }
        )
    return {
        "model": data["model"],
        "version": data["version"],
        "status": data["status"],
        "record": record,
        "headline": headline,
        "headline_class": headline_class,
        "gates": gate_views(data["gates"], curves, curves_missing=curves_missing),
        "signoffs": data["signoffs"],
        "missing": record.get("signoffs_missing", []),
        "inventory": inventory,
        "datasets": datasets,
        "artifact": sub.get("artifact", {}),
        "lineage": lineage_rows(lineage),
        "submission": sub,
        "reasons": reason_rows(sub.get("reason_texts", {}), used),
        "contract": contract_rows(sub.get("contract")),
        "policy": data["policy"],
        "policy_text": yaml.safe_dump(
            data["policy"]["document"], sort_keys=False, allow_unicode=True, width=88
        ),
        "trail": trail(data["events"]),
        "checkpoint": data["checkpoint"],
        "verification": verification,
        "mapping": MAPPING,
        "pairs": _pairs,
    }


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(context: dict[str, Any]) -> str:
    from markupsafe import Markup

    env = _environment()
    env.filters["svg"] = Markup  # charts.py escapes every text it writes
    html: str = env.get_template("report.html.j2").render(**context)
    return html


def evidence_json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def render_pdf(html: str, evidence: bytes | None) -> bytes:
    """PDF/A-3b with ``evidence`` embedded as ``evidence.json`` (a fresh Attachment:
    WeasyPrint's Attachment can serve one render only)."""
    from weasyprint import HTML, Attachment

    attachments = []
    if evidence is not None:
        attachments.append(
            Attachment(
                string=evidence.decode("utf-8"),
                name=EVIDENCE_NAME,
                description="govreg evidence: events, proofs, checkpoint, gate results",
                relationship="Data",
            )
        )
    pdf: bytes = HTML(string=html).write_pdf(pdf_variant="pdf/a-3b", attachments=attachments)
    return pdf
