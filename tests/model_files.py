"""LightGBM model files taken apart and put back (importable as ``model_files``).

Used by the model-file tests of the registry and the API: a saved model split
into header, tree blocks and trailer, edited, and joined again with its
``tree_sizes`` recomputed, so that each edit reaches the check it aims at;
and a large garbage file written in pieces.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.model_text import MAX_TREES

GARBAGE_BYTES = 200 * 1024 * 1024


def split_model(text: str) -> tuple[list[str], list[str], str]:
    """(header lines, tree blocks, everything from 'end of trees') of a saved model."""
    head, rest = text.split("\nTree=0\n", 1)
    body, trailer = ("Tree=0\n" + rest).split("end of trees\n", 1)
    blocks = ["Tree=" + b for b in body.split("Tree=")[1:]]
    return head.split("\n"), blocks, "end of trees\n" + trailer


def join_model(header: list[str], blocks: list[str], trailer: str, *, sizes: bool = True) -> str:
    """A model from its parts with tree_sizes recomputed (unless ``sizes`` is False)."""
    lines = list(header)
    if sizes:
        at = next(i for i, line in enumerate(lines) if line.startswith("tree_sizes="))
        lines[at] = "tree_sizes=" + " ".join(str(len(b.encode())) for b in blocks)
    return "\n".join(lines) + "\n" + "".join(blocks) + trailer


def edit_tree(text: str, index: int, key: str, change: Callable[[list[str]], list[str]]) -> str:
    """``text`` with Tree=index's ``key`` values changed, tree_sizes kept true."""
    header, blocks, trailer = split_model(text)
    lines = blocks[index].split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(key + "="))
    values = lines[at][len(key) + 1 :].split(" ")
    lines[at] = f"{key}=" + " ".join(change(values))
    blocks[index] = "\n".join(lines)
    return join_model(header, blocks, trailer)


def doctored(text: str) -> dict[str, tuple[str, str]]:
    """name -> (model text, the refusal after 'is not a valid LightGBM text model: ')."""
    header, blocks, trailer = split_model(text)
    sizes_at = next(i for i, line in enumerate(header) if line.startswith("tree_sizes="))
    max_idx = int(next(h for h in header if h.startswith("max_feature_idx=")).split("=")[1])

    def header_with(line: str) -> list[str]:
        return [*header[:sizes_at], line, *header[sizes_at + 1 :]]

    renamed = ["Tree=999999999\n" + blocks[0].split("\n", 1)[1], *blocks[1:]]
    leaves = int(blocks[3].split("num_leaves=")[1].split("\n")[0])
    return {
        "a million and one trees claimed": (
            "\n".join(header_with("tree_sizes=" + " ".join(["1"] * (MAX_TREES + 1))))
            + "\n"
            + "".join(blocks)
            + trailer,
            f"tree_sizes lists {MAX_TREES + 1} trees, over the limit of {MAX_TREES}",
        ),
        "an exabyte tree claimed": (
            join_model(header_with("tree_sizes=" + "1" * 18), blocks, trailer, sizes=False),
            f"tree_sizes says Tree=0 is {'1' * 18} bytes but only "
            f"{len(''.join(blocks).encode() + trailer.encode())} bytes follow "
            "(is the file cut short?)",
        ),
        "Tree=999999999": (
            join_model(header, renamed, trailer),
            f"line {len(header) + 1} is 'Tree=999999999' where tree_sizes puts Tree=0",
        ),
        "a billion leaves": (
            edit_tree(text, 2, "num_leaves", lambda _: ["1000000000"]),
            "Tree=2 has num_leaves=1000000000, outside 1..131072",
        ),
        "empty tree section": (
            join_model(header, [], trailer),
            "it has no trees: no Tree=0 block follows the header (tree_sizes lists 0)",
        ),
        "feature index out of range": (
            edit_tree(text, 3, "split_feature", lambda v: [str(max_idx + 1), *v[1:]]),
            f"Tree=3 split_feature entry 0 is {max_idx + 1}, outside 0..{max_idx}",
        ),
        "leaf_value one short": (
            edit_tree(text, 3, "leaf_value", lambda v: v[:-1]),
            f"Tree=3 has {leaves - 1} leaf_value entries, num_leaves says {leaves}",
        ),
        "a child loop": (
            edit_tree(text, 1, "left_child", lambda v: ["0", *v[1:]]),
            "Tree=1 left_child of node 0 points back to the root, node 0",
        ),
        "no pandas_categorical line": (
            text.rsplit("pandas_categorical:", 1)[0],
            "it ends without the pandas_categorical line the Python package writes last "
            "(is the file cut short?); save it with booster.save_model('model.txt')",
        ),
        "windows line endings": (
            text.replace("\n", "\r\n"),
            "it has a carriage return at line 1 (Windows line endings shift LightGBM's tree "
            "offsets); save it with booster.save_model('model.txt')",
        ),
    }


def categorical_model(train: Any, features: list[str], target: str) -> str:
    """A LightGBM model of ``train`` whose ``delinquencies_2y`` is a pandas categorical."""
    import pandas as pd

    from core.lgbm import import_lightgbm

    lgb = import_lightgbm()
    frame = train[features].copy()
    frame["delinquencies_2y"] = pd.Categorical(frame["delinquencies_2y"])
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "min_data_per_group": 10,  # small groups, so the categorical feature is split on
        "cat_smooth": 1,
        "cat_l2": 1,
        "verbose": -1,
        "seed": 0,
        "num_threads": 1,
    }
    data = lgb.Dataset(frame, train[target], categorical_feature=["delinquencies_2y"])
    text: str = lgb.train(params, data, 20).model_to_string()
    assert re.search(r"^num_cat=[1-9]", text, re.MULTILINE), "no categorical split"
    assert "pandas_categorical:[[" in text
    return text


def write_garbage(path: Path, text: str) -> None:
    """A real model's first 40% and then random printable lines, to 200 MB, in 1 MB pieces."""
    rng = random.Random(7)
    alphabet = (b"abcdefghijklmnopqrstuvwxyz0123456789 =.-_:[]\n" * 6)[:256]
    table = bytes.maketrans(bytes(range(256)), alphabet)
    head = text.encode()[: len(text) * 2 // 5]
    with path.open("wb") as sink:
        sink.write(head)
        left = GARBAGE_BYTES - len(head)
        while left > 0:
            piece = rng.randbytes(min(left, 1024 * 1024)).translate(table)
            sink.write(piece)
            left -= len(piece)
