"""The PDF/A report and the offline evidence bundle, on a version that passed real gates."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from govreg_homes import make_home
from govreg_kit import submit_candidate

from audits.events import EventType
from audits.signing import load_public_key

MODEL = "pd"
SIGNERS = (
    ("validator-1", "validator"),
    ("compliance-1", "compliance_officer"),
    ("owner-1", "business_owner"),
)


def _principals(ctx: Any, admin_key: str) -> dict[str, Any]:
    admin = ctx.registry.authenticate(admin_key)
    out = {"admin": admin}
    for name, role in (
        ("ds-1", "data_scientist"),
        *SIGNERS,
        ("auditor-1", "auditor"),
        ("service-1", "service"),
    ):
        _, key = ctx.registry.create_principal(admin, name, role)
        out[name] = ctx.registry.authenticate(key)
    return out


def _candidate(root: Path) -> dict[str, Path]:
    from govreg.synthetic import write_candidate

    return write_candidate(root, validation_format="parquet")


def _submit(ctx: Any, who: dict[str, Any], files: dict[str, Path]) -> int:
    return submit_candidate(ctx.registry, who["ds-1"], MODEL, files)


def _constructed(verdict: str) -> list[dict[str, Any]]:
    gates = ("performance", "fairness", "data-schema", "explainability", "stability", "latency")
    kinds = ("performance", "fairness", "data_schema", "explainability", "stability", "latency")
    return [
        {
            "gate_id": g,
            "kind": k,
            "verdict": verdict if g == "fairness" else "passed",
            "blocking": True,
            "values": {"measured": "0.9"},
            "thresholds": {"minimum": "0.8"},
            "message": f"{g} constructed",
        }
        for g, k in zip(gates, kinds, strict=True)
    ]


def _evaluated(ctx: Any, who: dict[str, Any], files: dict[str, Path], verdict: str) -> int:
    version = _submit(ctx, who, files)
    number = ctx.registry.start_evaluation(who["ds-1"], MODEL, version)
    ctx.registry.evaluations.record_evaluation(
        who["ds-1"], MODEL, version, number, _constructed(verdict)
    )
    return version


def _sign(ctx: Any, who: dict[str, Any], version: int, signers: Any = SIGNERS) -> None:
    for name, role in signers:
        ctx.registry.signoff(
            who[name], MODEL, version, role=role, approve=True, comment=f"{role}: evidence reviewed"
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One SQLite home: v1 approved on real gates, v2 awaiting a sign-off, v3 failed."""
    root = tmp_path_factory.mktemp("reports")
    files = _candidate(root)
    home = make_home(root / "home", f"sqlite:///{root / 'govreg.db'}")
    ctx = home.context()
    who = _principals(ctx, home.admin_key)
    approved = _submit(ctx, who, files)
    ctx.registry.evaluate(who["ds-1"], MODEL, approved)
    _sign(ctx, who, approved)
    awaiting = _evaluated(ctx, who, files, "passed")
    _sign(ctx, who, awaiting, SIGNERS[:2])
    failed = _evaluated(ctx, who, files, "failed")
    key = load_public_key(home.settings().public_key_path)
    from reports.service import export_evidence

    exported = export_evidence(ctx.registry, who["auditor-1"], MODEL, approved, public_key=key)
    (root / "report.pdf").write_bytes(exported.report.pdf)
    yield {
        "root": root,
        "home": home,
        "ctx": ctx,
        "who": who,
        "key": key,
        "files": files,
        "versions": {"approved": approved, "awaiting": awaiting, "failed": failed},
        "exported": exported,
        "pdf": root / "report.pdf",
    }
    ctx.close()


