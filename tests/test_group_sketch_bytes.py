"""`GroupSketch` as a public summary: merges that keep labels of different types apart, blobs
that read back exactly or are refused by name, and `solve()` against `fit_groups`."""

from __future__ import annotations

import json
import math
import struct
import warnings
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logitshift
from logitshift import InputError
from logitshift._summary.group_sketch import GroupSketch

Y = np.array([0, 1, 1, 0, 1, 0])
F = np.array([0.1, -0.4, 0.3, 1.2, -2.0, 0.6])


def _sketch_of(keys, y=Y, offset=F, weight=None) -> GroupSketch:
    return GroupSketch().update(y, keys, offset, weight)


def _objects(*values) -> np.ndarray:
    """A 1-D object array of exactly these values (tuples stay elements)."""
    return np.array(list(values) + [None], dtype=object)[:-1]


# -- blobs re-encoded field by field, with a valid checksum ------------------------------------

_ARRAYS = (("counts", "<i8"), ("n_rows", "<i8"), ("sums", "<f8"), ("ranges", "<f8"),
           ("centres", "<f8"), ("tables", "<f8"))


def _fields(blob: bytes) -> tuple[int, dict, dict]:
    """The version, header and arrays of a blob, as `to_bytes` lays them out."""
    version, length = struct.unpack("<II", blob[4:12])
    header = json.loads(blob[12:12 + length])
    n, cells, order = header["n_groups"], header["n_cells"], header["order"]
    sizes = {"counts": n, "n_rows": n, "sums": 2 * n, "ranges": 2 * n, "centres": cells,
             "tables": cells * 2 * order}
    at, arrays = 12 + length, {}
    for name, dtype in _ARRAYS:
        arrays[name] = np.frombuffer(blob, dtype=dtype, count=sizes[name], offset=at).copy()
        at += 8 * sizes[name]
    return version, header, arrays


def _blob(version: int, header: dict, arrays: dict, text: bytes | None = None) -> bytes:
    """A blob of these fields and a CRC-32 that holds: only the field checks can refuse it."""
    if text is None:
        text = json.dumps(header, separators=(",", ":")).encode()
    body = (b"LSGS" + struct.pack("<II", version, len(text)) + text
            + b"".join(np.asarray(arrays[name], dtype=dtype).tobytes()
                       for name, dtype in _ARRAYS))
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.fixture(scope="module")
def valid() -> GroupSketch:
    """Three groups: 'a' over several cells (weighted), 'b' in one cell, 'c' with infinite
    offsets only (no cells, no offset range)."""
    rng = np.random.default_rng(4)
    n = 60
    group = np.array(["a"] * 40 + ["b"] * 12 + ["c"] * 8, dtype=object)
    offset = np.concatenate([rng.normal(0, 1, 40), np.full(12, 0.51), np.full(8, np.inf)])
    offset[-4:] = -np.inf
    y = (rng.random(n) < 0.5).astype(float)
    y[-8:] = [1, 1, 1, 1, 0, 0, 0, 0]
    weight = rng.exponential(1.0, n)
    return GroupSketch().update(y, group, offset, weight)


def test_the_re_encoding_is_the_blob(valid):
    blob = valid.to_bytes()
    assert _blob(*_fields(blob)) == blob
    again = GroupSketch.from_bytes(_blob(*_fields(blob)))
    assert again.to_bytes() == blob


def _set(path: str, value):
    """A change to one field: ``"header.width"``, ``"sums[1, 0]"`` (group, column), ..."""
    def change(header: dict, arrays: dict) -> None:
        if path.startswith("header."):
            header[path[7:]] = value
            return
        name, index = path.split("[")
        index = tuple(int(i) for i in index.rstrip("]").split(","))
        shapes = {"sums": (-1, 2), "ranges": (-1, 2), "tables": (-1, 2, header["order"])}
        view = arrays[name].reshape(shapes.get(name, (-1,)))
        view[index] = value
    return change


def _swap_range(header, arrays):
    ranges = arrays["ranges"].reshape(-1, 2)
    ranges[0] = ranges[0, ::-1].copy()


def _negative_cell_weight(header, arrays):
    tables = arrays["tables"].reshape(-1, 2, header["order"])
    tables[0, 0, 0] = -1.0


def _moment_too_large(header, arrays):
    tables = arrays["tables"].reshape(-1, 2, header["order"])
    tables[0, 1, 1] = tables[0, 1, 0] * header["width"]  # a whole width from the centre


def _cells_added_to_the_wrong_group(header, arrays):
    arrays["counts"][0] -= 1
    arrays["counts"][1] += 1


def _off_grid(header, arrays):
    arrays["centres"][0] += header["width"] / 4


def _cell_lost(header, arrays):  # one group's counts shrink, and n_cells with them
    arrays["counts"][0] -= 1
    header["n_cells"] -= 1
    order = header["order"]
    arrays["centres"] = arrays["centres"][1:]
    arrays["tables"] = arrays["tables"][2 * order:]


def _more_weight_in_cells(header, arrays):
    arrays["sums"].reshape(-1, 2)[0, 0] *= 0.5  # Σ w below the weights of its own cells


