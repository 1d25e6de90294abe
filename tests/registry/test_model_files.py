"""Untrusted LightGBM model files never take a process down.

Real models (numeric, and pandas-categorical) are cut short, flipped and
doctored; each is refused with one line and nothing recorded, by ``govreg
submit`` run in a child process (click's runner, several submissions per
process) so that an abort would show as a dead process, not a dead test run.
The structural check (core/model_text.py) and the child parse
(registry/model_probe.py) are also driven directly.
"""

from __future__ import annotations

import json
import logging
import random
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import PROTECTED, TARGET
from model_files import (
    categorical_model,
    doctored,
    edit_tree,
    join_model,
    split_model,
    write_garbage,
)

from core.errors import InputError
from core.model_text import check_model_text

TRUNCATIONS = 50
FLIPS = 200
REFUSED = re.compile(
    r"error: artifact (\S+) (is not a valid LightGBM text model: |is not text; |"
    r"is not a LightGBM text model \(it must start with 'tree'\); |"
    r"does not load as a LightGBM model \()"
)


@pytest.fixture(scope="module")
def models(inputs: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The kit's numeric model and one with a pandas categorical feature (same columns)."""
    import pandas as pd

    train = pd.read_csv(inputs.train_csv)
    features = [f for f in inputs.features if f in train.columns]
    categorical = categorical_model(train, features, TARGET)
    return {"numeric": inputs.model_text, "categorical": categorical}


def truncations(text: str) -> list[bytes]:
    data = text.encode()
    return [data[: len(data) * k // (TRUNCATIONS + 1)] for k in range(1, TRUNCATIONS + 1)]


def flips(text: str) -> list[bytes]:
    rng = random.Random(20240611)
    data = text.encode()
    out = []
    for _ in range(FLIPS):
        mutated = bytearray(data)
        at = rng.randrange(len(mutated))
        mutated[at] = rng.choice([b for b in range(256) if b != mutated[at]])
        out.append(bytes(mutated))
    return out


# -- the structural check alone -----------------------------------------------------------
def test_real_models_pass_with_their_facts(models: dict[str, str], inputs: Any) -> None:
    numeric = check_model_text(models["numeric"].encode(), subject="m")
    assert (numeric.features, numeric.num_trees, numeric.num_class) == (inputs.features, 20, 1)
    assert numeric.objective == "binary sigmoid:1"
    categorical = check_model_text(models["categorical"].encode(), subject="m")
    assert categorical.num_trees == 20
    assert "delinquencies_2y" in categorical.features


def test_other_real_shapes_pass_and_linear_trees_are_refused() -> None:
    import numpy as np

    from core.lgbm import import_lightgbm

    lgb = import_lightgbm()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] > 0).astype(int)
    quiet = {"verbose": -1, "num_threads": 1}
    multiclass = lgb.train(
        {**quiet, "objective": "multiclass", "num_class": 3},
        lgb.Dataset(x, (x[:, 1] > 0).astype(int) + y),
        2,
    )
    facts = check_model_text(multiclass.model_to_string().encode(), subject="m")
    assert (facts.num_trees, facts.num_class, facts.num_tree_per_iteration) == (6, 3, 3)
    stump = lgb.train(
        {**quiet, "objective": "binary", "min_data_in_leaf": 1000}, lgb.Dataset(x, y), 1
    )
    assert "num_leaves=1\n" in stump.model_to_string()
    assert check_model_text(stump.model_to_string().encode(), subject="m").num_trees == 1
    linear = lgb.train(
        {**quiet, "objective": "binary", "linear_tree": True}, lgb.Dataset(x, y), 2
    ).model_to_string()
    with pytest.raises(InputError) as refused:
        check_model_text(linear.encode(), subject="artifact m.txt")
    assert str(refused.value) == (
        "artifact m.txt is not a valid LightGBM text model: Tree=0 is a linear tree; govreg "
        "does not accept linear trees (train with linear_tree=False)"
    )


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_doctored_models_are_refused_by_the_structural_check(
    models: dict[str, str], kind: str
) -> None:
    for name, (text, reason) in doctored(models[kind]).items():
        with pytest.raises(InputError) as refused:
            check_model_text(text.encode(), subject="artifact m.txt")
        assert str(refused.value) == (
            f"artifact m.txt is not a valid LightGBM text model: {reason}"
        ), name


def test_categorical_splits_are_checked(models: dict[str, str]) -> None:
    text = models["categorical"]
    tree = next(i for i, b in enumerate(split_model(text)[1]) if "num_cat=1\n" in b)
    decision = next(
        line for line in split_model(text)[1][tree].split("\n") if line.startswith("decision_type=")
    )
    node = next(i for i, d in enumerate(decision.split("=")[1].split(" ")) if int(d) & 1)
    cases = {
        "threshold": (
            lambda v: [*v[:node], "5", *v[node + 1 :]],
            f"Tree={tree} node {node} is a categorical split with threshold '5', not a "
            "category set 0..0",
        ),
        "cat_boundaries": (
            lambda v: ["1", *v[1:]],
            f"Tree={tree} cat_boundaries do not rise from 0",
        ),
    }
    for key, (change, reason) in cases.items():
        with pytest.raises(InputError) as refused:
            check_model_text(edit_tree(text, tree, key, change).encode(), subject="m")
        assert str(refused.value) == f"m is not a valid LightGBM text model: {reason}", key


def test_a_cycle_of_nodes_is_refused(models: dict[str, str]) -> None:
    """Node 1's child is node 2 and node 2's child is node 1: every node has one parent,
    yet LightGBM would walk in circles; the walk from the root finds them unreachable."""
    header, _, trailer = split_model(models["numeric"])
    lines = [
        "Tree=0",
        "num_leaves=4",
        "num_cat=0",
        "split_feature=0 0 0",
        "split_gain=1 1 1",
        "threshold=0 0 0",
        "decision_type=2 2 2",
        "left_child=-1 2 1",
        "right_child=-2 -3 -4",
        "leaf_value=0 0 0 0",
        "leaf_weight=1 1 1 1",
        "leaf_count=1 1 1 1",
        "internal_value=0 0 0",
        "internal_weight=1 1 1",
        "internal_count=1 1 1",
        "is_linear=0",
        "shrinkage=1",
    ]
    looped = join_model(header, ["\n".join([*lines, "", "", ""])], trailer)
    with pytest.raises(InputError) as refused:
        check_model_text(looped.encode(), subject="m")
    assert str(refused.value) == (
        "m is not a valid LightGBM text model: Tree=0 has 2 nodes not reachable from node 0 "
        "(the children form a cycle)"
    )
    fixed = looped.replace("left_child=-1 2 1", "left_child=-1 2 -2").replace(
        "right_child=-2 -3 -4", "right_child=1 -3 -4"
    )
    assert check_model_text(fixed.encode(), subject="m").num_trees == 1


# -- the child parse ------------------------------------------------------------------------
def test_the_child_survives_what_aborts_lightgbm(models: dict[str, str]) -> None:
    """The cut that made LightGBM abort the process (SIGABRT): only the child dies."""
    from registry.model_probe import probe_model

    good = check_model_text(models["numeric"].encode(), subject="m")
    cut = models["numeric"].encode()[: len(models["numeric"]) * 6 // 10]
    with pytest.raises(InputError) as refused:
        probe_model(cut, subject="artifact m.txt", expected=good)
    assert str(refused.value) == (
        "artifact m.txt does not load as a LightGBM model (the parser aborted)"
    )
    with pytest.raises(InputError) as slow:
        probe_model(models["numeric"].encode(), subject="artifact m.txt", expected=good, timeout=0)
    assert str(slow.value) == (
        "artifact m.txt does not load as a LightGBM model (the parser aborted: no answer "
        "within 0 s)"
    )


def test_what_lightgbm_itself_refuses_is_one_line(models: dict[str, str]) -> None:
    from registry.inputs import inspect_artifact

    text = models["numeric"].replace("objective=binary sigmoid:1", "objective=binary sigmoid:-1")
    with pytest.raises(InputError) as refused:
        inspect_artifact(text.encode(), source="m.txt")
    assert str(refused.value) == (
        "artifact m.txt does not load as a LightGBM model (LightGBM says 'Sigmoid parameter "
        "-1.000000 should be greater than zero')"
    )


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_flipped_bytes_are_refused_or_load(models: dict[str, str], kind: str) -> None:
    """Whatever passes the structural check loads in the child, and in this process too."""
    from core.lgbm import import_lightgbm
    from registry.inputs import inspect_artifact

    lgb = import_lightgbm()
    loaded = 0
    refusals: list[str] = []
    for data in flips(models[kind]):
        try:
            info = inspect_artifact(data, source="m.txt")
        except InputError as exc:
            refusals.append(str(exc))
            continue
        booster = lgb.Booster(model_str=data.decode())
        assert (booster.feature_name(), booster.num_trees()) == (info.features, info.num_trees)
        loaded += 1
    assert 0 < loaded < FLIPS // 2
    assert len(refusals) == FLIPS - loaded
    assert all("\n" not in r and r.startswith("artifact m.txt ") for r in refusals)


def test_gate_inputs_run_the_structural_check(models: dict[str, str], inputs: Any) -> None:
    """An out-of-range split feature LightGBM would load (and read past the row with)."""
    import pandas as pd

    from validation.inputs import GateInputs

    text, reason = doctored(models["numeric"])["feature index out of range"]
    frame = pd.read_csv(inputs.validation_csv)
    gate = GateInputs(model_text=text, train=frame, validation=frame, target=TARGET)
    with pytest.raises(InputError) as refused:
        _ = gate.booster
    assert str(refused.value) == f"the model is not a valid LightGBM text model: {reason}"


def test_the_serving_parse_runs_the_structural_check(models: dict[str, str]) -> None:
    from serving.errors import Check, LoadRefused
    from serving.loader import parse_model

    text, reason = doctored(models["numeric"])["leaf_value one short"]
    with pytest.raises(LoadRefused) as refused:
        parse_model(text.encode(), subject="pd v1")
    assert refused.value.check == Check.FORMAT
    assert str(refused.value).endswith(
        f"artifact pd v1 is not a valid LightGBM text model: {reason}"
    )


# -- LightGBM's log --------------------------------------------------------------------------
def test_lightgbm_never_writes_raw_lines(
    models: dict[str, str], capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Loading and training, in this thread and another: LightGBM's lines go to logging."""
    import numpy as np

    from registry.inputs import load_lightgbm_text

    def work() -> None:
        from core.lgbm import import_lightgbm

        lgb = import_lightgbm()
        load_lightgbm_text(models["numeric"].encode(), source="m.txt")
        x = np.random.default_rng(0).normal(size=(300, 3))
        lgb.train(
            {"objective": "binary", "verbose": 1, "num_threads": 1},
            lgb.Dataset(x, (x[:, 0] > 0).astype(int)),
            2,
        )

    caplog.set_level(logging.INFO, logger="lightgbm")
    work()
    other = threading.Thread(target=work)
    other.start()
    other.join()
    out, err = capfd.readouterr()
    assert "[LightGBM]" not in out + err
    lines = [r.getMessage() for r in caplog.records if r.name == "lightgbm"]
    started = [m for m in lines if m.startswith("[LightGBM] [Info] Start training from score")]
    assert len(started) == 2, lines


# -- govreg submit ----------------------------------------------------------------------------
DRIVER = """
import json, sys
from click.testing import CliRunner
from govreg.cli import cli

spec = json.loads(open(sys.argv[1]).read())
runner = CliRunner()
with open(sys.argv[2], "w") as out:
    for artifact in spec["artifacts"]:
        result = runner.invoke(
            cli, ["submit", "pd", "--artifact", artifact, *spec["args"]],
            env=spec["env"], catch_exceptions=False,
        )
        out.write(json.dumps([artifact, result.exit_code, result.stdout, result.stderr]) + "\\n")
"""


def submit_all(kit: Any, artifacts: list[Path], tmp_path: Path) -> list[tuple[str, int, str, str]]:
    """``govreg submit`` of each artifact, in one child process; its own fd 1 and 2 must
    stay empty (LightGBM writes there directly when it writes raw)."""
    spec = tmp_path / "spec.json"
    answers = tmp_path / "answers.jsonl"
    args = [
        "--train",
        str(kit.files.train_csv),
        "--validation",
        str(kit.files.validation_csv),
        "--target",
        TARGET,
        "--protected",
        ",".join(PROTECTED),
    ]
    env = {**kit.home.env, "GOVREG_API_KEY": kit.key("ds-1")}
    spec.write_text(
        json.dumps({"artifacts": [str(a) for a in artifacts], "args": args, "env": env})
    )
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(spec), str(answers)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    return [tuple(json.loads(line)) for line in answers.read_text().splitlines()]  # type: ignore[misc]


def recorded(kit: Any) -> dict[str, Any]:
    return {"size": kit.size(), "versions": kit.rows("versions"), "blobs": kit.blobs()}


@pytest.mark.slow
def test_submit_refuses_every_broken_model_and_records_nothing(
    sqlite_kit: Any, models: dict[str, str], tmp_path: Path
) -> None:
    from registry.inputs import inspect_artifact

    kit = sqlite_kit
    kit.people("ds-1")
    files: list[Path] = []
    reasons: dict[str, str] = {}

    def add(name: str, data: bytes, reason: str | None = None) -> None:
        path = tmp_path / f"{name}.txt"
        path.write_bytes(data)
        files.append(path)
        if reason is not None:
            reasons[str(path)] = reason

    for kind, text in models.items():
        for number, cut in enumerate(truncations(text)):
            add(f"{kind}-cut-{number:02d}", cut)
        for name, (doctored_text, reason) in doctored(text).items():
            add(f"{kind}-{name.replace(' ', '-')}", doctored_text.encode(), reason)
        for number, flipped in enumerate(flips(text)):
            try:
                inspect_artifact(flipped, source="m.txt")
            except InputError:
                add(f"{kind}-flip-{number:03d}", flipped)
    garbage = tmp_path / "garbage.txt"
    write_garbage(garbage, models["numeric"])
    files.append(garbage)
    before = recorded(kit)

    answers = submit_all(kit, files, tmp_path)

    assert len(files) > 2 * (TRUNCATIONS + FLIPS // 2)
    assert [a[0] for a in answers] == [str(f) for f in files]
    for artifact, code, stdout, stderr in answers:
        assert (code, stdout) == (2, ""), (artifact, stderr)
        assert stderr.count("\n") == 1, stderr
        match = REFUSED.match(stderr)
        assert match is not None, stderr
        assert match.group(1) == artifact
        if artifact in reasons:
            assert stderr == (
                f"error: artifact {artifact} is not a valid LightGBM text model: "
                f"{reasons[artifact]}\n"
            )
        assert len(stderr) < 400, stderr
    assert recorded(kit) == before

    # the same home takes the unbroken models (the refusals above were for their damage)
    good = []
    for kind, text in models.items():
        path = tmp_path / f"{kind}.txt"
        path.write_text(text)
        good.append(path)
    assert [(a[1], a[3]) for a in submit_all(kit, good, tmp_path)] == [(0, ""), (0, "")]
    assert [r["version"] for r in kit.rows("versions")] == [1, 2]


def test_the_console_script_refuses_the_cut_that_aborted(
    sqlite_kit: Any, models: dict[str, str], tmp_path: Path
) -> None:
    """The real ``govreg`` executable: exit 2, one line, no [LightGBM] output, nothing kept."""
    import os

    kit = sqlite_kit
    text = models["numeric"]
    cut = tmp_path / "model.txt"
    cut.write_bytes(text.encode()[: len(text) * 6 // 10])
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVREG_")}
    env.update({**kit.home.env, "GOVREG_API_KEY": kit.key("ds-1")})
    before = recorded(kit)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("govreg")),
            "submit",
            "pd",
            "--artifact",
            str(cut),
            "--train",
            str(kit.files.train_csv),
            "--validation",
            str(kit.files.validation_csv),
            "--target",
            TARGET,
            "--protected",
            ",".join(PROTECTED),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert re.fullmatch(
        rf"error: artifact {re.escape(str(cut))} is not a valid LightGBM text model: tree_sizes "
        r"says Tree=\d+ is \d+ bytes but only \d+ bytes follow \(is the file cut short\?\)\n",
        done.stderr,
    ), done.stderr
    assert recorded(kit) == before