def _text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_report_text_holds_the_measured_values_thresholds_verdicts_and_signers(
    world: dict[str, Any],
) -> None:
    ctx, who = world["ctx"], world["who"]
    shown = ctx.registry.show_version(who["auditor-1"], MODEL, world["versions"]["approved"])
    text = _text(world["pdf"])
    flat = _one_line(text)
    assert (
        "APPROVED: all 6 gates passed (fairness with a warning) and every required sign-off "
        "is recorded." in flat
    )
    assert [g["gate_id"] for g in shown["gates"]] == [
        "performance",
        "fairness",
        "data-schema",
        "explainability",
        "stability",
        "latency",
    ]
    lines = set(text.splitlines())
    for gate in shown["gates"]:
        assert f"{gate['gate_id']} ({gate['kind']}): {gate['verdict']}" in flat
        for name, value in {**gate["values"], **gate["thresholds"]}.items():
            assert f"{name} {value}" in lines, (gate["gate_id"], name, value)
    performance = shown["gates"][0]
    assert performance["values"]["auc"] in flat
    assert "min_auc 0.8" in lines
    assert "min_ks 0.35" in lines
    for name, role in SIGNERS:
        assert f"{role} {name} approve" in flat
        assert f"{role}: evidence reviewed" in flat
    assert flat.count(f"evidence digest signed: {shown['evidence_digest']}") == 3
    assert shown["policy"]["digest"] in flat
    assert shown["artifact_digest"] in flat
    assert "Purpose not recorded" in flat
    assert "Income insufficient for the amount of credit requested" in flat
    assert "Verified: all" in flat
    assert "9. What each section answers" in flat
    assert "Annex IV 2(g)" in flat


def test_report_is_pdfa3b_with_the_ledger_evidence_embedded(
    world: dict[str, Any], tmp_path: Path
) -> None:
    data = world["pdf"].read_bytes()
    assert data.startswith(b"%PDF-")
    xmp = b"".join(_streams(data))
    assert re.search(rb"<pdfaid:part>3</pdfaid:part>|pdfaid:part=\"3\"", xmp)
    assert re.search(rb"<pdfaid:conformance>B</pdfaid:conformance>|pdfaid:conformance=\"B\"", xmp)
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(world["pdf"])], check=True)
    embedded = json.loads((tmp_path / "evidence.json").read_text(encoding="utf-8"))
    ctx = world["ctx"]
    version = world["versions"]["approved"]
    with ctx.registry.reading() as conn:
        events = list(ctx.ledger.events(conn, model=MODEL, version=version))
        rows = conn.exec_driver_sql(
            "SELECT seq, leaf_hash, ciphertext FROM ledger_events "
            "WHERE model = ? AND version = ? ORDER BY seq",
            (MODEL, version),
        ).all()
    # the report was rendered before its own report.generated event was recorded
    stored = [
        e for e in events if e.type not in (EventType.REPORT_GENERATED, EventType.EVIDENCE_EXPORTED)
    ]
    assert [e["envelope"]["seq"] for e in embedded["events"]] == [e.seq for e in stored]
    for record, event in zip(embedded["events"], stored, strict=True):
        assert record["decrypted"]["data"] == event.data
        assert record["decrypted"]["header"]["index"] == event.index
        assert record["envelope"]["leaf_hash"] == event.leaf_hash.hex()
        assert record["envelope"]["type"] == event.type
    by_seq = {r[0]: r for r in rows}
    for record in embedded["events"]:
        row = by_seq[record["envelope"]["seq"]]
        assert bytes(row[1]).hex() == record["envelope"]["leaf_hash"]
        import base64

        assert base64.b64decode(record["envelope"]["ciphertext"]) == bytes(row[2])
    shown = ctx.registry.show_version(world["who"]["auditor-1"], MODEL, version)
    assert embedded["gates"] == shown["gates"]
    assert embedded["verification"]["ok"] is True
    assert embedded["curves"]["auc"] == "0.855393"
    assert embedded["generated_by"] == "auditor-1"


def _streams(data: bytes) -> list[bytes]:
    """Every stream of the PDF, inflated where it is Flate-compressed."""
    import zlib

    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(match.group(1)))
        except zlib.error:
            out.append(match.group(1))
    return out


