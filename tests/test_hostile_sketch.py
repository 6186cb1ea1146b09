"""Hostile inputs to the sketch, its bytes, the intervals, the per-row losses and the option
checks: each gets an InputError naming the argument and the value, or a right answer checked
against a reference."""

from __future__ import annotations

import json
import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import logitshift
from logitshift import InputError, Sketch
from logitshift._result import normal_quantile
from logitshift._shift import fit_curve
from logitshift._solve import ArrayCurve

DATA = Path(__file__).parent / "data"
Y = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 0], dtype=np.float64)
OFFSET = np.linspace(-1.0, 1.5, 10)
WIDE_Y = (np.random.default_rng(1).random(150_000) < 0.5).astype(np.int8)
WIDE = np.random.default_rng(2).uniform(-1e12, 1e12, 150_000)


def _sketch() -> Sketch:
    return Sketch().update(Y, OFFSET)


def _blob() -> bytes:
    return _sketch().to_bytes()


def _flip(blob: bytes, position: int) -> bytes:
    return blob[:position] + bytes([blob[position] ^ 0x10]) + blob[position + 1:]


def _fit() -> logitshift.ShiftFit:
    return logitshift.fit(Y, OFFSET)


def _dict_with(**changes):
    return {**_sketch().to_dict(), **changes}


def _without(name):
    data = _sketch().to_dict()
    del data[name]
    return data


def _v1() -> bytes:
    return (DATA / "sketch_v1.bin").read_bytes()


def _lightgbm_dataset_without_label():
    lgb = pytest.importorskip("lightgbm")
    return lgb.Dataset(np.arange(30.0).reshape(10, 3), init_score=OFFSET,
                       params={"verbose": -1}).construct()


def _shift_dataset(dataset):
    from logitshift.boosting import shift_dataset

    return shift_dataset(dataset)


