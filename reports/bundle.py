"""Evidence bundles: a zip an auditor verifies offline with nothing but the public key.

Layout::

    manifest.json          (path, sha256) of every other file
    checkpoint.txt         the signed checkpoint (C2SP-style note + Ed25519 signature)
    events/0007.json       a stored envelope exactly as stored + its decrypted payload
    proofs/0007.json       RFC 6962 inclusion proof of event 7 against the checkpoint
    gates/<gate id>.json   the current gate results
    policy.json            the policy the version is judged by
    digests.json           artifact and dataset fingerprints
    report.pdf             the compliance report

:func:`verify_bundle` is a pure function of the zip bytes and a public key (no
database, no network, no govreg home). In order, it checks:

1. every file is listed in the manifest with its SHA-256, and nothing is missing;
2. the checkpoint's Ed25519 signature verifies with the given key;
3. each event's leaf hash recomputed from its envelope equals the stored one,
   and its decrypted payload agrees with the envelope's plaintext fields;
4. each event's inclusion proof leads to the checkpoint's root;
5. the gate results, the policy and the digests equal what the (proved)
   envelopes commit to, and the report's SHA-256 equals the one in the
   ``report.generated`` event.

Payloads are encrypted in the ledger, so the decrypted copies are checked
against the plaintext index fields their envelopes commit to; gate results
and the policy are bound through their digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from audits.records import RecordedEvent, RecordNotProved, prove_record, record_leaf
from audits.signing import SignedCheckpoint
from core.canonical import canonical_bytes
from core.errors import GovregError, IntegrityError, quote
from registry.history import VersionHistory

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from reports.evidence import Evidence

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.txt"
REPORT = "report.pdf"
POLICY = "policy.json"
DIGESTS = "digests.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_DATASET_FIELDS = ("digest", "size", "format", "rows", "columns")


class BundleInvalid(IntegrityError):
    """The bundle does not verify; ``problems`` names every failed check."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems

    def diagnostics(self) -> str:
        return "\n".join(self.problems)


@dataclass(frozen=True)
class BundleReport:
    model: str
    version: int
    events: int
    checkpoint_size: int
    key_fingerprint: str
    files: int

    def summary(self) -> str:
        return (
            f"bundle intact: {self.model} v{self.version}, {self.events} events proved "
            f"against checkpoint {self.checkpoint_size} signed by key "
            f"{self.key_fingerprint}, {self.files} files match the manifest"
        )


def event_name(seq: int) -> str:
    return f"events/{seq:04d}.json"


def proof_name(seq: int) -> str:
    return f"proofs/{seq:04d}.json"


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _dataset(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in _DATASET_FIELDS if k in entry}


def bundle_files(evidence: Evidence, report_pdf: bytes) -> dict[str, bytes]:
    """The files of a bundle (without the manifest), by path."""
    data = evidence.data
    cp = evidence.checkpoint
    files: dict[str, bytes] = {CHECKPOINT: cp.to_text().encode()}
    for record in evidence.events:
        seq = record["envelope"]["seq"]
        files[event_name(seq)] = _json(record)
        files[proof_name(seq)] = _json(
            {
                "seq": seq,
                "leaf_index": seq - 1,
                "tree_size": cp.size,
                "root": cp.root.hex(),
                "hashes": [h.hex() for h in evidence.proofs[seq]],
            }
        )
    for gate in data["gates"]:
        result = {k: v for k, v in gate.items() if k != "seq"}
        files[f"gates/{gate['gate_id']}.json"] = _json(result)
    files[POLICY] = _json(data["policy"]["document"])
    sub = data["submission"]
    files[DIGESTS] = _json(
        {role: _dataset(sub[role]) for role in ("artifact", "train", "validation")}
    )
    files[REPORT] = report_pdf
    return files


def build_bundle(evidence: Evidence, report_pdf: bytes) -> bytes:
    """The zip bytes: deterministic for the same evidence and report."""
    files = bundle_files(evidence, report_pdf)
    manifest = {
        "format": "govreg-bundle/v1",
        "model": evidence.data["model"],
        "version": evidence.data["version"],
        "generated_at": evidence.data["generated_at"],
        "checkpoint_size": evidence.checkpoint.size,
        "files": [
            {"path": path, "sha256": hashlib.sha256(body).hexdigest()}
            for path, body in sorted(files.items())
        ],
    }
    return write_zip({MANIFEST: _json(manifest), **files})