def _fewer_negatives_than_cells(header, arrays):
    sums = arrays["sums"].reshape(-1, 2)
    sums[0, 1] = sums[0, 0] * 0.999  # Σ w y near Σ w: its negatives' cells outweigh Σ w (1-y)


CRAFTED = {
    # item 5 of the issue
    "inverted offset range": (_swap_range, "offset range"),
    "negative weight sum": (_set("sums[0,0]", -1.0), "weight_sum = -1.0"),
    "negative positives": (_set("sums[1,1]", -0.5), "positives = -0.5"),
    "positives above the weight sum": (_set("sums[1,1]", 1e6), "positives greater"),
    "nan weight sum": (_set("sums[0,0]", math.nan), "weight_sum = nan"),
    "nan positives": (_set("sums[0,1]", math.nan), "positives = nan"),
    "-inf weight sum": (_set("sums[2,0]", -math.inf), "weight_sum = -inf"),
    "inf weight sum": (_set("sums[2,0]", math.inf), "weight_sum = inf"),
    "inf positives": (_set("sums[0,1]", math.inf), "positives = inf"),
    "nan offset min": (_set("ranges[0,0]", math.nan), "offset range"),
    "inf offset max": (_set("ranges[0,1]", math.inf), "offset range"),
    "range far from the cells": (_set("ranges[1,0]", -40.0), "offset range"),
    "range on a group with no cells": (_set("ranges[2,0]", 0.0), "offset range but no cells"),
    "nan centre": (_set("centres[0]", math.nan), "not finite"),
    "inf centre": (_set("centres[0]", math.inf), "not finite"),
    "nan in a table": (_set("tables[0,1,3]", math.nan), "not finite"),
    "inf in a table": (_set("tables[0,0,0]", math.inf), "not finite"),
    "centre off the grid": (_off_grid, "not on the grid"),
    "negative cell weight": (_negative_cell_weight, "negative weight"),
    "moment beyond the width": (_moment_too_large, "moments exceed"),
    "cells moved to another group": (_cells_added_to_the_wrong_group, "offset range|order"),
    "a cell lost": (_cell_lost, "offset range"),
    "negative count": (_set("counts[2]", -1), "cell counts"),
    "counts that do not add up": (_set("counts[0]", 2**62), "cell counts"),
    "no rows": (_set("n_rows[1]", 0), "no rows"),
    "negative rows": (_set("n_rows[1]", -5), "no rows"),
    "fewer rows than cells": (_set("n_rows[0]", 1), "more cells than rows"),
    "rows beyond int64 together": (_set("n_rows[1]", 2**63 - 2), "2\\*\\*63"),
    "weight sum below its cells": (_more_weight_in_cells, "less than the weights"),
    "negatives below their cells": (_fewer_negatives_than_cells, "less than the weights"),
    # the header
    "width not a power of two": (_set("header.width", 0.1), "power of two"),
    "width negative": (_set("header.width", -0.0625), "power of two"),
    "width an integer": (_set("header.width", 1), "width = 1 is not a number"),
    "width nan": (_set("header.width", math.nan), "power of two"),
    "width a string": (_set("header.width", "0.0625"), "not a number"),
    "order 1": (_set("header.order", 1), "order = 1"),
    "order 33": (_set("header.order", 33), "order = 33"),
    "order a float": (_set("header.order", 8.0), "order = 8.0"),
    "order a bool": (_set("header.order", True), "order = True"),
    "n_groups negative": (_set("header.n_groups", -1), "n_groups = -1"),
    "n_groups beside its keys": (_set("header.n_groups", 2), "3 keys, where n_groups = 2"),
    "n_cells a string": (_set("header.n_cells", "3"), "n_cells = '3'"),
    "n_cells huge": (_set("header.n_cells", 10**30), "n_cells"),
    "key_type unknown": (_set("header.key_type", "tuple"), "key_type = 'tuple'"),
    "key_type null": (_set("header.key_type", None), "key_type = None"),
    "uint keys in version 2": (_set("header.key_type", "uint"), "key_type = 'uint'"),
    "keys a dict": (_set("header.keys", {"a": 1}), "keys is a dict"),
    "keys a string": (_set("header.keys", "abc"), "keys is a str"),
    "keys unsorted": (_set("header.keys", ["b", "a", "c"]), "not sorted and distinct"),
    "keys repeated": (_set("header.keys", ["a", "a", "c"]), "not sorted and distinct"),
}


def _item_9_key(value):
    def change(header, arrays):
        header["keys"] = ["a", value, "c"]
    return change


# Item 9 of the issue: JSON values that are not group labels (a dict raised TypeError).
for _name, _value in {"dict": {"k": 1}, "list": [1, 2], "null": None, "nested": [[]],
                      "nan": math.nan}.items():
    CRAFTED[f"a key that is a {_name}"] = (_item_9_key(_value), r"keys\[1\]")


