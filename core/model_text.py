"""The structure of a LightGBM native text model, checked before LightGBM sees it.

LightGBM's own reader (``GBDT::LoadModelFromString`` and ``Tree::Tree`` in
LightGBM 4) trusts its input: it jumps to each tree at the byte offsets that
``tree_sizes`` claims, scans for ``=`` past the end of a line, allocates
arrays of whatever length ``num_leaves`` says and parses them without
counting, and on a bad file may read memory it does not own or abort the
process. :func:`check_model_text` walks the whole file in pure Python first
and refuses anything LightGBM could trip over, with one line naming what is
wrong and where. It accepts the files that ``booster.save_model`` and
``booster.model_to_string`` write (numeric and categorical splits, pandas
categories), and nothing else:

1. the bytes: not empty, not a pickle or zip archive, UTF-8, no NUL byte, no
   carriage return (LightGBM's offsets count ``\\n`` line ends only);
2. the header: ``tree``, then ``key=value`` lines with the known keys, each
   once; ``version`` v3 or v4; ``num_class``, ``num_tree_per_iteration``,
   ``label_index``, ``max_feature_idx`` integers in range; ``feature_names``
   and ``feature_infos`` (and ``monotone_constraints``, when present) with
   ``max_feature_idx + 1`` entries; a known ``objective``; ``tree_sizes``
   with at most :data:`MAX_TREES` entries, counted before they are split;
3. each tree: the block ``Tree=i`` (i = 0, 1, ...) sits exactly where
   ``tree_sizes`` says and is exactly that long; it holds the known keys,
   each once; ``num_leaves`` is 1 to :data:`MAX_LEAVES`; the internal-node
   arrays have ``num_leaves - 1`` entries and the leaf arrays ``num_leaves``
   (a one-leaf tree may leave its leaf weights and counts empty); every
   number parses; ``split_feature`` lies in ``0..max_feature_idx``; the
   children form one tree rooted at node 0 (every node and leaf reached
   exactly once, no cycle); categorical splits point into ``cat_boundaries``,
   which rise from 0 to the length of ``cat_threshold``; linear trees
   (``is_linear=1``) are refused;
4. the trees are a whole number of iterations, followed by ``end of trees``;
   then the ``feature_importances:``, ``parameters:`` ... ``end of
   parameters`` and ``parser:`` ... ``end of parser`` sections, and last the
   ``pandas_categorical:`` line (JSON: null or a list of lists) that the
   Python package writes and reads back. A file cut short anywhere fails one
   of these.

Messages quote at most a short, escaped piece of the file (:func:`token`).
No heavy import: this module is pure Python.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

from core.errors import InputError

MAX_TREES = 1_000_000
MAX_LEAVES = 131_072  # LightGBM's own upper bound on num_leaves
MAX_FEATURES = 1_000_000
MAX_CLASSES = 10_000
VERSIONS = (b"v3", b"v4")
OBJECTIVES = frozenset(
    {
        "regression",
        "regression_l1",
        "quantile",
        "huber",
        "fair",
        "poisson",
        "binary",
        "lambdarank",
        "rank_xendcg",
        "multiclass",
        "multiclassova",
        "cross_entropy",
        "cross_entropy_lambda",
        "mape",
        "gamma",
        "tweedie",
        "custom",
    }
)
SAVE_HINT = "save it with booster.save_model('model.txt')"
LINEAR_HINT = "govreg does not accept linear trees (train with linear_tree=False)"
_PICKLE_MAGIC = b"\x80"  # every binary pickle protocol (2 to 5) starts with PROTO 0x80

HEADER_KEYS = frozenset(
    {
        b"version",
        b"num_class",
        b"num_tree_per_iteration",
        b"label_index",
        b"max_feature_idx",
        b"objective",
        b"average_output",
        b"feature_names",
        b"monotone_constraints",
        b"feature_infos",
        b"tree_sizes",
    }
)
REQUIRED_HEADER = (
    b"version",
    b"num_class",
    b"num_tree_per_iteration",
    b"label_index",
    b"max_feature_idx",
    b"feature_names",
    b"feature_infos",
    b"tree_sizes",
)
# Keys whose value LightGBM takes whole even when it holds another "=".
_EQUALS_ALLOWED = (b"feature_names", b"monotone_constraints")

INTERNAL_ARRAYS = (
    b"split_feature",
    b"split_gain",
    b"threshold",
    b"decision_type",
    b"left_child",
    b"right_child",
    b"internal_value",
    b"internal_weight",
    b"internal_count",
)
LEAF_ARRAYS = (b"leaf_value", b"leaf_weight", b"leaf_count")
TREE_KEYS = (
    b"num_leaves",
    b"num_cat",
    *INTERNAL_ARRAYS,
    *LEAF_ARRAYS,
    b"is_linear",
    b"shrinkage",
)
CATEGORICAL_KEYS = (b"cat_boundaries", b"cat_threshold")
LINEAR_KEYS = (b"leaf_const", b"num_features", b"leaf_features", b"leaf_coeff")
_INT_ARRAYS = frozenset(
    {
        b"split_feature",
        b"decision_type",
        b"left_child",
        b"right_child",
        b"internal_count",
        b"leaf_count",
        b"cat_boundaries",
        b"cat_threshold",
    }
)

_INT = re.compile(rb"-?[0-9]{1,19}")
_FLOAT = rb"-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|inf|nan)"
_FLOATS = re.compile(rb"(?:" + _FLOAT + rb")(?: " + _FLOAT + rb")*")
_FLOAT_ONE = re.compile(_FLOAT)
_INTS = re.compile(rb"-?[0-9]{1,19}(?: -?[0-9]{1,19})*")
_KEY_LIMIT = 40
_KEY = re.compile(rb"[a-z_]{1,%d}" % _KEY_LIMIT)
_INT32 = (-(2**31), 2**31 - 1)
_CATEGORICAL_MASK = 1  # decision_type bit 0: a categorical split
_MAX_DECISION_TYPE = 15  # bits 0-3: categorical, default left, missing type (2 bits)


@dataclass(frozen=True)
class ModelText:
    """What the text says, once it is known to be well formed."""

    features: list[str]
    num_trees: int
    num_class: int
    num_tree_per_iteration: int
    objective: str | None


def token(raw: bytes | str, limit: int = 24) -> str:
    """A short, escaped, quoted piece of the input for a message (never raw bytes)."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    short = text[:limit]
    shown = short.encode("unicode_escape").decode("ascii").replace("'", "\\'")
    return f"'{shown}{'...' if len(text) > limit else ''}'"