def write_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, body in files.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, body)
    return buffer.getvalue()


# What a bundle may hold once inflated (a real one: some hundred small JSON files
# and a report of a few MiB). Counted while inflating: a header's sizes can lie.
MAX_ENTRIES = 20_000
MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_RATIO = 200  # inflated bytes per compressed byte, checked past RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024
_CHUNK = 64 * 1024


def read_zip(data: bytes) -> dict[str, bytes]:
    """Every regular file of the zip by path; refuses duplicates, unsafe paths, and
    bundles that inflate past the caps above (a decompression bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ENTRIES:
                raise BundleInvalid(
                    [f"bundle: {len(infos)} entries, over the limit of {MAX_ENTRIES}"]
                )
            files: dict[str, bytes] = {}
            total = 0
            for info in infos:
                if info.is_dir():
                    continue
                name = info.filename
                if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                    raise BundleInvalid([f"{quote(name)}: unsafe path in the bundle"])
                if name in files:
                    raise BundleInvalid([f"{quote(name)}: appears twice in the bundle"])
                files[name] = _inflate(archive, info, already=total)
                total += len(files[name])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise BundleInvalid([f"bundle: not a readable zip file ({quote(exc, 80)})"]) from exc
    return files


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, already: int) -> bytes:
    """One entry's bytes, read in chunks and counted against the entry, total and ratio
    caps; the header's declared size is checked too, but never relied on."""
    name = quote(info.filename)
    if info.file_size > MAX_ENTRY_BYTES:
        raise BundleInvalid(
            [f"{name}: declares {info.file_size} bytes, over the {MAX_ENTRY_BYTES}-byte limit"]
        )
    body = bytearray()
    with archive.open(info) as entry:
        while chunk := entry.read(_CHUNK):
            body += chunk
            size = len(body)
            if size > MAX_ENTRY_BYTES:
                raise BundleInvalid(
                    [f"{name}: inflates past the {MAX_ENTRY_BYTES}-byte limit of an entry"]
                )
            if already + size > MAX_TOTAL_BYTES:
                raise BundleInvalid(
                    [f"{name}: the bundle inflates past its {MAX_TOTAL_BYTES}-byte limit"]
                )
            if size > RATIO_FLOOR and size > MAX_RATIO * max(info.compress_size, 1):
                raise BundleInvalid(
                    [
                        f"{name}: inflates more than {MAX_RATIO} times its "
                        f"{info.compress_size} compressed bytes (a decompression bomb?)"
                    ]
                )
    return bytes(body)


def _load(files: dict[str, bytes], path: str, problems: list[str]) -> Any:
    try:
        return json.loads(files[path])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: not valid JSON ({exc.__class__.__name__})")
        return None


def _check_manifest(files: dict[str, bytes], problems: list[str]) -> dict[str, Any] | None:
    if MANIFEST not in files:
        problems.append(f"{MANIFEST}: missing from the bundle")
        return None
    manifest = _load(files, MANIFEST, problems)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        if manifest is not None:
            problems.append(f"{MANIFEST}: has no list of files")
        return None
    listed: dict[str, str] = {}
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or set(entry) != {"path", "sha256"}:
            problems.append(f"{MANIFEST}: malformed entry {entry!r}")
            continue
        listed[str(entry["path"])] = str(entry["sha256"])
    for path, digest in sorted(listed.items()):
        if path not in files:
            problems.append(f"{path}: listed in the manifest but missing from the bundle")
        elif hashlib.sha256(files[path]).hexdigest() != digest:
            problems.append(f"{path}: sha256 differs from the manifest")
    for path in sorted(set(files) - set(listed) - {MANIFEST}):
        problems.append(f"{path}: not listed in the manifest")
    return manifest