@pytest.mark.parametrize("change, message", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_blobs_with_a_valid_checksum_are_refused(valid, change, message):
    version, header, arrays = _fields(valid.to_bytes())
    change(header, arrays)
    with pytest.raises(InputError, match=message) as caught:
        GroupSketch.from_bytes(_blob(version, header, arrays))
    assert caught.value.argument == "blob"
    assert "corrupted" in str(caught.value)


def test_the_inverted_range_of_the_issue_is_refused_not_solved():
    # The issue's case: group 1's offsets [-0.4, 1.2] swapped made its shift -5 where the
    # truth is -0.065; the blob is now refused, and the honest one gives the truth.
    rng = np.random.default_rng(0)
    group = np.repeat([0, 1], 50)
    offset = rng.normal(0, 1, 100)
    y = (rng.random(100) < 0.5).astype(int)
    sketch = GroupSketch().update(y, group, offset)
    version, header, arrays = _fields(sketch.to_bytes())
    _swap_range(header, arrays)
    with pytest.raises(InputError, match="offset range"):
        GroupSketch.from_bytes(_blob(version, header, arrays))
    honest = GroupSketch.from_bytes(sketch.to_bytes()).solve()
    for key in (0, 1):
        rows = group == key
        assert honest.shift[key] == pytest.approx(
            logitshift.fit(y[rows], offset[rows]).shift, abs=1e-12)


KEY_TYPES = {
    "int": ("int", _set("header.keys", [1, 2.5, 3])),
    "int beyond int64": ("int", _set("header.keys", [1, 2, 2**63])),
    "int a bool": ("int", _set("header.keys", [1, True, 3])),
    "uint negative": ("uint", _set("header.keys", [-1, 2, 3])),
    "uint beyond uint64": ("uint", _set("header.keys", [1, 2, 2**64])),
    "bool an integer": ("bool", _set("header.keys", [0, 1, True])),
    "float an integer": ("float", _set("header.keys", [0.5, 1, 2.5])),
    "float nan": ("float", _set("header.keys", [0.5, math.nan, 2.5])),
    "float a string": ("float", _set("header.keys", [0.5, "1.0", 2.5])),
    "bytes not hexadecimal": ("bytes", _set("header.keys", ["00", "zz", "ff"])),
    "bytes upper case": ("bytes", _set("header.keys", ["00", "0A", "ff"])),
    "bytes odd length": ("bytes", _set("header.keys", ["00", "0a0", "ff"])),
}


@pytest.mark.parametrize("key_type, change", KEY_TYPES.values(), ids=KEY_TYPES.keys())
def test_keys_not_of_their_type_are_refused(valid, key_type, change):
    _, header, arrays = _fields(valid.to_bytes())
    header["key_type"] = key_type
    change(header, arrays)
    with pytest.raises(InputError, match=r"keys\[\d\] = .* is not a group label"):
        GroupSketch.from_bytes(_blob(3, header, arrays))


@pytest.mark.parametrize("text", [
    b'{"width":0.0625, "order":8}',  # other spacing
    b"[1,2,3]",
    b'"LSGS"',
    b"\xff\xfe",
    b"{" * 5000,  # deep enough to exhaust the parser's recursion
    b"[" * 100_000,
    b"",
])
def test_headers_that_are_not_as_written_are_refused(valid, text):
    version, header, arrays = _fields(valid.to_bytes())
    with pytest.raises(InputError, match="group sketch is corrupted: its header"):
        GroupSketch.from_bytes(_blob(version, header, arrays, text=text))


@pytest.mark.parametrize("edit", ["extra field", "missing field", "reordered", "spaces",
                                  "repeated field"])
def test_headers_with_other_fields_or_spelling_are_refused(valid, edit):
    version, header, arrays = _fields(valid.to_bytes())
    text = json.dumps(header, separators=(",", ":"))
    if edit == "extra field":
        text = text[:-1] + ',"scale":1}'
    elif edit == "missing field":
        text = json.dumps({k: v for k, v in header.items() if k != "order"},
                          separators=(",", ":"))
    elif edit == "reordered":
        text = json.dumps(dict(reversed(list(header.items()))), separators=(",", ":"))
    elif edit == "spaces":
        text = json.dumps(header)
    else:
        text = '{"width":1.0,' + text[1:]
    with pytest.raises(InputError, match="its header"):
        GroupSketch.from_bytes(_blob(version, header, arrays, text=text.encode()))


EDGE_FILLS = {
    "subnormal weights": (np.array([0.5, 1, 0, 1]), np.array([5e-324, 0.0, 7 * 5e-324, 1.0]),
                          np.array([0.0, 1.0, 2.0, 3.0])),
    "weights near the largest float": (np.array([0, 1, 1, 0]), np.array([4e307] * 4),
                                       np.array([0.0, 1.0, 2.0, 3.0])),
    "offsets far beyond the grid": (np.array([0, 1, 1, 0]), None,
                                    np.array([-1e300, 1e300, 2.0**60, -2.0**60])),
    "infinite offsets only": (np.array([1, 0, 1, 0]), None,
                              np.array([np.inf, -np.inf, np.inf, -np.inf])),
    "zero weights only": (np.array([0, 1, 1, 0]), np.zeros(4), np.array([0.0, 1.0, 2.0, 3.0])),
    "soft labels": (np.array([0.25, 0.5, 1.0, 0.0]), np.array([1.0, 2.0, 0.5, 3.0]),
                    np.array([0.01, 0.02, 0.03, 7.5])),
}


@pytest.mark.parametrize("y, weight, offset", EDGE_FILLS.values(), ids=EDGE_FILLS.keys())
def test_every_sketch_a_fill_makes_reads_back(y, weight, offset):
    # The field checks refuse what no fill writes, and nothing a fill writes.
    group = np.array([1, 1, 2, 2])
    sketch = GroupSketch().update(y, group, offset, weight)
    blob = sketch.to_bytes()
    assert GroupSketch.from_bytes(blob).to_bytes() == blob
    merged = GroupSketch.from_bytes((sketch + sketch).to_bytes())
    np.testing.assert_array_equal(merged._n_rows, 2 * sketch._n_rows)


def test_weights_whose_sums_would_overflow_are_kept_in_units():
    # Sums past the largest double are kept in units of a power of two of the group's own
    # weights, through fills, merges and bytes: each group's shift is fit's on its rows.
    y, offset = np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 2.0, 3.0])
    group, huge = np.array([1, 1, 2, 2]), np.array([1.0, 1.0, 1e308, 1e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sketch = GroupSketch().update(y, group, offset, huge)
        near = GroupSketch().update(y, group, offset, np.full(4, 5e307))
        both = GroupSketch.from_bytes((near + near).to_bytes())
    for result, weights, rows in ((sketch.solve(), huge, 1), (both.solve(), np.full(4, 5e307), 2)):
        for key in (1, 2):
            mine = group == key
            expected = logitshift.fit(np.tile(y[mine], rows), np.tile(offset[mine], rows),
                                      np.tile(weights[mine], rows))
            assert result.fit_of(key).shift == pytest.approx(expected.shift, rel=1e-12)
    assert both.n_rows == 8


# -- blobs that are not group sketches at all -------------------------------------------------

def test_every_truncation_is_refused(valid):
    blob = valid.to_bytes()
    for end in list(range(0, 64)) + list(range(64, len(blob), 97)) + [len(blob) - 1]:
        with pytest.raises(InputError):
            GroupSketch.from_bytes(blob[:end])


@pytest.mark.parametrize("blob, message", [
    (b"", "not a logitshift group sketch"),
    (b"LSGS", "not a logitshift group sketch"),
    (b"LSSK" + bytes(40), "not a logitshift group sketch"),
    (b"lsgs" + bytes(40), "not a logitshift group sketch"),
    (bytes(100), "not a logitshift group sketch"),
], ids=["empty", "magic only", "a sketch's magic", "lower case", "zeros"])
def test_blobs_without_the_magic_are_refused(blob, message):
    with pytest.raises(InputError, match=message):
        GroupSketch.from_bytes(blob)


@pytest.mark.parametrize("version", [0, 1, 4, 99, 2**32 - 1])
def test_versions_this_does_not_read_are_refused_by_number(valid, version):
    _, header, arrays = _fields(valid.to_bytes())
    with pytest.raises(InputError, match=f"format version {version};") as caught:
        GroupSketch.from_bytes(_blob(version, header, arrays))
    assert caught.value.value == version


@pytest.mark.parametrize("blob", ["LSGS", None, [1, 2], 12, np.zeros(4)],
                         ids=["str", "None", "list", "int", "array"])
def test_blobs_that_are_not_bytes_are_refused(blob):
    with pytest.raises(InputError, match="blob must be bytes"):
        GroupSketch.from_bytes(blob)


def test_a_sketch_blob_is_not_a_group_sketch():
    blob = logitshift.Sketch().update([0, 1], [0.0, 1.0]).to_bytes()
    with pytest.raises(InputError, match="not a logitshift group sketch"):
        GroupSketch.from_bytes(blob)
    with pytest.raises(InputError, match="not a logitshift sketch"):
        logitshift.Sketch.from_bytes(_sketch_of(np.array([1, 1, 2, 2, 3, 3])).to_bytes())


def test_trailing_and_missing_bytes_are_refused_even_with_a_valid_checksum(valid):
    version, header, arrays = _fields(valid.to_bytes())
    blob = _blob(version, header, arrays)
    for body in (blob[:-4] + bytes(8), blob[:-12]):
        with pytest.raises(InputError, match="bytes, where its header says"):
            GroupSketch.from_bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_a_header_length_past_the_end_is_refused(valid):
    blob = valid.to_bytes()
    body = blob[:8] + struct.pack("<I", 2**31) + blob[12:-4]
    with pytest.raises(InputError, match="header's length"):
        GroupSketch.from_bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_bytearray_and_memoryview_read_as_bytes(valid):
    blob = valid.to_bytes()
    for form in (bytearray(blob), memoryview(blob)):
        assert GroupSketch.from_bytes(form).to_bytes() == blob


# -- item 7: every key type reads back exactly --------------------------------------------------

ROUND_TRIPS = {
    "int64 extremes": np.array([-2**63, 2**63 - 1, 0], dtype=np.int64),
    "uint64 top": np.array([2**64 - 1, 2**63, 0], dtype=np.uint64),
    "uint64 just past int64": np.array([2**63, 2**63 + 1, 2**63 + 2], dtype=np.uint64),
    "uint64 small": np.array([1, 2, 3], dtype=np.uint64),
    "int8": np.array([-128, 127, 0], dtype=np.int8),
    "python ints beyond int64": _objects(-2**70, 5, 2**70),
    "python ints past uint64": _objects(2**64, 2**64 + 1, 0),
    "python ints of uint64": _objects(2**64 - 1, 2**63, 7),
    "int past float's integers": np.array([2**53, 2**53 + 1, 2**53 + 2], dtype=np.int64),
    "str unicode": _objects("é", "😀", 'quote " and \\ back'),
    "str numpy": np.array(["b", "a", "ß"]),
    "str empty and controls": _objects("", "\t\n", "\u2028"),
    "bytes": _objects(b"\xff\x00", b"", b"a"),
    "bytes numpy": np.array([b"x", b"\x01", b"yz"]),
    "bool": np.array([True, False, True]),
    "float": np.array([-0.0, 1.5, 2.0**-1074]),
    "float infinities": np.array([-np.inf, np.inf, 1e308]),
    "float32": np.array([0.1, -2.5, 3.0], dtype=np.float32),
    "float 1 and 2 (as floats)": np.array([1.0, 2.0, 3.0]),
    "mixed int and str": _objects(1, "a", 2),
    "mixed str and float": _objects("a", 2.5, "b"),
}


@pytest.mark.parametrize("labels", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_every_key_type_reads_back_exactly(labels):
    group = np.repeat(labels, 2)
    sketch = _sketch_of(group)
    blob = sketch.to_bytes()
    again = GroupSketch.from_bytes(blob)
    assert again.keys.dtype == sketch.keys.dtype
    assert [(type(k), k) for k in again.keys.tolist()] == \
        [(type(k), k) for k in sketch.keys.tolist()]
    if sketch.keys.dtype.kind == "f":  # -0.0 keeps its sign
        np.testing.assert_array_equal(np.signbit(again.keys), np.signbit(sketch.keys))
    assert again.to_bytes() == blob
    assert sorted(map(repr, again.keys.tolist())) == sorted(
        {repr(_python(v)) for v in labels.tolist()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solved, direct = again.solve(), logitshift.fit_groups(Y, group, F)
        written = sketch.solve()
    # The blob solves as the sketch written, to the bit; fit_groups on the arrays keeps
    # these small groups as rows, whose exact sums differ from the cells' by rounding.
    np.testing.assert_array_equal(solved.shift, written.shift)
    np.testing.assert_allclose(solved.shift, direct.shift, rtol=1e-13, atol=1e-15)


def _python(value):
    """A label as the sketch keeps it: numpy scalars as Python numbers, float32 widened."""
    if isinstance(value, (np.floating, float)) and not isinstance(value, bool):
        return float(value)
    return value


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-2**63, 2**64 - 1), min_size=1, max_size=6, unique=True))
def test_any_integers_of_int64_or_uint64_read_back_exactly(values):
    dtype = np.uint64 if min(values) >= 0 and max(values) > 2**63 - 1 else \
        (np.int64 if max(values) <= 2**63 - 1 else object)
    labels = np.array(values, dtype=dtype) if dtype is not object else _objects(*values)
    n = len(values)
    sketch = GroupSketch().update(np.arange(n) % 2, labels, np.linspace(-1, 1, n))
    again = GroupSketch.from_bytes(sketch.to_bytes())
    assert again.keys.tolist() == sorted(values)
    assert again.keys.dtype == sketch.keys.dtype
    assert again.keys.dtype == (np.dtype(object) if dtype is object else np.dtype(dtype))


def test_uint64_labels_past_int64_fill_after_small_ones():
    # The kernels compiled for small uint64 labels (an int64 base) raised OverflowError on a
    # later chunk whose least label is 2**63 or more.
    y = np.array([0, 1, 1, 0])
    small = GroupSketch().update(y, np.array([1, 2, 1, 2], dtype=np.uint64))
    big = GroupSketch().update(y, np.array([2**64 - 2, 2**64 - 1, 2**64 - 1, 2**64 - 2],
                                           dtype=np.uint64))
    assert big.keys.tolist() == [2**64 - 2, 2**64 - 1]
    assert (small + big).keys.tolist() == [1, 2, 2**64 - 2, 2**64 - 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = logitshift.fit_groups(y, np.array([2**63, 2**63, 2**63 + 5, 2**63 + 5],
                                                   dtype=np.uint64))
    assert result.groups.tolist() == [2**63, 2**63 + 5]
    assert result.shift.tolist() == [0.0, 0.0]


def test_labels_that_cannot_be_written_are_refused_by_name():
    for labels in (_objects((1, 2), (3,), (1, 2)), _objects(b"a", "a", b"a"),
                   np.array(["2020-01-01", "2021-01-01", "2020-01-01"], dtype="M8[D]")):
        sketch = GroupSketch()
        sketch._keys = np.unique(labels) if labels.dtype != object else \
            _objects(*dict.fromkeys(labels.tolist()))
        sketch._n_rows = np.ones(sketch._keys.size, dtype=np.int64)
        sketch._sums = np.zeros((sketch._keys.size, 2))
        sketch._range = np.tile([math.inf, -math.inf], (sketch._keys.size, 1))
        sketch._start = np.zeros(sketch._keys.size + 1, dtype=np.int64)
        with pytest.raises(InputError, match="cannot be written"):
            sketch.to_bytes()


# -- item 3: labels of different types never merge ----------------------------------------------

DIFFERENT = {
    "bool beside int": (np.array([True, False, True]), np.array([1, 2, 0]), "bool", "int"),
    "int beside float": (np.array([1, 2, 3]), np.array([1.0, 2.5, 3.0]), "int", "float"),
    "uint64 beside float": (np.array([2**63, 1, 2], dtype=np.uint64),
                            np.array([1.0, 2.0, 4.0]), "int", "float"),
    "str beside bytes": (_objects("a", "b", "c"), _objects(b"a", b"b", b"c"), "str", "bytes"),
    "int beside str": (np.array([1, 2, 3]), _objects("1", "2", "3"), "int", "str"),
    "bool beside float": (np.array([True, False, True]), np.array([1.0, 0.0, 1.0]),
                          "bool", "float"),
    "float beside str": (np.array([0.5, 1.5, 2.5]), _objects("a", "b", "c"), "float", "str"),
    "mixed beside int": (_objects(1, "a", 2), np.array([1, 2, 3]), "int and str", "int"),
    "python ints beside bool": (_objects(2**70, 1, 0), np.array([True, False, True]),
                                "int", "bool"),
}


@pytest.mark.parametrize("mine, theirs, mine_type, their_type", DIFFERENT.values(),
                         ids=DIFFERENT.keys())
def test_labels_of_different_types_are_refused_naming_both(mine, theirs, mine_type,
                                                           their_type):
    left, right = _sketch_of(np.repeat(mine, 2)), _sketch_of(np.repeat(theirs, 2))
    for a, b, first, second in ((left, right, mine_type, their_type),
                                (right, left, their_type, mine_type)):
        with pytest.raises(InputError, match="labels of one type") as caught:
            a + b
        message = str(caught.value)
        assert f"labels are {second} into one whose labels are {first}" in message
        assert caught.value.argument == "other"
    with pytest.raises(InputError, match="labels of one type"):
        sum([left, right])
    streamed = _sketch_of(np.repeat(mine, 2))
    with pytest.raises(InputError, match="labels of one type"):
        streamed.update(Y, np.repeat(theirs, 2), F)
    assert streamed.keys.tolist() == left.keys.tolist()  # unchanged by the refused chunk


SAME = {
    "int64 and uint64 past int64": (np.array([-1, 5, 7]), np.array([2**63 + 1, 2**63 + 2, 7],
                                                                   dtype=np.uint64)),
    "int8 and uint64": (np.array([-1, 5, 7], dtype=np.int8),
                        np.array([2**64 - 1, 5, 2**63], dtype=np.uint64)),
    "int32 and python ints": (np.array([3, 4, 5], dtype=np.int32), _objects(2**80, 3, -2**80)),
    "int and a dictionary of ints": (np.array([3, 4, 5]), pa.array([3, 9, 5]).dictionary_encode()),
    "float32 and float64": (np.array([0.5, 1.5, 2.5], dtype=np.float32),
                            np.array([0.5, 1.0, 2.5])),
    "str and numpy str": (_objects("a", "b", "c"), np.array(["c", "d", "a"])),
}


def _twice(labels):
    """Each label on two rows, a pyarrow dictionary column staying one."""
    if isinstance(labels, pa.Array):
        return pa.array([v for v in labels.to_pylist() for _ in range(2)]).dictionary_encode()
    return np.repeat(labels, 2)


def _listed(labels) -> list:
    return [_python(v) for v in (labels.to_pylist() if isinstance(labels, pa.Array)
                                 else labels.tolist())]


@pytest.mark.parametrize("mine, theirs", SAME.values(), ids=SAME.keys())
def test_labels_of_one_type_merge_exactly(mine, theirs):
    mine, theirs = _twice(mine), _twice(theirs)
    merged = _sketch_of(mine) + _sketch_of(theirs)
    keys = _listed(mine) + _listed(theirs)
    assert merged.keys.tolist() == sorted(set(keys))
    assert merged._n_rows.tolist() == [keys.count(k) for k in merged.keys.tolist()]
    y, offset = np.concatenate([Y, Y]), np.concatenate([F, F])
    for key in merged.keys.tolist():  # each group's rows, and none of another's
        rows = [i for i, k in enumerate(keys) if k == key]
        alone = logitshift.Sketch().update(y[rows], offset[rows])
        assert merged.sketch_of(key).solve().shift == pytest.approx(alone.solve().shift,
                                                                    abs=1e-13)


def test_parquet_files_of_int_and_bool_groups_are_refused(tmp_path):
    y, f = [0, 1, 1, 0, 1, 0], [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]
    pq.write_table(pa.table({"y": y, "g": [1, 1, 0, 0, 2, 2], "f": f}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"y": y, "g": [True, True, False, False, True, False], "f": f}),
                   tmp_path / "b.parquet")
    with pytest.raises(InputError, match="b.parquet") as caught:
        logitshift.fit_groups_file([tmp_path / "a.parquet", tmp_path / "b.parquet"], "y", "g",
                                   "f")
    # The files' reader names both files and both kinds; a merge of the two sketches alone
    # is refused too (test_labels_of_different_types_are_refused_naming_both).
    message = str(caught.value)
    assert "its group labels are booleans" in message and "a.parquet' integers" in message
    with pytest.raises(InputError, match="group labels are integers, those of .*b.parquet'"
                                         " booleans"):
        logitshift.fit_groups_file([tmp_path / "b.parquet", tmp_path / "a.parquet"], "y", "g",
                                   "f")
    pq.write_table(pa.table({"y": y, "g": ["1", "1", "0", "0", "2", "2"], "f": f}),
                   tmp_path / "c.parquet")
    with pytest.raises(InputError, match="labels are str into one whose labels are int"):
        logitshift.fit_groups_file([tmp_path / "a.parquet", tmp_path / "c.parquet"], "y", "g",
                                   "f")


def test_parquet_files_of_int64_and_uint64_groups_merge_exactly(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 40)
    f = rng.normal(0, 1, 40)
    small = np.repeat([-3, 2**62, 5, 9], 5).astype(np.int64)
    big = np.repeat(np.array([2**63 + 1, 2**63 + 2, 5, 2**64 - 1], dtype=np.uint64), 5)
    pq.write_table(pa.table({"y": y[:20], "g": small, "f": f[:20]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"y": y[20:], "g": big, "f": f[20:]}), tmp_path / "b.parquet")
    result = logitshift.fit_groups_file(tmp_path, "y", "g", "f")
    labels = small.tolist() + big.tolist()
    assert result.groups.tolist() == [-3, 5, 9, 2**62, 2**63 + 1, 2**63 + 2, 2**64 - 1]
    for key, shift in zip(result.groups.tolist(), result.shift):
        rows = np.array([k == key for k in labels])
        assert shift == pytest.approx(logitshift.fit(y[rows], f[rows]).shift, abs=1e-12)


def test_mixed_labels_merge_by_type_and_value():
    # Labels that do not sort together (as fit_groups keeps them, in order of appearance)
    # merge with labels of the same mix; 1 never joins True, nor 1.0.
    mine, theirs = _objects(1, "a", 2), _objects("b", 2, "a")
    merged = _sketch_of(np.repeat(mine, 2)) + _sketch_of(np.repeat(theirs, 2))
    assert merged.keys.tolist() == [1, "a", 2, "b"]
    assert merged._n_rows.tolist() == [2, 4, 4, 2]
    assert sum([_sketch_of(np.repeat(mine, 2))]).keys.tolist() == [1, "a", 2]
    again = GroupSketch.from_bytes(merged.to_bytes())
    assert [(type(k), k) for k in again.keys.tolist()] == \
        [(int, 1), (str, "a"), (int, 2), (str, "b")]
    with pytest.raises(InputError, match="labels are bool and str into one whose labels "
                                         "are int and str"):
        merged + _sketch_of(np.repeat(_objects(True, "a", False), 2))


# -- merges of things that are not like sketches ------------------------------------------------

def test_merging_anything_but_a_group_sketch_is_refused():
    sketch = _sketch_of(np.array([1, 1, 2, 2, 3, 3]))
    plain = logitshift.Sketch().update(Y, F)
    for other in (plain, 1, None, "sketch", 0.0, [sketch]):
        with pytest.raises(InputError, match="cannot merge"):
            sketch.merge(other)
        with pytest.raises(InputError, match="cannot merge"):
            sketch + other
    for other in (plain, 1, 0.0, True, "sketch"):
        with pytest.raises(InputError, match="cannot merge a group sketch into"):
            other + sketch


@pytest.mark.parametrize("other", [GroupSketch(width=2**-3), GroupSketch(order=4),
                                   GroupSketch(width=2**-3, order=4)],
                         ids=["width", "order", "both"])
def test_merging_another_grid_is_refused(other):
    sketch = _sketch_of(np.array([1, 1, 2, 2, 3, 3]))
    other.update(Y, np.array([1, 1, 2, 2, 3, 3]), F)
    with pytest.raises(InputError, match="cannot merge a group sketch of width"):
        sketch + other
    with pytest.raises(InputError, match="cannot merge a group sketch of width"):
        other + sketch


def test_empty_sketches_merge_with_anything_and_read_back():
    empty = GroupSketch()
    sketch = _sketch_of(np.array([True, True, False, False, True, True]))
    for merged in (empty + sketch, sketch + empty, sum([empty, sketch, GroupSketch()])):
        assert merged.keys.tolist() == [False, True]
        assert merged.to_bytes() == sketch.to_bytes()
    nothing = empty + GroupSketch()
    assert nothing.n_groups == 0 and nothing.n_rows == 0
    again = GroupSketch.from_bytes(nothing.to_bytes())
    assert again.n_groups == 0 and again.n_cells == 0
    assert sum([GroupSketch()]).n_groups == 0
    with pytest.raises(InputError, match="no rows yet"):
        again.solve()
    assert GroupSketch().update(Y[:0], np.array([], dtype=np.int64), F[:0]).n_groups == 0


def test_sum_of_chunks_is_the_sketch_of_all_rows():
    rng = np.random.default_rng(9)
    group = rng.integers(0, 30, 3000)
    offset = rng.normal(0, 2, 3000)
    y = rng.random(3000) < 0.4
    whole = GroupSketch().update(y, group, offset)
    parts = [GroupSketch().update(y[s], group[s], offset[s])
             for s in np.array_split(np.arange(3000), 7)]
    total = sum(parts)
    assert total.keys.tolist() == whole.keys.tolist()
    np.testing.assert_array_equal(total._n_rows, whole._n_rows)
    np.testing.assert_allclose(total._tables, whole._tables, rtol=1e-12, atol=1e-300)
    assert all(part.n_rows == 3000 // 7 + (i < 3000 % 7) for i, part in enumerate(parts))


# -- item 13: GroupSketch is public, and solves ----------------------------------------------------

def test_group_sketch_is_exported():
    import logitshift._summary.group_sketch as module

    assert "GroupSketch" in logitshift.__all__
    assert logitshift.GroupSketch is module.GroupSketch


def _random_intercept_rows(n=6000, groups=40, seed=1):
    rng = np.random.default_rng(seed)
    code = rng.integers(0, groups, n)
    effect = rng.normal(0.0, 0.7, groups)
    offset = rng.normal(0.0, 1.3, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(offset - 0.3 + effect[code])))).astype(np.int8)
    weight = rng.exponential(1.0, n)
    return y, np.array([f"g{k:02d}" for k in code], dtype=object), offset, weight


@pytest.mark.parametrize("options", [{}, {"shrinkage": "random"},
                                     {"shrinkage": "random", "nagq": 9},
                                     {"pseudo_count": 0.5, "tol": 1e-10, "max_iter": 50}],
                         ids=["per group", "laplace", "nagq 9", "pseudo count"])
def test_chunks_merged_through_bytes_solve_as_fit_groups(options):
    y, group, offset, weight = _random_intercept_rows()
    chunks = np.array_split(np.arange(y.size), 5)
    streamed = GroupSketch()
    for rows in chunks[:2]:
        streamed.update(y[rows], group[rows], offset[rows], weight[rows],
                        first_row=int(rows[0]))
    others = [GroupSketch().update(y[rows], group[rows], offset[rows], weight[rows])
              for rows in chunks[2:]]
    merged = streamed + others[0] + sum(others[1:])
    moved = GroupSketch.from_bytes(merged.to_bytes())
    solved = moved.solve(**options)
    direct = logitshift.fit_groups(y, group, offset, weight, **options)
    assert solved.groups.tolist() == direct.groups.tolist()
    np.testing.assert_allclose(solved.shift, direct.shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(solved.se, direct.se, rtol=1e-9)
    if options.get("shrinkage") == "random":
        assert solved.mean == pytest.approx(direct.mean, abs=1e-9)
        assert solved.tau == pytest.approx(direct.tau, abs=1e-9)
        assert solved.nagq == direct.nagq
        np.testing.assert_allclose(solved.shrunk, direct.shrunk, rtol=0, atol=1e-9)
    for key in ("g00", "g17"):  # each group against fit on its own rows
        rows = group == key
        fit = logitshift.fit(y[rows], offset[rows], weight[rows],
                             pseudo_count=options.get("pseudo_count", 0.0))
        assert solved.fit_of(key).shift == pytest.approx(fit.shift, abs=1e-12)


@pytest.mark.parametrize("options, message", [
    ({"shrinkage": "fixed"}, "shrinkage"),
    ({"nagq": 0}, "nagq"),
    ({"nagq": 9}, "nagq applies to shrinkage='random' only"),
    ({"shrinkage": "random", "nagq": 10**6}, "nagq"),
    ({"pseudo_count": -1.0}, "pseudo_count"),
    ({"max_iter": 0}, "max_iter"),
    ({"tol": -1.0}, "tol"),
])
def test_solve_checks_its_options_as_fit_groups_does(options, message):
    sketch = _sketch_of(np.array([1, 1, 2, 2, 3, 3]))
    with pytest.raises(InputError, match=message):
        sketch.solve(**options)
    with pytest.raises(InputError, match=message):
        logitshift.fit_groups(Y, np.array([1, 1, 2, 2, 3, 3]), F, **options)


def test_solve_refuses_rows_that_weigh_nothing_and_warns_as_fit_groups():
    sketch = GroupSketch().update(Y, np.array([1, 1, 2, 2, 3, 3]), F, np.zeros(6))
    with pytest.raises(InputError, match="weight is zero"):
        sketch.solve()
    one_class = GroupSketch().update(np.array([0, 0, 1, 0]), np.array([1, 1, 2, 2]),
                                     np.zeros(4))
    with pytest.warns(RuntimeWarning, match="labels of one class") as caught:
        result = one_class.solve()
    assert caught[0].filename == __file__
    assert result.shift[0] == -math.inf