def _size(ctx: Any) -> int:
    with ctx.registry.reading() as conn:
        return int(ctx.ledger.head(conn)[0])


def test_report_generation_is_recorded_with_the_pdf_digest(world: dict[str, Any]) -> None:
    ctx = world["ctx"]
    version = world["versions"]["approved"]
    with ctx.registry.reading() as conn:
        generated = list(
            ctx.ledger.events(
                conn,
                model=MODEL,
                version=version,
                types=[EventType.REPORT_GENERATED, EventType.EVIDENCE_EXPORTED],
            )
        )
    digest = hashlib.sha256(world["pdf"].read_bytes()).hexdigest()
    assert [e.type for e in generated] == ["report.generated", "evidence.exported"]
    assert generated[0].index == {"report_sha256": digest}
    assert generated[0].actor == "auditor-1"
    assert generated[1].index == {
        "bundle_sha256": hashlib.sha256(world["exported"].bundle).hexdigest(),
        "report_sha256": digest,
    }
    settings = world["home"].settings()
    report = ctx.registry.verify(
        None, load_public_key(settings.public_key_path), anchor_dir=settings.anchors_path
    )
    assert report.size == _size(ctx)


def test_same_ledger_state_gives_the_same_pages(world: dict[str, Any], tmp_path: Path) -> None:
    from reports.service import render

    ctx, who = world["ctx"], world["who"]
    texts = []
    for i, moment in enumerate(("2026-01-01T00:00:00.000000Z", "2026-06-01T00:00:00.000000Z")):
        out = render(
            ctx.registry,
            who["auditor-1"],
            MODEL,
            world["versions"]["failed"],
            public_key=world["key"],
            generated_at=moment,
        )
        assert out.evidence.data["generated_at"] == moment
        path = tmp_path / f"r{i}.pdf"
        path.write_bytes(out.pdf)
        texts.append(_text(path))
    assert texts[0] == texts[1]


@pytest.mark.parametrize(
    ("which", "headline"),
    [
        (
            "awaiting",
            "NOT APPROVED YET: all 6 gates passed; awaiting sign-off: 1 x business_owner.",
        ),
        ("failed", "NOT APPROVED: gates failed: fairness (failed)."),
    ],
)
def test_a_version_not_approved_gets_a_report_that_says_so_on_page_one(
    world: dict[str, Any], tmp_path: Path, which: str, headline: str
) -> None:
    from reports.service import generate_report

    ctx, who = world["ctx"], world["who"]
    out = generate_report(
        ctx.registry, who["validator-1"], MODEL, world["versions"][which], public_key=world["key"]
    )
    path = tmp_path / "r.pdf"
    path.write_bytes(out.pdf)
    first = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-raw", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert headline in _one_line(first)