REFUSED = [
    # -- offsets and weights that are not numbers ------------------------------------------
    ("offset-string", lambda: logitshift.fit(Y, "1.0"), "offset must be a number, got '1.0'",
     "offset"),
    ("offset-bytes", lambda: logitshift.fit(Y, b"1"), "offset must be a number, got b'1'",
     "offset"),
    ("offset-true", lambda: logitshift.fit(Y, True), "offset must be a number, got True",
     "offset"),
    ("offset-numpy-bool", lambda: logitshift.fit(Y, np.bool_(False)),
     "offset must be a number, got", "offset"),
    ("offset-bool-array", lambda: logitshift.fit(Y, Y.astype(bool)),
     "offset is boolean: offsets are raw scores", "offset"),
    ("weight-string", lambda: logitshift.fit(Y, OFFSET, "1.0"),
     "weight must be an array of one weight per row, got '1.0'", "weight"),
    ("weight-true", lambda: logitshift.fit(Y, OFFSET, True),
     "weight must be an array of one weight per row, got True", "weight"),
    ("weight-scalar", lambda: logitshift.fit(Y, OFFSET, 2.0),
     "weight = 2.0 must be an array with one weight per row", "weight"),
    ("offset-one-row", lambda: logitshift.fit(Y, [0.5]), "offset has 1 row, y has 10",
     "offset"),
    ("weight-one-row", lambda: logitshift.fit(Y, None, [2.0]), "weight has 1 row, y has 10",
     "weight"),
    ("sketch-update-offset-string", lambda: Sketch().update(Y, "0.5"),
     "offset must be a number, got '0.5'", "offset"),
    # -- the cell budget ----------------------------------------------------------------------
    ("fit-sketch-wide", lambda: logitshift.fit(WIDE_Y, WIDE, method="sketch"),
     r"offset spans ±1e\+12 logits.*max_cells = 65,536", "offset"),
    ("update-wide", lambda: Sketch().update(WIDE_Y, WIDE),
     r"offset spans ±1e\+12 logits.*Is it really a raw score", "offset"),
    ("merge-past-budget", lambda: Sketch(max_cells=100).update(WIDE_Y[:80], WIDE[:80])
     + Sketch(max_cells=100).update(WIDE_Y[80:160], WIDE[80:160]), "max_cells = 100",
     "offset"),
    ("max-cells-zero", lambda: Sketch(max_cells=0), "max_cells = 0 must be a positive integer",
     "max_cells"),
    ("max-cells-float", lambda: Sketch(max_cells=1e6), "max_cells = 1000000.0", "max_cells"),
    ("max-cells-bool", lambda: Sketch(max_cells=True), "max_cells = True", "max_cells"),
    ("width-bool", lambda: Sketch(width=True), "width = True must be a positive power of two",
     "width"),
    # -- levels -------------------------------------------------------------------------------
    ("level-one", lambda: _fit().confint(1.0), "level = 1.0 must be between 0 and 1", "level"),
    ("level-zero", lambda: _fit().confint(0.0), "level = 0.0 must be between 0 and 1",
     "level"),
    ("level-true", lambda: _fit().confint(True), "level = True", "level"),
    ("level-string", lambda: _fit().confint("0.95"), "level = '0.95'", "level"),
    ("level-nan", lambda: _fit().confint(math.nan, method="wald"), "level = nan", "level"),
    ("level-oe-one", lambda: _fit().observed_expected_at(1.0), "level = 1.0", "level"),
    ("level-to-dict", lambda: _fit().to_dict(level=-0.5), "level = -0.5", "level"),
    # -- per-row losses -----------------------------------------------------------------------
    ("loss-weight-length", lambda: logitshift.loss(Y, OFFSET, weight=np.ones(3)),
     r"y has shape \(10,\), raw has shape \(10,\), weight has shape \(3,\)", "weight"),
    ("loss-raw-length", lambda: logitshift.loss(Y, OFFSET[:4]), r"raw has shape \(4,\)",
     "raw"),
    ("loss-raw-nan", lambda: logitshift.loss(Y, np.where(Y > 2, 0, np.r_[OFFSET[:6], np.nan,
                                                                          OFFSET[7:]])),
     r"raw\[6\] is nan", "raw"),
    ("gradient-raw-nan", lambda: logitshift.gradient([0, 1], [np.nan, 1.0]),
     r"raw\[0\] is nan", "raw"),
    ("sigmoid-nan", lambda: logitshift.sigmoid([0.0, math.nan]), r"raw\[1\] is nan", "raw"),
    # -- the sketch's evaluators --------------------------------------------------------------
    ("sketch-loss-nan", lambda: _sketch().loss(math.nan), "shift is nan", "shift"),
    ("sketch-gradient-nan", lambda: _sketch().gradient(math.nan), "shift is nan", "shift"),
    ("sketch-hessian-nan", lambda: _sketch().hessian(float("nan")), "shift is nan", "shift"),
    ("sketch-cells-nan", lambda: _sketch().cells(math.nan), "shift is nan", "shift"),
    ("sketch-loss-string", lambda: _sketch().loss("abc"), "shift must be a number, got 'abc'",
     "shift"),
    # -- bytes --------------------------------------------------------------------------------
    ("bytes-none", lambda: Sketch.from_bytes(None), "blob must be bytes, got NoneType", "blob"),
    ("bytes-str", lambda: Sketch.from_bytes("LSSK"), "blob must be bytes, got str", "blob"),
    ("bytes-empty", lambda: Sketch.from_bytes(b""), "not a logitshift sketch", "blob"),
    ("bytes-json", lambda: Sketch.from_bytes(json.dumps(_sketch().to_dict()).encode()),
     "not a logitshift sketch", "blob"),
    ("bytes-truncated", lambda: Sketch.from_bytes(_blob()[:-100]), "checksum mismatch", "blob"),
    ("bytes-padded", lambda: Sketch.from_bytes(_blob() + b"\0" * 8), "checksum mismatch",
     "blob"),
    ("bytes-flip-header", lambda: Sketch.from_bytes(_flip(_blob(), 30)), "checksum mismatch",
     "blob"),
    ("bytes-flip-table", lambda: Sketch.from_bytes(_flip(_blob(), len(_blob()) - 50)),
     "checksum mismatch", "blob"),
    ("bytes-flip-checksum", lambda: Sketch.from_bytes(_flip(_blob(), len(_blob()) - 1)),
     "checksum mismatch", "blob"),
    ("bytes-newer", lambda: Sketch.from_bytes(_blob()[:4] + struct.pack("<I", 9)
                                              + _blob()[8:]),
     "written by format version 9; this reads up to 2", "blob"),
    ("bytes-doubled", lambda: Sketch.from_bytes(_blob() * 2), "checksum mismatch", "blob"),
    ("bytes-v1-truncated", lambda: Sketch.from_bytes(_v1()[:-136]), "corrupted", "blob"),
    ("bytes-v1-padded", lambda: Sketch.from_bytes(_v1() + b"\0" * 3), "corrupted", "blob"),
    ("bytes-v1-flipped-header", lambda: Sketch.from_bytes(_flip(_v1(), 20)), "corrupted|not a",
     "blob"),
    # -- dicts --------------------------------------------------------------------------------
    ("dict-list", lambda: Sketch.from_dict([1, 2]), "not a logitshift sketch", "data"),
    ("dict-changed-rows", lambda: Sketch.from_dict(_dict_with(n_rows=11)), "checksum mismatch",
     "data"),
    ("dict-no-tables", lambda: Sketch.from_dict(_without("tables")), "no field 'tables'",
     "data"),
    ("dict-no-checksum", lambda: Sketch.from_dict(_without("checksum")),
     "no field 'checksum'", "data"),
    ("dict-checksum-string", lambda: Sketch.from_dict(
        _dict_with(checksum=str(_sketch().to_dict()["checksum"]))), "checksum mismatch",
     "data"),
    ("dict-newer", lambda: Sketch.from_dict(_dict_with(version=3)), "format version 3", "data"),
    # -- boosting -----------------------------------------------------------------------------
    ("lightgbm-no-label", lambda: _shift_dataset(_lightgbm_dataset_without_label()),
     "every label of dataset is 0: LightGBM gives a Dataset constructed without a label",
     "dataset"),
]