def _check_event(path: str, record: Any, problems: list[str]) -> bytes | None:
    """The leaf hash recomputed from the envelope, or None if the event is bad."""
    try:
        env = record["envelope"]
        header = record["decrypted"]["header"]
        payload = record["decrypted"]["data"]
        leaf = record_leaf(env)
        stored = bytes.fromhex(env["leaf_hash"])
        index = json.loads(env["index_fields"])
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"{path}: not a govreg event record ({exc.__class__.__name__}: {exc})")
        return None
    if path != event_name(int(env["seq"])):
        problems.append(f"{path}: holds the event with seq {env['seq']}")
        return None
    if leaf != stored:
        problems.append(f"{path}: leaf hash does not match its envelope")
        return None
    ok = True
    plain = {
        "recorded_at": env["recorded_at"],
        "actor": env["actor"],
        "model": env["model"],
        "version": env["version"],
        "index": index,
    }
    for name, value in plain.items():
        if not isinstance(header, dict) or header.get(name) != value:
            problems.append(
                f"{path}: decrypted payload disagrees with its envelope field "
                f"'{'index_fields' if name == 'index' else name}'"
            )
            ok = False
    if not isinstance(payload, dict):
        problems.append(f"{path}: decrypted payload is not an object")
        return None
    for name, value in index.items():
        if name in payload and payload[name] != value:
            problems.append(
                f"{path}: decrypted payload field '{name}' disagrees with the envelope's index"
            )
            ok = False
    if env["type"] == EventType.GATE_EVALUATED and payload.get("result", {}).get(
        "values", {}
    ) != index.get("values", {}):
        problems.append(f"{path}: decrypted gate values disagree with the envelope's index")
        ok = False
    return leaf if ok else None


def verify_bundle(data: bytes, public_key: Ed25519PublicKey) -> BundleReport:
    """Raise :class:`BundleInvalid` naming every failed check; else a report."""
    files = read_zip(data)
    problems: list[str] = []
    # 1. The manifest lists every file with its SHA-256.
    manifest = _check_manifest(files, problems)
    # 2. The checkpoint is signed by the given key.
    checkpoint: SignedCheckpoint | None = None
    if CHECKPOINT not in files:
        problems.append(f"{CHECKPOINT}: missing from the bundle")
    else:
        try:
            checkpoint = SignedCheckpoint.from_text(
                files[CHECKPOINT].decode("utf-8"), source=CHECKPOINT
            )
            checkpoint.verify(public_key)
        except UnicodeDecodeError:
            problems.append(f"{CHECKPOINT}: not UTF-8 text")
            checkpoint = None
        except GovregError as exc:
            problems.append(f"{CHECKPOINT}: signature does not verify ({exc})")
            checkpoint = None
    # 3. Each envelope hashes to its leaf; its payload copy agrees with it.
    events: dict[int, dict[str, Any]] = {}  # the envelopes that hash to their leaf
    for path in sorted(p for p in files if p.startswith("events/")):
        record = _load(files, path, problems)
        if record is None:
            continue
        if _check_event(path, record, problems) is not None:
            events[int(record["envelope"]["seq"])] = record
    if not any(p.startswith("events/") for p in files):
        problems.append("events/: the bundle holds no events")
    # 4. Each leaf is included in the signed checkpoint's tree.
    for path in sorted(p for p in files if p.startswith("proofs/")):
        seq_text = path.removeprefix("proofs/").removesuffix(".json")
        if event_name(int(seq_text) if seq_text.isdigit() else -1) not in files:
            problems.append(f"{path}: proves an event the bundle does not hold")
    for seq in sorted(events):
        path = proof_name(seq)
        if path not in files:
            problems.append(f"{path}: missing; {event_name(seq)} is not proved")
            continue
        proof = _load(files, path, problems)
        if proof is None or checkpoint is None:
            continue
        where = f"checkpoint {checkpoint.size}"
        try:
            if proof["seq"] != seq or proof["leaf_index"] != seq - 1:
                raise ValueError("wrong leaf")
            if proof["tree_size"] != checkpoint.size or proof["root"] != checkpoint.root.hex():
                raise ValueError("wrong tree")
            prove_record(events[seq]["envelope"], proof["hashes"], checkpoint)
        except (KeyError, TypeError, ValueError, RecordNotProved):
            problems.append(f"{path}: inclusion proof does not verify against {where}")
    # 5. The other files equal what the envelopes commit to.
    model = version = None
    if manifest is not None:
        model, version = manifest.get("model"), manifest.get("version")
    for seq, record in sorted(events.items()):
        env = record["envelope"]
        if (env["model"], env["version"]) != (model, version):
            problems.append(
                f"{event_name(seq)}: belongs to {env['model']} v{env['version']}, "
                f"not to the bundle's {model} v{version}"
            )
    _check_documents(files, events, problems)
    if problems:
        raise BundleInvalid(problems)
    assert checkpoint is not None  # no problems means the checkpoint was read
    return BundleReport(
        model=str(model),
        version=int(version or 0),
        events=len(events),
        checkpoint_size=checkpoint.size,
        key_fingerprint=checkpoint.key_fingerprint,
        files=len(files) - 1,
    )


