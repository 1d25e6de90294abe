"""Let LightGBM parse an untrusted model in a short-lived child process.

LightGBM's reader can abort the whole process on a bad file (and print
fragments of its memory on the way). Submission therefore runs it in a child,
after :func:`core.model_text.check_model_text` has passed the bytes: the
child (``registry/model_probe_child.py``, started as ``python -I -S``, so it
imports nothing but the standard library and LightGBM's native library)
loads the model, scores two rows and reports its feature names and tree
count. Its stdout and stderr never reach the caller's terminal or log: it
answers on a pipe, its stderr is discarded. A child that dies, hangs past
``timeout`` or answers nonsense is one :class:`InputError`, and so is a model
LightGBM reads differently from its text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from core.lgbm import library_path
from core.model_text import ModelText, token

CHILD = Path(__file__).with_name("model_probe_child.py")
PROBE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Probed:
    features: list[str]
    num_trees: int
    num_class: int


def probe_model(
    data: bytes,
    *,
    subject: str,
    expected: ModelText,
    timeout: float = PROBE_TIMEOUT_SECONDS,
) -> Probed:
    """LightGBM's own reading of ``data`` (already structurally checked), from a child."""
    aborted = InputError(f"{subject} does not load as a LightGBM model (the parser aborted)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        # our interpreter, our script, fixed arguments (ruff S603, bandit B603)
        done = subprocess.run(  # noqa: S603  # nosec B603
            [sys.executable, "-I", "-S", str(CHILD), str(library_path())],
            input=data,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{subject} does not load as a LightGBM model (the parser aborted: no answer "
            f"within {timeout:g} s)"
        ) from None
    if done.returncode != 0:
        raise aborted
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise aborted from None
    if not isinstance(answer, dict):
        raise aborted
    if answer.get("loaded") is not True:
        said = str(answer.get("error", ""))
        raise InputError(
            f"{subject} does not load as a LightGBM model (LightGBM says {token(said, 80)})"
        )
    probed = Probed(
        features=[str(f) for f in answer.get("features", [])],
        num_trees=int(answer.get("num_trees", -1)),
        num_class=int(answer.get("num_class", -1)),
    )
    if (probed.features, probed.num_trees, probed.num_class) != (
        expected.features,
        expected.num_trees,
        expected.num_class,
    ):
        raise InputError(
            f"{subject} loads differently from its text: LightGBM reads "
            f"{len(probed.features)} features and {probed.num_trees} trees, the text says "
            f"{len(expected.features)} and {expected.num_trees}"
        )
    return probed
