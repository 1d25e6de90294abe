"""Model-file benchmark: what the structural check and the child parse cost a submission.

For a 100-tree model (the synthetic candidate) and a 2,000-tree model, the
median of N runs of each step, next to the in-process parse submission used
before (``lightgbm.Booster(model_str=...)``, which a bad file can abort):

- ``check_model_text``: the pure-Python structural check;
- ``probe_model``: LightGBM's parse in a child process (start, load, score two
  rows, answer);
- ``inspect_artifact``: both, as submission runs them.

Run:  .venv/bin/python benchmarks/model_files.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def median_ms(step: Callable[[], object], runs: int) -> float:
    step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    import numpy as np

    from core.lgbm import import_lightgbm
    from core.model_text import check_model_text
    from govreg.synthetic import write_candidate
    from registry.inputs import inspect_artifact
    from registry.model_probe import probe_model

    lgb = import_lightgbm()
    with tempfile.TemporaryDirectory() as tmp:
        small = write_candidate(Path(tmp))["artifact"].read_bytes()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 20))
    y = (x[:, 0] + rng.normal(size=5000) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1}
    large = lgb.train(params, lgb.Dataset(x, y), 2000).model_to_string().encode()
    print(f"lightgbm {lgb.__version__}, median of {args.runs} runs, milliseconds")
    print("| model | structural check | child parse | inspect_artifact | in-process parse |")
    print("|---|---|---|---|---|")
    for data in (small, large):
        facts = check_model_text(data, subject="m")
        figures = [
            median_ms(lambda d=data: check_model_text(d, subject="m"), args.runs),
            median_ms(lambda d=data, f=facts: probe_model(d, subject="m", expected=f), args.runs),
            median_ms(lambda d=data: inspect_artifact(d, source="m"), args.runs),
            median_ms(lambda d=data: lgb.Booster(model_str=d.decode()), args.runs),
        ]
        name = f"{facts.num_trees} trees, {len(data) // 1024} KB"
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in figures) + " |")


if __name__ == "__main__":
    main()