class _Refused(Exception):
    """One structural fault; turned into an InputError naming the subject."""


def check_model_text(data: bytes, *, subject: str) -> ModelText:
    """Refuse ``data`` unless it is a well-formed LightGBM text model; say what it holds.

    ``subject`` names the file in messages (``"artifact model.txt"``,
    ``"the model"``). Every refusal is an :class:`InputError` of one line.
    """
    if not data:
        raise InputError(f"{subject} is empty")
    if data.startswith(_PICKLE_MAGIC) or data[:2] == b"PK":
        raise InputError(
            f"{subject} is a pickle or zip archive; govreg accepts only LightGBM "
            "native text models (booster.save_model('model.txt'))"
        )
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{subject} is not text; {SAVE_HINT}") from exc
    if not data.startswith((b"tree\n", b"tree\r\n")):  # the second refused below, by name
        raise InputError(
            f"{subject} is not a LightGBM text model (it must start with 'tree'); {SAVE_HINT}"
        )
    try:
        return _Reader(data).read()
    except _Refused as exc:
        raise InputError(f"{subject} is not a valid LightGBM text model: {exc}") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    # -- lines -----------------------------------------------------------------------
    def line_at(self, pos: int) -> tuple[bytes, int]:
        """The line starting at ``pos`` (without its newline) and where the next begins."""
        end = self.data.find(b"\n", pos)
        if end < 0:
            return self.data[pos:], len(self.data)
        return self.data[pos:end], end + 1

    def line_number(self, pos: int) -> int:
        return self.data.count(b"\n", 0, pos) + 1

    def header_line(self, pos: int) -> str:
        return f"header line {self.line_number(pos)}"

    # -- the whole file ----------------------------------------------------------------
    def read(self) -> ModelText:
        data = self.data
        nul = data.find(b"\x00")
        if nul >= 0:
            raise _Refused(f"it holds a NUL byte at byte {nul}")
        cr = data.find(b"\r")
        if cr >= 0:
            raise _Refused(
                f"it has a carriage return at line {self.line_number(cr)} (Windows line "
                f"endings shift LightGBM's tree offsets); {SAVE_HINT}"
            )
        header, trees_at = self.header()
        facts = self.facts(header)
        sizes = self.tree_sizes(header[b"tree_sizes"])
        if trees_at < 0:
            raise _Refused(
                f"it has no trees: no Tree=0 block follows the header (tree_sizes lists "
                f"{len(sizes)})"
            )
        if not sizes:
            raise _Refused("tree_sizes is empty but a Tree=0 block follows the header")
        if len(sizes) % facts.num_tree_per_iteration:
            raise _Refused(
                f"tree_sizes lists {len(sizes)} trees, not a multiple of "
                f"num_tree_per_iteration={facts.num_tree_per_iteration}"
            )
        pos = trees_at
        for index, size in enumerate(sizes):
            remaining = len(data) - pos
            if size > remaining:
                raise _Refused(
                    f"tree_sizes says Tree={index} is {size} bytes but only {remaining} "
                    "bytes follow (is the file cut short?)"
                )
            self.tree(index, pos, pos + size, max_feature_idx=len(facts.features) - 1)
            pos += size
        if not data.startswith(b"end of trees\n", pos):
            line, _ = self.line_at(pos)
            found = "the end of the file" if pos >= len(data) else token(line)
            raise _Refused(
                f"'end of trees' should follow the {len(sizes)} trees tree_sizes lists "
                f"(line {self.line_number(pos)}), found {found}"
            )
        self.trailer(pos + len(b"end of trees\n"))
        return ModelText(
            features=facts.features,
            num_trees=len(sizes),
            num_class=facts.num_class,
            num_tree_per_iteration=facts.num_tree_per_iteration,
            objective=facts.objective,
        )

    # -- header --------------------------------------------------------------------------
    def header(self) -> tuple[dict[bytes, bytes], int]:
        """The header's key/values and where the first ``Tree=`` line starts (-1: none)."""
        data = self.data
        values: dict[bytes, bytes] = {}
        pos = len(b"tree\n")
        while pos < len(data):
            if data.startswith(b"Tree=", pos):
                return values, pos
            if data.startswith(b"end of trees\n", pos):
                return values, -1
            line_end = data.find(b"\n", pos)
            if line_end < 0:
                line_end = len(data)
            if line_end == pos:
                pos += 1
                continue
            # Keys are short: a line with no "=" near its start is refused unread.
            equals = data.find(b"=", pos, min(line_end, pos + _KEY_LIMIT + 1))
            if equals < 0 and data[pos:line_end] == b"average_output":
                key, value = b"average_output", b""
            elif equals < 0 or not _KEY.fullmatch(data[pos:equals]):
                raise _Refused(
                    f"{self.header_line(pos)} is not key=value: "
                    f"{token(data[pos : min(line_end, pos + _KEY_LIMIT)])}"
                )
            else:
                key, value = data[pos:equals], data[equals + 1 : line_end]
            if key not in HEADER_KEYS:
                raise _Refused(f"{self.header_line(pos)} has an unknown key {token(key)}")
            if key in values:
                raise _Refused(f"{self.header_line(pos)} repeats the key {key.decode()}")
            if b"=" in value and key not in _EQUALS_ALLOWED:
                raise _Refused(f"{self.header_line(pos)} ({key.decode()}) holds a second '='")
            values[key] = value
            pos = line_end + 1
        return values, -1

    def facts(self, header: dict[bytes, bytes]) -> ModelText:
        for key in REQUIRED_HEADER:
            if key not in header:
                raise _Refused(f"the header has no {key.decode()}= line")
        if header[b"version"] not in VERSIONS:
            raise _Refused(
                f"version={token(header[b'version'])} is not a version govreg reads (v3, v4)"
            )
        num_class = self.header_int(header, b"num_class", 1, MAX_CLASSES)
        per_iteration = self.header_int(header, b"num_tree_per_iteration", 1, MAX_CLASSES)
        self.header_int(header, b"label_index", 0, _INT32[1])
        max_feature_idx = self.header_int(header, b"max_feature_idx", 0, MAX_FEATURES - 1)
        expected = max_feature_idx + 1
        names = self.header_list(header, b"feature_names", expected)
        self.header_list(header, b"feature_infos", expected)
        if b"monotone_constraints" in header:
            for value in self.header_list(header, b"monotone_constraints", expected):
                if value not in (b"-1", b"0", b"1"):
                    raise _Refused(f"monotone_constraints holds {token(value)}, not -1, 0 or 1")
        objective: str | None = None
        if b"objective" in header:
            raw = header[b"objective"]
            name = raw.split(b" ", 1)[0]
            if name.decode("utf-8", "replace") not in OBJECTIVES:
                raise _Refused(f"objective={token(raw)} is not a LightGBM objective")
            objective = raw.decode("utf-8")
        features = [n.decode("utf-8") for n in names]
        return ModelText(
            features=features,
            num_trees=0,
            num_class=num_class,
            num_tree_per_iteration=per_iteration,
            objective=objective,
        )

    @staticmethod
    def header_int(header: dict[bytes, bytes], key: bytes, low: int, high: int) -> int:
        raw = header[key]
        if not _INT.fullmatch(raw):
            raise _Refused(f"{key.decode()}={token(raw)} is not an integer")
        value = int(raw)
        if not low <= value <= high:
            raise _Refused(f"{key.decode()}={value} is outside {low}..{high}")
        return value

    @staticmethod
    def header_list(header: dict[bytes, bytes], key: bytes, expected: int) -> list[bytes]:
        raw = header[key]
        count = raw.count(b" ") + 1 if raw else 0
        if count != expected:
            raise _Refused(
                f"{key.decode()} has {count} entries, max_feature_idx={expected - 1} "
                f"says {expected}"
            )
        values = raw.split(b" ")
        if b"" in values:
            raise _Refused(f"{key.decode()} has an empty entry (two spaces in a row)")
        return values

    @staticmethod
    def tree_sizes(raw: bytes) -> list[int]:
        if not raw:
            return []
        count = raw.count(b" ") + 1
        if count > MAX_TREES:
            raise _Refused(f"tree_sizes lists {count} trees, over the limit of {MAX_TREES}")
        sizes = raw.split(b" ")
        for index, size in enumerate(sizes):
            if not size.isdigit() or len(size) > 19:
                raise _Refused(f"tree_sizes entry {index} is {token(size)}, not a byte count")
        return [int(s) for s in sizes]

    # -- one tree ----------------------------------------------------------------------
    def tree(self, index: int, start: int, end: int, *, max_feature_idx: int) -> None:
        where = f"Tree={index}"
        title = b"Tree=%d\n" % index
        if not self.data.startswith(title, start) or start + len(title) > end:
            line, _ = self.line_at(start)
            if line.startswith(b"Tree="):
                raise _Refused(
                    f"line {self.line_number(start)} is {token(line)} where tree_sizes puts {where}"
                )
            raise _Refused(
                f"tree_sizes does not match the tree blocks: line {self.line_number(start)} "
                f"should start {where}, found {token(line)}"
            )
        pos = start + len(title)
        values: dict[bytes, bytes] = {}
        while True:
            # LightGBM reads a tree's lines up to its first blank line: that line
            # must lie inside the block, or the reader runs into the next tree.
            line_end = self.data.find(b"\n", pos, end)
            if line_end < 0:
                raise _Refused(
                    f"{where} has no blank line before the end tree_sizes gives it "
                    f"(line {self.line_number(pos)}); is the file cut short?"
                )
            line = self.data[pos:line_end]
            if not line:
                break
            key, sep, value = line.partition(b"=")
            if not sep or not _KEY.fullmatch(key):
                raise _Refused(
                    f"{where} line {self.line_number(pos)} is not key=value: {token(line)}"
                )
            if key in values:
                raise _Refused(f"{where} repeats the key {key.decode()}")
            if key not in TREE_KEYS and key not in CATEGORICAL_KEYS:
                if key in LINEAR_KEYS:
                    raise _Refused(f"{where} is a linear tree; {LINEAR_HINT}")
                raise _Refused(f"{where} has an unknown key {token(key)}")
            values[key] = value
            pos = line_end + 1
        tail = self.data[pos:end]
        if tail.strip(b"\n"):
            raise _Refused(
                f"{where} runs on past its blank line (line {self.line_number(pos)}); "
                "tree_sizes does not match the tree blocks"
            )
        _Tree(where, values, max_feature_idx).check()

    # -- after the trees -----------------------------------------------------------------
    def trailer(self, pos: int) -> None:
        data = self.data
        if not data.endswith(b"\n"):
            raise _Refused(
                f"its last line ({self.line_number(len(data))}) has no newline "
                "(is the file cut short?)"
            )
        section: bytes | None = None
        while pos < len(data):
            line, after = self.line_at(pos)
            if section == b"parameters:":
                if line == b"end of parameters":
                    section = None
                elif line.startswith(b"[linear_tree: ") and line[14:15] not in (b"", b"0"):
                    raise _Refused(f"its parameters say linear_tree; {LINEAR_HINT}")
            elif section == b"parser:":
                if line == b"end of parser":
                    section = None
            elif line in (b"parameters:", b"parser:"):
                section = line
            elif line.startswith(b"pandas_categorical:"):
                if after != len(data):
                    raise _Refused(
                        f"pandas_categorical (line {self.line_number(pos)}) must be the last line"
                    )
                self.pandas_categorical(line[len(b"pandas_categorical:") :])
                return
            elif line in (b"feature_importances:", b"feature importances:"):
                section = b"importances"
            elif line and section != b"importances":
                raise _Refused(
                    f"line {self.line_number(pos)} after 'end of trees' is {token(line)}, "
                    "not a section LightGBM writes"
                )
            elif line and b"=" not in line:
                raise _Refused(
                    f"feature_importances line {self.line_number(pos)} is not name=count: "
                    f"{token(line)}"
                )
            elif not line and section == b"importances":
                section = None
            pos = after
        if section in (b"parameters:", b"parser:"):
            name = section.decode().rstrip(":")
            raise _Refused(f"the {name} section has no 'end of {name}' (is the file cut short?)")
        raise _Refused(
            "it ends without the pandas_categorical line the Python package writes last "
            f"(is the file cut short?); {SAVE_HINT}"
        )

    @staticmethod
    def pandas_categorical(raw: bytes) -> None:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            raise _Refused(f"pandas_categorical is not JSON: {token(raw)}") from None
        scalars = (str, int, float, bool, type(None))
        if value is not None and not (
            isinstance(value, list)
            and all(
                isinstance(column, list) and all(isinstance(c, scalars) for c in column)
                for column in value
            )
        ):
            raise _Refused("pandas_categorical is neither null nor a list of category lists")


