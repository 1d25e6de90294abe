"""Load policies from YAML files: the packaged ones and a configured folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policies.schema import Policy, PolicyError

PACKAGED_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY = "credit-risk"


def load_policy_file(path: Path) -> Policy:
    """Parse and validate one policy file; errors name the file and the key."""
    import yaml
    from pydantic import ValidationError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read it ({exc.strerror})") from exc
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise PolicyError(f"policy file {path}: empty or not a mapping; a policy needs gates")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PolicyError(f"policy file {path}: key '{key}': {first['msg']}") from exc


def policy_dirs(extra: Path | None) -> list[Path]:
    return [d for d in (extra, PACKAGED_DIR) if d is not None]


def all_policies(*, extra_dir: Path | None = None) -> list[Policy]:
    """Every policy file found, sorted by id and version."""
    found: dict[tuple[str, int], Policy] = {}
    for folder in policy_dirs(extra_dir):
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                policy = load_policy_file(path)
                found.setdefault((policy.id, policy.version), policy)
    return [found[key] for key in sorted(found)]


def find_policy(policy_id: str, *, extra_dir: Path | None = None) -> Policy:
    """The newest version of ``policy_id`` (``id`` or ``id@version``)."""
    wanted_id, _, wanted_version = policy_id.partition("@")
    found: list[Policy] = []
    for folder in policy_dirs(extra_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            policy = load_policy_file(path)
            if policy.id == wanted_id and (
                not wanted_version or str(policy.version) == wanted_version
            ):
                found.append(policy)
    if not found:
        where = ", ".join(str(d) for d in policy_dirs(extra_dir))
        raise PolicyError(f"no policy '{policy_id}' in {where}; pass --policy with a known id")
    return max(found, key=lambda p: p.version)