def test_report_shows_the_equalized_odds_interval_and_the_excluded_groups(
    world: dict[str, Any], tmp_path: Path
) -> None:
    import pandas as pd

    from policies.schema import GateSpec
    from reports.service import render
    from validation.inputs import GateInputs
    from validation.runner import run_gate

    ctx, who, files = world["ctx"], world["who"], world["files"]
    validation = pd.read_parquet(files["validation"])
    inputs = GateInputs(
        model_text=files["artifact"].read_text(encoding="utf-8"),
        train=pd.read_csv(files["train"]),
        validation=validation,
        target="default",
        protected=["sex", "age_band"],
        cutoff=Decimal("0.5"),
        reason_texts={},
    )
    # Limits that leave one intersection group out by rows and one out of the TPRs.
    sizes = validation.groupby(["sex", "age_band"])["default"].agg(["size", "sum"])
    by_rows, by_defaults = sizes.loc[("female", "60+")], sizes.loc[("male", "60+")]
    limits = {"min_group_size": int(by_rows["size"]) + 1, "min_group_defaults": 55}
    assert by_rows["sum"] >= 55
    assert by_defaults["sum"] < 55 <= by_defaults["size"]
    result = run_gate(GateSpec(id="fairness", kind="fairness", params=limits), inputs)
    entry = result.details["attributes"]["sex|age_band"]
    assert [g["group"] for g in entry["excluded_groups"]] == ["female|60+", "male|60+"]
    gates = _constructed("passed")
    gates[1] = result.canonical()
    version = _submit(ctx, who, files)
    number = ctx.registry.start_evaluation(who["ds-1"], MODEL, version)
    ctx.registry.evaluations.record_evaluation(who["ds-1"], MODEL, version, number, gates)
    out = render(ctx.registry, who["auditor-1"], MODEL, version, public_key=world["key"])
    path = tmp_path / "fairness.pdf"
    path.write_bytes(out.pdf)
    text = _text(path)
    flat = _one_line(text)
    lines = set(text.splitlines())
    for attribute, shown in result.details["attributes"].items():
        assert (
            f"{attribute} (reference group {shown['reference_group']}; equalized odds "
            f"difference {shown['equalized_odds_difference']}, 95% CI {shown['eod_ci_low']} – "
            f"{shown['eod_ci_high']})"
        ) in flat
    assert "Excluded groups of sex|age_band (below a group limit of the policy" in flat
    rows, defaults = int(by_rows["size"]), int(by_rows["sum"])
    assert (
        f"female|60+ {rows} {defaults} {rows - defaults} min_group_size {rows + 1} "
        "AIR, TPR, FPR" in lines
    )
    rows, defaults = int(by_defaults["size"]), int(by_defaults["sum"])
    assert f"male|60+ {rows} {defaults} {rows - defaults} min_group_defaults 55 TPR" in lines
    # male|60+ keeps its approval rate and FPR; its TPR is shown as excluded
    male_60 = next(g for g in entry["groups"] if g["group"] == "male|60+")
    four = [
        f"{float(male_60[k]):.4f}"
        for k in ("approval_rate", "adverse_impact_ratio", "air_ci_low", "air_ci_high")
    ]
    assert (
        f"male|60+ {rows} {defaults} {male_60['approved']} {four[0]} {four[1]} {four[2]} – "
        f"{four[3]} excluded {float(male_60['false_positive_rate']):.4f}"
    ) in lines
    assert "sex|age_band: groups excluded: 'female|60+'" in flat
    (world["root"] / "fairness.pdf").write_bytes(out.pdf)


def test_only_readers_may_download(world: dict[str, Any]) -> None:
    from core.errors import PermissionDenied
    from reports.service import export_evidence, generate_report

    ctx, who = world["ctx"], world["who"]
    before = _size(ctx)
    for use_case in (generate_report, export_evidence):
        with pytest.raises(PermissionDenied, match="'service-1' \\(service\\) may not read"):
            use_case(ctx.registry, who["service-1"], MODEL, 1, public_key=world["key"])
    # nothing but the two refusals themselves was recorded: the first at once, the
    # second (same principal and action, same interval) counted until a flush
    assert _size(ctx) == before + 1
    [aggregated] = ctx.registry.flush_denials(every=True)
    assert _size(ctx) == before + 2
    with ctx.registry.reading() as conn:
        [denied] = list(ctx.ledger.events(conn, types=["access.denied"]))[-1:]
    assert (denied.actor, denied.data["action"]) == ("service-1", "read")
    assert (aggregated.actor, aggregated.data["action"], aggregated.data["count"]) == (
        "service-1",
        "read",
        1,
    )


def _six(text: str) -> str:
    """A recorded decimal as the evidence JSON's curves show it (6 decimals)."""
    return format(round(float(text), 6), ".6f").rstrip("0").rstrip(".") or "0"


def _shares(counts: list[int]) -> list[str]:
    return [_six(repr(c / sum(counts))) for c in counts]


_RESULT_KEYS = (
    "gate_id",
    "kind",
    "verdict",
    "blocking",
    "values",
    "thresholds",
    "details",
    "library_versions",
    "message",
)