class _Tree:
    """The checks of one ``Tree=i`` block's key/values (see the module docstring, step 3)."""

    def __init__(self, where: str, values: dict[bytes, bytes], max_feature_idx: int) -> None:
        self.where = where
        self.values = values
        self.max_feature_idx = max_feature_idx

    def int_value(self, key: bytes, low: int, high: int) -> int:
        raw = self.values[key]
        if not _INT.fullmatch(raw):
            raise _Refused(f"{self.where} has {key.decode()}={token(raw)}, not an integer")
        value = int(raw)
        if not low <= value <= high:
            raise _Refused(f"{self.where} has {key.decode()}={value}, outside {low}..{high}")
        return value

    def array(self, key: bytes, expected: int | tuple[int, ...], *, why: str) -> list[bytes]:
        raw = self.values[key]
        count = raw.count(b" ") + 1 if raw else 0
        allowed = (expected,) if isinstance(expected, int) else expected
        if count not in allowed:
            raise _Refused(f"{self.where} has {count} {key.decode()} entries, {why}")
        if not count:
            return []
        integer = key in _INT_ARRAYS
        if not (_INTS if integer else _FLOATS).fullmatch(raw):
            one = _INT if integer else _FLOAT_ONE
            bad = next((t for t in raw.split(b" ") if not one.fullmatch(t)), raw)
            kind = "an integer" if integer else "a number"
            raise _Refused(f"{self.where} {key.decode()} holds {token(bad)}, not {kind}")
        return raw.split(b" ")

    def ints(
        self, key: bytes, expected: int | tuple[int, ...], low: int, high: int, *, why: str
    ) -> list[int]:
        values = [int(v) for v in self.array(key, expected, why=why)]
        for position, value in enumerate(values):
            if not low <= value <= high:
                raise _Refused(
                    f"{self.where} {key.decode()} entry {position} is {value}, "
                    f"outside {low}..{high}"
                )
        return values

    def check(self) -> None:
        where = self.where
        for key in TREE_KEYS:
            if key not in self.values:
                raise _Refused(f"{where} has no {key.decode()}= line")
        leaves = self.int_value(b"num_leaves", 1, MAX_LEAVES)
        is_linear = self.int_value(b"is_linear", 0, 1)
        if is_linear:
            raise _Refused(f"{where} is a linear tree (is_linear=1); {LINEAR_HINT}")
        if not _FLOAT_ONE.fullmatch(self.values[b"shrinkage"]):
            raise _Refused(f"{where} has shrinkage={token(self.values[b'shrinkage'])}")
        internal = leaves - 1
        num_cat = self.int_value(b"num_cat", 0, internal)
        says = f"num_leaves={leaves} says {internal}"
        for key in (
            b"split_gain",
            b"threshold",
            b"internal_value",
            b"internal_weight",
        ):
            self.array(key, internal, why=says)
        self.ints(b"internal_count", internal, *_INT32, why=says)
        self.array(b"leaf_value", leaves, why=f"num_leaves says {leaves}")
        # A one-leaf tree is written with empty leaf weights (LightGBM reads only its value).
        leaf_counts = (leaves,) if leaves > 1 else (0, 1)
        leaf_why = f"num_leaves says {leaves}"
        self.array(b"leaf_weight", leaf_counts, why=leaf_why)
        self.ints(b"leaf_count", leaf_counts, *_INT32, why=leaf_why)
        self.ints(b"split_feature", internal, 0, self.max_feature_idx, why=says)
        decision = self.ints(b"decision_type", internal, 0, _MAX_DECISION_TYPE, why=says)
        left = self.ints(b"left_child", internal, -leaves, internal - 1, why=says)
        right = self.ints(b"right_child", internal, -leaves, internal - 1, why=says)
        self.structure(left, right, leaves)
        self.categorical(num_cat, decision)

    def structure(self, left: list[int], right: list[int], leaves: int) -> None:
        """The children form one tree rooted at node 0: each node and leaf reached once."""
        internal = leaves - 1
        node_seen = bytearray(internal)
        leaf_seen = bytearray(leaves)
        for node in range(internal):
            for side, child in (("left_child", left[node]), ("right_child", right[node])):
                if child == 0:
                    raise _Refused(
                        f"{self.where} {side} of node {node} points back to the root, node 0"
                    )
                if child > 0:
                    if node_seen[child]:
                        raise _Refused(
                            f"{self.where} {side} of node {node} points to node {child}, "
                            "which already has a parent"
                        )
                    node_seen[child] = 1
                else:
                    leaf = ~child
                    if leaf_seen[leaf]:
                        raise _Refused(
                            f"{self.where} {side} of node {node} points to leaf {leaf}, "
                            "which already has a parent"
                        )
                    leaf_seen[leaf] = 1
        reached = 0
        stack = [0] if internal else []
        while stack:
            node = stack.pop()
            reached += 1
            stack.extend(c for c in (left[node], right[node]) if c >= 0)
        if reached != internal:
            raise _Refused(
                f"{self.where} has {internal - reached} nodes not reachable from node 0 "
                "(the children form a cycle)"
            )

    def categorical(self, num_cat: int, decision: list[int]) -> None:
        where = self.where
        present = [k for k in CATEGORICAL_KEYS if k in self.values]
        if not num_cat:
            if present:
                raise _Refused(f"{where} has {present[0].decode()} but num_cat=0")
            if any(d & _CATEGORICAL_MASK for d in decision):
                raise _Refused(f"{where} has a categorical split but num_cat=0")
            return
        for key in CATEGORICAL_KEYS:
            if key not in self.values:
                raise _Refused(f"{where} has num_cat={num_cat} but no {key.decode()}= line")
        says = f"num_cat={num_cat} says {num_cat + 1}"
        bounds = self.ints(b"cat_boundaries", num_cat + 1, 0, _INT32[1], why=says)
        if bounds[0] != 0 or any(b > a for b, a in itertools.pairwise(bounds)):
            raise _Refused(f"{where} cat_boundaries do not rise from 0")
        self.ints(
            b"cat_threshold",
            bounds[-1],
            0,
            2**32 - 1,
            why=f"cat_boundaries end at {bounds[-1]}",
        )
        thresholds = self.array(b"threshold", len(decision), why="")
        for node, kind in enumerate(decision):
            if kind & _CATEGORICAL_MASK:
                value = float(thresholds[node])
                if not value.is_integer() or not 0 <= value < num_cat:
                    raise _Refused(
                        f"{where} node {node} is a categorical split with threshold "
                        f"{token(thresholds[node])}, not a category set 0..{num_cat - 1}"
                    )