def _of_type(events: dict[int, dict[str, Any]], kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [(s, r) for s, r in sorted(events.items()) if r["envelope"]["type"] == kind]


def _index(record: dict[str, Any]) -> dict[str, Any]:
    index: dict[str, Any] = json.loads(record["envelope"]["index_fields"])
    return index


def _check_documents(
    files: dict[str, bytes], events: dict[int, dict[str, Any]], problems: list[str]
) -> None:
    # Gate results: the current evaluation's gate events, bound by result digest.
    gate_files = {p for p in files if p.startswith("gates/")}
    # what the events' (proved) plaintext index says; the payloads cannot be read here
    history = VersionHistory.from_events(
        RecordedEvent.of(record["envelope"]) for record in events.values()
    )
    for gate_id, gate in sorted(history.gates.items(), key=lambda g: g[1].seq):
        path = f"gates/{gate_id}.json"
        gate_files.discard(path)
        if path not in files:
            problems.append(f"{path}: missing; {event_name(gate.seq)} records that gate")
            continue
        result = _load(files, path, problems)
        if result is None:
            continue
        digest = hashlib.sha256(canonical_bytes(result)).hexdigest()
        if digest != gate.index.get("result_digest"):
            problems.append(
                f"{path}: does not match the result digest recorded in {event_name(gate.seq)}"
            )
    for path in sorted(gate_files):
        problems.append(f"{path}: no gate event of the current evaluation records it")
    # The policy: its digest is the last one a submission or re-evaluation recorded.
    policy_event, policy_digest = history.policy_event, history.policy_digest
    if POLICY not in files:
        problems.append(f"{POLICY}: missing from the bundle")
    elif policy_event is None:
        problems.append(f"{POLICY}: no event in the bundle records a policy digest")
    else:
        policy = _load(files, POLICY, problems)
        if policy is not None:
            try:
                ok = hashlib.sha256(canonical_bytes(policy)).hexdigest() == policy_digest
            except ValueError:
                ok = False
            if not ok:
                problems.append(
                    f"{POLICY}: digest differs from the policy digest in "
                    f"{event_name(policy_event.seq)}"
                )
    # Artifact and dataset digests: as the submission recorded them.
    submitted = _of_type(events, EventType.VERSION_SUBMITTED)
    if DIGESTS not in files:
        problems.append(f"{DIGESTS}: missing from the bundle")
    elif not submitted:
        problems.append(f"{DIGESTS}: the bundle holds no version.submitted event")
    else:
        seq, record = submitted[0]
        digests = _load(files, DIGESTS, problems)
        index, payload = _index(record), record["decrypted"]["data"]
        if digests is not None:
            expected = {r: _dataset(payload[r]) for r in ("artifact", "train", "validation")}
            committed = all(
                isinstance(digests.get(r), dict)
                and digests[r].get("digest") == index.get(f"{r}_digest")
                for r in ("artifact", "train", "validation")
            )
            if digests != expected or not committed:
                problems.append(f"{DIGESTS}: differs from the submission in {event_name(seq)}")
    # The report: its SHA-256 is the one the last report.generated event recorded.
    reports = _of_type(events, EventType.REPORT_GENERATED)
    if REPORT not in files:
        problems.append(f"{REPORT}: missing from the bundle")
    elif not reports:
        problems.append(f"{REPORT}: the bundle holds no report.generated event")
    else:
        seq, record = reports[-1]
        if hashlib.sha256(files[REPORT]).hexdigest() != _index(record).get("report_sha256"):
            problems.append(f"{REPORT}: sha256 differs from the one in {event_name(seq)}")