def _performance_result(world: dict[str, Any], **details: Any) -> dict[str, Any]:
    """v1's recorded performance result, its curves replaced by ``details`` (or dropped)."""
    ctx, who = world["ctx"], world["who"]
    shown = ctx.registry.show_version(who["auditor-1"], MODEL, world["versions"]["approved"])
    result = {k: v for k, v in shown["gates"][0].items() if k in _RESULT_KEYS}
    kept = {k: v for k, v in result["details"].items() if k != "curves"}
    return {**result, "details": {**kept, **details}}


def _record(world: dict[str, Any], performance: dict[str, Any], files: Any = None) -> int:
    ctx, who = world["ctx"], world["who"]
    gates = _constructed("passed")
    gates[0] = performance
    version = _submit(ctx, who, files or world["files"])
    number = ctx.registry.start_evaluation(who["ds-1"], MODEL, version)
    ctx.registry.evaluations.record_evaluation(who["ds-1"], MODEL, version, number, gates)
    return version


def test_report_draws_the_curves_the_performance_gate_recorded(world: dict[str, Any]) -> None:
    from reports import charts
    from reports.curves import recorded

    shown = world["ctx"].registry.show_version(world["who"]["auditor-1"], MODEL, 1)
    gate = shown["gates"][0]
    stored = gate["details"]["curves"]
    assert len(stored["roc"]) == 200
    rendered = world["exported"].report
    curves = rendered.evidence.data["curves"]
    assert curves == {
        "rows": gate["details"]["rows"],
        "source": "recorded by the performance gate at evaluation",
        "auc": _six(gate["values"]["auc"]),
        "ks": {k: _six(v) for k, v in stored["ks"].items()},
        "roc": [[_six(x), _six(y)] for x, y in stored["roc"]],
        "histogram": {
            "edges": [_six(e) for e in stored["histogram"]["edges"]],
            "defaults": _shares(stored["histogram"]["defaults"]),
            "repaid": _shares(stored["histogram"]["repaid"]),
        },
    }
    assert curves["ks"]["ks"] == f"{float(gate['values']['ks']):.6f}"
    drawn = recorded(gate)
    assert drawn is not None
    values = gate["values"]
    assert charts.roc(drawn.roc, drawn.ks, values["auc"], values["ks"]) in rendered.html
    assert (
        charts.histogram(drawn.hist_edges, drawn.hist_defaults, drawn.hist_repaid) in rendered.html
    )
    flat = _one_line(_text(world["pdf"]))
    assert (
        "ROC curve on the validation set, with the KS point (recorded by the performance "
        "gate at evaluation)" in flat
    )