@pytest.mark.parametrize("call, message, argument", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_hostile_input_is_refused_naming_the_argument(call, message, argument):
    with pytest.raises(InputError, match=message) as caught:
        call()
    assert caught.value.argument == argument


# -- hostile, but answerable: a right answer checked against a reference ---------------------------

def test_wide_offsets_in_memory_give_the_exact_answer():
    result = logitshift.fit(WIDE_Y, WIDE)
    reference = fit_curve(ArrayCurve(WIDE_Y, WIDE, None), method="newton")
    assert result.method == "newton" and result.converged
    assert result.shift == pytest.approx(reference.shift, rel=1e-13)


@pytest.mark.parametrize("level", [1e-300, 1e-16, 0.9999999999999999],
                         ids=["1e-300", "1e-16", "1-2^-53"])
def test_extreme_levels_give_ordered_intervals_around_the_shift(level):
    import mpmath as mp

    result = _fit()
    with mp.workdps(40):
        z = float(mp.sqrt(2) * mp.erfinv(mp.mpf(level)))
    assert normal_quantile(level) == pytest.approx(z, rel=4e-16)
    for method in ("profile", "wald"):
        low, high = result.confint(level, method)
        assert math.isfinite(low) and low <= result.shift <= high
    oe = result.observed_expected_at(level)
    assert 0 < oe.low <= oe.ratio <= oe.high < math.inf


def test_sum_of_sketches_equals_the_sketch_of_all_rows():
    parts = [Sketch().update(Y[i::3], OFFSET[i::3]) for i in range(3)]
    assert sum(parts).solve().shift == pytest.approx(_fit().shift, rel=1e-14)


def test_a_version_1_blob_solves_as_it_did():
    stored = json.loads((DATA / "sketch_v1.json").read_text())
    assert Sketch.from_bytes(_v1()).solve().shift == stored["shift"]


def test_an_empty_sketch_round_trips():
    empty = Sketch(max_cells=10)
    copy = Sketch.from_bytes(empty.to_bytes())
    assert copy.n_rows == 0 and copy.max_cells == 10
    assert Sketch.from_dict(json.loads(json.dumps(empty.to_dict()))).to_bytes() == \
        empty.to_bytes()
    assert struct.unpack("<I", empty.to_bytes()[-4:])[0] == zlib.crc32(empty.to_bytes()[:-4])


def test_all_zero_labels_in_memory_still_warn_and_give_minus_infinity():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = logitshift.fit(np.zeros(10), OFFSET)
    assert result.shift == -math.inf and caught