def test_a_gate_result_without_curves_has_them_computed_with_lightgbm(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from reports.service import render

    version = _record(world, _performance_result(world))
    out = render(
        world["ctx"].registry, world["who"]["auditor-1"], MODEL, version, public_key=world["key"]
    )
    # LightGBM on the stored validation set, as the gate scored it: the same curves
    recorded = dict(world["exported"].report.evidence.data["curves"])
    computed = dict(out.evidence.data["curves"])
    assert computed.pop("source") == (
        "computed at report time with LightGBM from the stored artifact and validation set "
        "(the gate result predates recorded curves)"
    )
    recorded.pop("source")
    assert computed == recorded
    path = tmp_path / "computed.pdf"
    path.write_bytes(out.pdf)
    flat = _one_line(_text(path))
    assert "with the KS point (computed at report time with LightGBM" in flat
    assert "Score distributions by outcome" in flat
    (world["root"] / "computed.pdf").write_bytes(out.pdf)


def test_without_curves_or_the_stored_data_the_report_says_not_recorded_at_evaluation(
    world: dict[str, Any], tmp_path: Path
) -> None:
    import pandas as pd

    from reports.service import render

    files = dict(world["files"])
    files["validation"] = tmp_path / "validation.parquet"
    pd.read_parquet(world["files"]["validation"]).iloc[1:].to_parquet(files["validation"])
    version = _record(world, _performance_result(world), files)
    ctx = world["ctx"]
    sub = ctx.registry.submission(MODEL, version)
    ctx.registry.store.remove(sub["validation"]["digest"])
    out = render(ctx.registry, world["who"]["auditor-1"], MODEL, version, public_key=world["key"])
    assert "curves" not in out.evidence.data
    assert "ROC curve with the KS point" not in out.html
    assert "Score distributions by outcome" not in out.html
    path = tmp_path / "missing.pdf"
    path.write_bytes(out.pdf)
    flat = _one_line(_text(path))
    assert (
        "ROC curve and score histograms: not recorded at evaluation (the stored artifact or "
        "validation set is not in the store)" in flat
    )
    assert "Calibration by score decile" in flat  # the gate's own values still show
    (world["root"] / "missing.pdf").write_bytes(out.pdf)


def test_recorded_curves_that_cannot_be_read_are_named_in_place_of_the_chart(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from reports.service import render

    broken = {"roc": [], "ks": {"fpr": "0", "tpr": "0", "ks": "0", "score": "1"}}
    broken["histogram"] = {"edges": ["0", "1"], "defaults": [1], "repaid": [1]}
    version = _record(world, _performance_result(world, curves=broken))
    ctx = world["ctx"]
    out = render(ctx.registry, world["who"]["auditor-1"], MODEL, version, public_key=world["key"])
    assert "curves" not in out.evidence.data
    path = tmp_path / "broken.pdf"
    path.write_bytes(out.pdf)
    assert (
        "ROC curve and score histograms: the recorded curves cannot be read: recorded curves: "
        "roc has no points" in _one_line(_text(path))
    )


# -- bundles ---------------------------------------------------------------------------
def _rewrite(bundle: bytes, path: str, change: Any, *, remanifest: bool) -> bytes:
    from reports.bundle import MANIFEST, read_zip, write_zip

    files = read_zip(bundle)
    files[path] = change(files[path])
    if remanifest:
        manifest = json.loads(files[MANIFEST])
        for entry in manifest["files"]:
            if entry["path"] == path:
                entry["sha256"] = hashlib.sha256(files[path]).hexdigest()
        files[MANIFEST] = json.dumps(manifest).encode()
    return write_zip(files)


def _json_edit(edit: Any) -> Any:
    def change(body: bytes) -> bytes:
        data = json.loads(body)
        edit(data)
        return json.dumps(data).encode()

    return change


def _flip_last_byte(body: bytes) -> bytes:
    return body[:-2] + bytes([body[-2] ^ 0x01]) + body[-1:]


def test_bundle_verifies_and_names_every_changed_file(world: dict[str, Any]) -> None:
    from reports.bundle import MANIFEST, BundleInvalid, read_zip, verify_bundle

    bundle = world["exported"].bundle
    key = world["key"]
    report = verify_bundle(bundle, key)
    files = read_zip(bundle)
    events = sorted(p for p in files if p.startswith("events/"))
    assert report.events == len(events) == 14
    assert report.files == len(files) - 1 == 38
    size = report.checkpoint_size
    assert report.summary() == (
        f"bundle intact: pd v1, 14 events proved against checkpoint {size} signed by key "
        f"{report.key_fingerprint}, 38 files match the manifest"
    )
    # 1. Any byte of any file changed: the manifest names it.
    for path in sorted(files):
        if path == MANIFEST:
            continue
        with pytest.raises(BundleInvalid) as caught:
            verify_bundle(_rewrite(bundle, path, _flip_last_byte, remanifest=False), key)
        assert f"{path}: sha256 differs from the manifest" in caught.value.problems, path
    # 2. Changed and re-listed in the manifest: the deeper check names it.
    expected: dict[str, tuple[Any, str]] = {}
    for path in events:
        expected[path] = (
            _json_edit(lambda d: d["envelope"].update(actor="someone-else")),
            f"{path}: leaf hash does not match its envelope",
        )
    for path in sorted(p for p in files if p.startswith("proofs/")):

        def flip(d: dict[str, Any]) -> None:
            if d["hashes"]:
                d["hashes"][0] = ("0" if d["hashes"][0][0] != "0" else "1") + d["hashes"][0][1:]
            else:
                d["hashes"] = ["00" * 32]

        expected[path] = (
            _json_edit(flip),
            f"{path}: inclusion proof does not verify against checkpoint {size}",
        )
    for path in sorted(p for p in files if p.startswith("gates/")):
        expected[path] = (
            _json_edit(lambda d: d["values"].update({next(iter(d["values"])): "0.999"})),
            f"{path}: does not match the result digest recorded in events/",
        )
    expected["policy.json"] = (
        _json_edit(lambda d: d.update(decision_cutoff="0.9")),
        "policy.json: digest differs from the policy digest in events/",
    )
    expected["digests.json"] = (
        _json_edit(lambda d: d["train"].update(rows=1)),
        "digests.json: differs from the submission in events/",
    )
    expected["report.pdf"] = (
        _flip_last_byte,
        "report.pdf: sha256 differs from the one in events/",
    )
    expected["checkpoint.txt"] = (
        lambda b: b.replace(
            b"\n" + str(size).encode() + b"\n", b"\n" + str(size + 1).encode() + b"\n"
        ),
        "checkpoint.txt: signature does not verify",
    )
    assert set(expected) == set(files) - {MANIFEST}
    for path, (change, message) in sorted(expected.items()):
        with pytest.raises(BundleInvalid) as caught:
            verify_bundle(_rewrite(bundle, path, change, remanifest=True), key)
        assert any(p.startswith(message) for p in caught.value.problems), (
            path,
            caught.value.problems,
        )
    # 3. A decrypted payload copy that disagrees with its envelope is named.
    gate_event = next(
        p for p in events if json.loads(files[p])["envelope"]["type"] == "gate.evaluated"
    )
    tampered = _rewrite(
        bundle,
        gate_event,
        _json_edit(lambda d: d["decrypted"]["data"].update(verdict="failed")),
        remanifest=True,
    )
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(tampered, key)
    assert caught.value.problems[0] == (
        f"{gate_event}: decrypted payload field 'verdict' disagrees with the envelope's index"
    )
    # 4. A missing file, an extra file and the wrong key.
    without = {k: v for k, v in files.items() if k != events[0]}
    with pytest.raises(
        BundleInvalid, match=re.escape(f"{events[0]}: listed in the manifest but missing")
    ):
        verify_bundle(_zip(without), key)
    with pytest.raises(BundleInvalid, match=re.escape("extra.txt: not listed in the manifest")):
        verify_bundle(_zip({**files, "extra.txt": b"x"}), key)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with pytest.raises(BundleInvalid, match=re.escape("checkpoint.txt: signature does not verify")):
        verify_bundle(bundle, Ed25519PrivateKey.generate().public_key())
    assert zipfile.is_zipfile(__import__("io").BytesIO(bundle))


def _zip(files: dict[str, bytes]) -> bytes:
    from reports.bundle import write_zip

    return write_zip(files)


def test_cli_report_export_and_offline_verify(
    home: Any, tmp_path: Path, world: dict[str, Any]
) -> None:
    """On both databases: constructed gate results (real gates are tested above)."""
    ctx = home.context()
    try:
        who = _principals(ctx, home.admin_key)
        version = _evaluated(ctx, who, world["files"], "passed")
        _sign(ctx, who, version)
        auditor_key = ctx.registry.create_principal(who["admin"], "auditor-2", "auditor")[1]
    finally:
        ctx.close()
    pdf, bundle = tmp_path / "report.pdf", tmp_path / "bundle.zip"
    result = home.cli("report", MODEL, str(version), "-o", str(pdf), api_key=auditor_key)
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert result.output == f"wrote {pdf} ({pdf.stat().st_size} bytes, sha256 {digest})\n"
    result = home.cli(
        "evidence", "export", MODEL, str(version), "-o", str(bundle), api_key=auditor_key
    )
    assert result.exit_code == 0, result.output
    public = home.settings().public_key_path
    from audits.signing import load_public_key
    from reports.bundle import verify_bundle

    verified = verify_bundle(bundle.read_bytes(), load_public_key(public))
    assert result.output == (
        f"wrote {bundle}: {verified.events} events proved against checkpoint "
        f"{verified.checkpoint_size}, sha256 {hashlib.sha256(bundle.read_bytes()).hexdigest()}\n"
    )
    # offline: no home, no database in the environment
    from click.testing import CliRunner

    from govreg.cli import cli

    runner = CliRunner()
    ok = runner.invoke(
        cli, ["evidence", "verify", str(bundle), "--public-key", str(public)], env={}
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"bundle intact: {MODEL} v{version}, ")
    assert len(ok.output.splitlines()) == 1
    broken = tmp_path / "broken.zip"
    broken.write_bytes(
        _rewrite(bundle.read_bytes(), "report.pdf", _flip_last_byte, remanifest=False)
    )
    bad = runner.invoke(
        cli, ["evidence", "verify", str(broken), "--public-key", str(public)], env={}
    )
    assert bad.exit_code == 8
    assert "error: report.pdf: sha256 differs from the manifest" in bad.output
    denied = home.cli("report", MODEL, str(version), "-o", str(pdf), api_key=None)
    assert denied.exit_code == 0  # admin reads


def test_fairness_results_recorded_before_the_outcome_limits_still_render(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from reports.report import gate_views
    from reports.service import render

    recorded = {
        "gate_id": "fairness",
        "kind": "fairness",
        "verdict": "insufficient_data",
        "thresholds": {"min_adverse_impact_ratio": "0.8", "confidence": "0.95"},
        "details": {
            "attributes": {
                "sex": {
                    "excluded_groups": [{"group": "unknown", "rows": 12, "defaults": 2}],
                    "reference_group": "male",
                    "equalized_odds_difference": "0.02",
                    "groups": [
                        {
                            "group": g,
                            "rows": 500,
                            "approved": 450,
                            "defaults": 50,
                            "approval_rate": "0.9",
                            "adverse_impact_ratio": "1",
                            "air_ci_low": "0.95",
                            "air_ci_high": "1.05",
                            "true_positive_rate": "0.4",
                            "false_positive_rate": "0.05",
                        }
                        for g in ("female", "male")
                    ],
                }
            }
        },
    }
    (view,) = gate_views([recorded], None)
    (table,) = view["fairness_tables"]
    assert table["eod"] == "0.02"
    assert table["eod_interval"] == ""
    assert table["excluded"] == [
        {
            "group": "unknown",
            "rows": 12,
            "defaults": 2,
            "non_defaults": "-",
            "missed": "",
            "excluded_from": "",
        }
    ]
    assert table["groups"][0] == {
        "group": "female",
        "rows": 500,
        "defaults": 50,
        "approved": 450,
        "approval_rate": "0.9000",
        "air": "1.0000",
        "air_ci": "0.9500 – 1.0500",
        "tpr": "0.4000",
        "fpr": "0.0500",
    }
    # and the whole report renders them
    ctx, who = world["ctx"], world["who"]
    gates = _constructed("passed")
    gates[1] = {**recorded, "blocking": True, "values": {}, "message": "recorded earlier"}
    version = _submit(ctx, who, world["files"])
    number = ctx.registry.start_evaluation(who["ds-1"], MODEL, version)
    ctx.registry.evaluations.record_evaluation(who["ds-1"], MODEL, version, number, gates)
    out = render(ctx.registry, who["auditor-1"], MODEL, version, public_key=world["key"])
    path = tmp_path / "old.pdf"
    path.write_bytes(out.pdf)
    lines = set(_text(path).splitlines())
    assert "unknown 12 2 -" in lines
    assert "female 500 50 450 0.9000 1.0000 0.9500 – 1.0500 0.4000 0.0500" in lines
