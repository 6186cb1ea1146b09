"""The numba kernels and the sketch, against the numpy reference."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

import logitshift
from logitshift import Sketch
from logitshift._summary.memory import ExactCurve
from logitshift._summary.passes import Prepared
from logitshift._summary.sketch import fill_reference, scan_arrays
from logitshift._estimators.solve import ArrayCurve

LABEL_DTYPES = [np.bool_, np.int8, np.int64, np.float32, np.float64]
OFFSET_DTYPES = [np.float32, np.float64]


def make_data(n, rng, label_dtype=np.float64, offset_dtype=np.float64, soft=False,
              spread=2.0, weighted=False):
    offsets = rng.normal(0, spread, n).astype(offset_dtype)
    if soft:
        labels = rng.random(n).astype(label_dtype)
    else:
        labels = (rng.random(n) < 1 / (1 + np.exp(-(offsets.astype(float) - 1)))).astype(
            label_dtype)
    weights = rng.exponential(1.0, n) * (rng.random(n) > 0.2) if weighted else None
    return labels, offsets, weights


def assert_terms_close(actual, expected, rel=1e-13):
    """Every sum within ``rel`` of its own size, the gradient within ``rel`` of the Hessian
    and of its label parts (the scale its rounding is measured on)."""
    for name in ("negative", "positive", "negative_curvature", "positive_curvature", "loss"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert a == pytest.approx(e, rel=rel, abs=1e-300), name
    scale = max(expected.hessian, expected.negative, expected.positive)
    assert abs(actual.gradient - expected.gradient) <= rel * scale


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("offset_dtype", OFFSET_DTYPES, ids=lambda t: np.dtype(t).name)
def test_kernel_fill_matches_the_numpy_fill(label_dtype, offset_dtype):
    rng = np.random.default_rng(1)
    labels, offsets, _ = make_data(300_000, rng, label_dtype, offset_dtype)
    _, cells, tables = scan_arrays(Prepared.of(labels, offsets, None), 2.0 ** -4, 8)
    ref_cells, ref_tables = fill_reference(labels, offsets, None, 2.0 ** -4, 8)
    np.testing.assert_array_equal(cells, ref_cells)
    # Moments of order j are sums of d^j (|d| <= 1/32): compare on the scale of their row.
    scale = np.abs(ref_tables).max(axis=2, keepdims=True)
    assert np.all(np.abs(tables - ref_tables) <= 1e-12 * scale)


@pytest.mark.parametrize("order", [2, 3, 7, 8, 12, 16])
def test_kernel_fill_matches_the_numpy_fill_at_every_order(order):
    rng = np.random.default_rng(12)
    labels, offsets, _ = make_data(100_000, rng, np.int8)
    labels[::7] = 1  # some mixed cells too
    _, cells, tables = scan_arrays(Prepared.of(labels, offsets, None), 2.0 ** -3, order)
    ref_cells, ref_tables = fill_reference(labels, offsets, None, 2.0 ** -3, order)
    np.testing.assert_array_equal(cells, ref_cells)
    scale = np.abs(ref_tables).max(axis=2, keepdims=True)
    assert np.all(np.abs(tables - ref_tables) <= 1e-12 * scale)


def test_kernel_fill_with_weights_and_soft_labels():
    rng = np.random.default_rng(2)
    labels, offsets, weights = make_data(200_000, rng, soft=True, weighted=True)
    _, cells, tables = scan_arrays(Prepared.of(labels, offsets, weights), 2.0 ** -3, 6)
    ref_cells, ref_tables = fill_reference(labels, offsets, weights, 2.0 ** -3, 6)
    np.testing.assert_array_equal(cells, ref_cells)
    scale = np.abs(ref_tables).max(axis=2, keepdims=True)
    assert np.all(np.abs(tables - ref_tables) <= 1e-12 * scale)


def test_offsets_wider_than_the_dense_window_go_through_the_sparse_path():
    rng = np.random.default_rng(3)
    n = 200_000
    offsets = np.where(rng.random(n) < 0.5, rng.normal(0, 2, n), rng.uniform(-1e5, 1e5, n))
    labels = (rng.random(n) < 1 / (1 + np.exp(-np.clip(offsets, -50, 50)))).astype(np.int8)
    _, cells, tables = scan_arrays(Prepared.of(labels, offsets, None), 2.0 ** -4, 8)
    ref_cells, ref_tables = fill_reference(labels, offsets, None, 2.0 ** -4, 8)
    np.testing.assert_array_equal(cells, ref_cells)
    scale = np.abs(ref_tables).max(axis=2, keepdims=True)
    assert np.all(np.abs(tables - ref_tables) <= 1e-12 * scale)
    # And the fit still matches the exact solver (with a budget for these cells).
    exact = logitshift.fit(labels, offsets, method="newton")
    sketch = Sketch(max_cells=1 << 18).update(labels, offsets)
    assert sketch.solve().shift == pytest.approx(exact.shift, rel=1e-13)


def test_enormous_offsets_keep_their_own_cells():
    # Beyond 1.1e307 even the cell index overflows: such rows are their own cells.
    labels = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    offsets = np.array([-3e300, 2e250, 0.5, -0.25, 1.0, 4e15, 1.5e307, -1.7e308])
    sketch = Sketch().update(labels, offsets)
    ref_cells, ref_tables = fill_reference(labels, offsets, None, 2.0 ** -4, 8)
    assert sketch.n_cells == ref_cells.size == 8
    assert np.all(np.isfinite(ref_tables))
    exact = logitshift.fit(labels, offsets, method="newton")
    assert exact.converged
    assert sketch.solve().shift == pytest.approx(exact.shift, rel=1e-14)
    reference = logitshift._estimators.shift.fit_curve(ArrayCurve(labels, offsets, None), method="newton")
    assert reference.shift == pytest.approx(exact.shift, rel=1e-14)


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_exact_pass_matches_the_numpy_reference(label_dtype, weighted):
    rng = np.random.default_rng(4)
    labels, offsets, weights = make_data(150_000, rng, label_dtype, weighted=weighted,
                                         spread=20.0)
    exact = ExactCurve(Prepared.of(labels, offsets, weights))
    reference = ArrayCurve(np.asarray(labels), offsets, weights)
    for shift in (-40.0, -3.0, -0.5, 0.0, 1.25, 30.0):
        assert_terms_close(exact.evaluate(shift), reference.evaluate(shift))
    for field in ("n_rows", "weight_sum", "positives", "active_positives", "active_negatives",
                  "offset_min", "offset_max", "offset_mean"):
        assert getattr(exact.totals, field) == pytest.approx(
            getattr(reference.totals, field), rel=1e-13), field


@pytest.mark.parametrize("soft", [False, True], ids=["binary", "soft"])
@pytest.mark.parametrize("spread", [0.5, 2.0, 30.0])
def test_sketch_sums_match_the_exact_sums(soft, spread):
    rng = np.random.default_rng(5)
    labels, offsets, weights = make_data(100_000, rng, soft=soft, spread=spread,
                                         weighted=True)
    sketch = Sketch().update(labels, offsets, weights)
    reference = ArrayCurve(labels, offsets, weights)
    for shift in (-25.0, -2.0, -0.01, 0.0, 0.3, 4.0, 25.0):
        assert_terms_close(sketch.evaluate(shift), reference.evaluate(shift), rel=2e-14)
        t = reference.evaluate(shift)
        assert sketch.loss(shift) == pytest.approx(t.loss, rel=2e-14)
        assert sketch.hessian(shift) == pytest.approx(t.hessian, rel=2e-14)
        assert abs(sketch.gradient(shift) - t.gradient) <= 2e-14 * max(t.negative, t.positive)


@pytest.mark.parametrize("shift", [-math.inf, math.inf])
def test_sketch_sums_at_infinite_shifts(shift):
    labels = np.array([0.0, 1.0, 1.0, 0.0])
    offsets = np.array([0.1, -0.3, 2.0, 1.0])
    sketch_terms = Sketch().update(labels, offsets).evaluate(shift)
    reference = ArrayCurve(labels, offsets, None).evaluate(shift)
    assert sketch_terms == reference


@pytest.mark.parametrize("shift", [0.0, -2.0, 7.5, -60.0])
def test_cell_rates_match_per_cell_sums(shift):
    rng = np.random.default_rng(21)
    labels, offsets, weights = make_data(200_000, rng, soft=True, spread=3.0, weighted=True)
    sketch = Sketch().update(labels, offsets, weights)
    rates = sketch.cells(shift)
    # Rows of zero weight add nothing, not even a cell.
    kept = weights > 0
    labels, offsets, weights = labels[kept], offsets[kept], weights[kept]
    centres = (np.floor(offsets / sketch.width) + 0.5) * sketch.width
    np.testing.assert_array_equal(rates.centre, np.unique(centres))
    cell = np.searchsorted(rates.centre, centres)

    def per_cell(values):
        return np.bincount(cell, weights=values, minlength=rates.centre.size)

    weight = per_cell(weights)
    np.testing.assert_allclose(rates.weight, weight, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rates.observed, per_cell(weights * labels), rtol=1e-12,
                               atol=1e-12)
    expected = per_cell(weights * logitshift.sigmoid(offsets + shift))
    assert np.all(np.abs(rates.expected - expected) <= 1e-13 * np.maximum(weight, 1.0))
    # Summed over cells, expected minus observed is the gradient.
    assert math.isclose(np.sum(rates.expected - rates.observed), sketch.gradient(shift),
                        rel_tol=1e-9, abs_tol=1e-9 * sketch.hessian(shift))


def test_merged_sketches_equal_the_sketch_of_all_rows():
    rng = np.random.default_rng(6)
    labels, offsets, weights = make_data(250_000, rng, weighted=True)
    whole = Sketch().update(labels, offsets, weights)
    bounds = [0, 1, 70_000, 70_001, 190_000, 250_000]
    parts = [Sketch().update(labels[a:b], offsets[a:b], weights[a:b])
             for a, b in zip(bounds, bounds[1:])]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    streamed = Sketch()
    for a, b in zip(bounds, bounds[1:]):
        streamed.update(labels[a:b], offsets[a:b], weights[a:b])
    for other in (merged, streamed):
        assert other.n_rows == whole.n_rows and other.n_cells == whole.n_cells
        assert other.solve().shift == pytest.approx(whole.solve().shift, rel=1e-14)
        assert other.totals.weight_sum == pytest.approx(whole.totals.weight_sum, rel=1e-14)
    # Merging leaves both operands as they were.
    assert parts[0].n_rows == 1


def test_merge_refuses_a_different_grid():
    with pytest.raises(logitshift.InputError, match="cannot merge"):
        Sketch(order=8).merge(Sketch(order=6))


def test_sketch_round_trips_through_bytes_and_json():
    rng = np.random.default_rng(7)
    labels, offsets, weights = make_data(50_000, rng, weighted=True)
    sketch = Sketch().update(labels, offsets, weights)
    blob = sketch.to_bytes()
    assert len(blob) < 50_000
    for copy in (Sketch.from_bytes(blob), Sketch.from_dict(json.loads(json.dumps(
            sketch.to_dict())))):
        assert copy.to_bytes() == blob
        assert copy.solve().to_dict() == sketch.solve().to_dict()
    with pytest.raises(logitshift.InputError, match="not a logitshift sketch"):
        Sketch.from_bytes(b"junk" + blob[4:])


@pytest.mark.parametrize("width, order, message", [
    (0.1, 8, "power of two"), (0.0, 8, "power of two"), (-0.5, 8, "power of two"),
    (2.0 ** -4, 0, "positive integer"), (2.0 ** -4, 17, "between 2 and 16"), (2.0 ** -4, 1, "between 2 and 16"),
    (2.0 ** -4, 8.0, "positive integer"),
])
def test_sketch_options_are_checked(width, order, message):
    with pytest.raises(logitshift.InputError, match=message):
        Sketch(width, order)


def test_empty_sketch_cannot_be_solved():
    with pytest.raises(logitshift.InputError, match="no rows"):
        Sketch().solve()


def test_stream_pieces_may_be_empty_or_weightless():
    labels, offsets = np.array([0, 1, 1, 0]), np.array([0.3, -0.1, 1.2, 0.0])
    sketch = Sketch().update(labels[:0], offsets[:0])
    sketch.update(labels[:2], offsets[:2], np.zeros(2))
    sketch.update(labels, offsets)
    assert sketch.n_rows == 6
    assert sketch.solve().shift == pytest.approx(logitshift.fit(labels, offsets).shift,
                                                 rel=1e-15)
    with pytest.raises(logitshift.InputError, match="weight is zero on every row"):
        Sketch().update(labels, offsets, np.zeros(4)).solve()


def test_huge_offsets_of_both_signs_still_give_a_finite_start():
    # Σ w f overflows to inf - inf = nan; the mean falls back to the range's midpoint.
    labels = np.array([1, 0] * 200)
    offsets = np.array([1e306, -1e306] * 200)
    labels[:2] = [0, 1]
    offsets[:2] = [0.5, -0.5]
    for method in ("auto", "newton"):
        result = logitshift.fit(labels, offsets, method=method)
        assert result.converged and np.isfinite(result.shift)


@pytest.mark.parametrize("bad, message", [
    ({"y": np.array([0.0, 1.0, np.nan, 1.0])}, r"y\[2\] is nan"),
    ({"y": np.array([0.0, 1.0, 2.0, 1.0])}, r"label y\[2\] = 2.0 is outside \[0, 1\]"),
    ({"offset": np.array([0.0, np.nan, 1.0, 2.0])}, r"offset\[1\] is nan"),
    ({"offset": np.array([0.0, np.inf, 1.0, 2.0]), "y": np.array([1.0, 0.0, 1.0, 0.0])},
     r"offset\[1\] = inf with label y\[1\] = 0.0"),
    ({"weight": np.array([1.0, 1.0, -1.0, 1.0])}, r"weight\[2\] = -1.0"),
    ({"weight": np.zeros(4)}, "weight is zero on every row"),
    ({"weight": np.array([1.0, 0.0, 1.0, 1.0]), "offset": np.array([0.0, np.nan, 1.0, 2.0])},
     r"offset\[1\] is nan"),
    ({"offset": np.array([0.0, -np.inf, 1.0, 2.0])},
     r"offset\[1\] = -inf with label y\[1\] = 1.0"),
])
@pytest.mark.parametrize("how", ["auto", "newton", "sketch-update"])
def test_every_path_reports_bad_values_like_the_reference(bad, message, how):
    data = {"y": np.array([0.0, 1.0, 1.0, 0.0]), "offset": np.array([0.1, -0.2, 0.3, 0.0]),
            "weight": None}
    data.update(bad)
    with pytest.raises(logitshift.InputError, match=message):
        if how == "sketch-update":
            Sketch().update(data["y"], data["offset"], data["weight"]).solve()
        else:
            logitshift.fit(data["y"], data["offset"], data["weight"], method=how)


def test_methods_agree_and_count_their_passes():
    rng = np.random.default_rng(8)
    labels, offsets, _ = make_data(100_000, rng, np.int8)
    auto = logitshift.fit(labels, offsets)
    newton = logitshift.fit(labels, offsets, method="newton")
    assert auto.method == "sketch" and auto.passes == 1
    assert newton.method == "newton" and newton.passes == 1 + newton.iterations + 2
    assert auto.shift == pytest.approx(newton.shift, rel=1e-14)
    assert auto.se == pytest.approx(newton.se, rel=1e-13)
    assert auto.loss == pytest.approx(newton.loss, rel=1e-13)
    closed = logitshift.fit(labels)
    assert closed.method == "closed_form" and closed.passes == 1
    with pytest.raises(logitshift.InputError, match="method = 'fast'"):
        logitshift.fit(labels, offsets, method="fast")


def test_results_do_not_depend_on_the_number_of_threads(monkeypatch):
    rng = np.random.default_rng(9)
    labels, offsets, weights = make_data(400_000, rng, soft=True, weighted=True)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(logitshift._summary.passes, "max_threads", lambda: threads)
        results.append((logitshift.fit(labels, offsets, weights).shift,
                        logitshift.fit(labels, offsets, weights, method="newton").shift))
    values = np.array(results)
    assert np.all(np.abs(values - values[0, 0]) <= 1e-14 * max(1.0, abs(values[0, 0])))


def test_fit_reads_the_data_without_copies_the_size_of_the_data():
    rng = np.random.default_rng(10)
    peaks = {}
    for n in (500_000, 4_000_000):
        labels, offsets, _ = make_data(n, rng, np.int8)
        logitshift.fit(labels[:1000], offsets[:1000])  # compiled before measuring
        for method in ("auto", "newton"):
            tracemalloc.start()
            logitshift.fit(labels, offsets, method=method)
            peaks[n, method] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    for method in ("auto", "newton"):
        # 3.5 million more float64 offsets are 28 MB; the extra memory must not grow with n.
        assert peaks[4_000_000, method] <= peaks[500_000, method] + 1_000_000, peaks


def test_inputs_are_read_in_place_and_left_unchanged():
    rng = np.random.default_rng(11)
    labels, offsets, weights = make_data(200_000, rng, np.bool_, np.float32, weighted=True)
    copies = [a.copy() for a in (labels, offsets, weights)]
    for array in (labels, offsets, weights):
        array.flags.writeable = False
    for method in ("auto", "newton"):
        logitshift.fit(labels, offsets, weights, method=method)
    Sketch().update(labels, offsets, weights)
    for array, copy in zip((labels, offsets, weights), copies):
        np.testing.assert_array_equal(array, copy)
        assert array.dtype == copy.dtype


def test_vectorized_compiling_restores_numba_setting_and_compiles_the_signature():
    numba = pytest.importorskip("numba")
    from logitshift._core import kernels as _kernels

    @numba.njit
    def add_rows(values, out):
        for i in range(values.shape[0]):
            out[0] += values[i]

    before = numba.config.SLP_VECTORIZE
    args = (np.arange(4.0), np.zeros(1))
    _kernels.compile_vectorized(add_rows, args)
    assert numba.config.SLP_VECTORIZE == before
    assert len(add_rows.overloads) == 1
    add_rows(*args)
    assert args[1][0] == 6.0 and len(add_rows.overloads) == 1  # the call used that code


def test_fits_from_many_threads_at_once_share_the_pool_safely(monkeypatch):
    """Callers that need more pool threads than the pool has grow it while others use it."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(logitshift._summary.passes, "max_threads", lambda: 8)
    rng = np.random.default_rng(13)
    labels, offsets, _ = make_data(65_536 * 9, rng, np.int8)
    sizes = [65_536 * k for k in range(2, 10)] * 3
    expected = {n: logitshift.fit(labels[:n], offsets[:n]).shift for n in set(sizes)}
    for _ in range(3):
        logitshift._summary.passes._forget_pool()  # start small, so that calls must grow it
        with ThreadPoolExecutor(len(sizes)) as callers:
            shifts = list(callers.map(lambda n: logitshift.fit(labels[:n], offsets[:n]).shift,
                                      sizes))
        assert shifts == [expected[n] for n in sizes]


# -- the wire format ----------------------------------------------------------------------------

import importlib.util  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DATA = Path(__file__).parent / "data"


def stored_sketch_rows():
    """The rows of `tests/data/sketch_v1.bin`, from the script that wrote it."""
    spec = importlib.util.spec_from_file_location("make_sketch_v1", DATA / "make_sketch_v1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.legacy_rows()


def test_a_version_1_blob_still_loads_and_solves_to_its_shift():
    blob = (DATA / "sketch_v1.bin").read_bytes()
    stored = json.loads((DATA / "sketch_v1.json").read_text())
    sketch = Sketch.from_bytes(blob)
    assert sketch.n_rows == stored["n_rows"] and sketch.n_cells == stored["n_cells"]
    result = sketch.solve()
    assert result.shift == stored["shift"] and result.se == stored["se"]
    # And it is the sketch of those rows as this code fills it.
    fresh = Sketch()
    for labels, offsets, weights in stored_sketch_rows():
        fresh.update(labels, offsets, weights)
    assert result.shift == pytest.approx(fresh.solve().shift, rel=1e-15)
    assert Sketch.from_bytes(sketch.to_bytes()).solve().shift == result.shift
    # Version 1 had no checksum: its blobs are checked field by field instead.
    with pytest.raises(logitshift.InputError, match="corrupted"):
        Sketch.from_bytes(blob[:-8])


def test_the_blob_has_a_version_and_a_checksum():
    sketch = Sketch().update(np.array([0, 1, 1]), np.array([0.5, -0.25, 1.0]))
    blob = sketch.to_bytes()
    assert blob[:4] == b"LSSK" and struct.unpack("<I", blob[4:8]) == (2,)
    assert struct.unpack("<I", blob[-4:]) == (zlib.crc32(blob[:-4]),)
    assert sketch.to_dict()["checksum"] == zlib.crc32(blob[:-4])


def _resealed(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _v2_with_header(header: dict, arrays: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    return _resealed(b"LSSK" + struct.pack("<II", 2, len(text)) + text + arrays)


def _respelled(blob):
    """The same header in other JSON (spaces after the separators), resealed."""
    header, arrays = _header_and_arrays(blob)
    text = json.dumps(header).encode()
    return _resealed(b"LSSK" + struct.pack("<II", 2, len(text)) + text + arrays)


@pytest.fixture(scope="module")
def real_blob():
    labels = np.array([0, 1, 0, 1, 1, 0, 0.25])
    offsets = np.array([0.3, -1.2, 2.5, 0.0, 1e3, -7.0, 0.1])
    weights = np.array([1.0, 2.0, 0.5, 1.0, 1.0, 3.0, 1.0])
    return Sketch().update(labels, offsets, weights).to_bytes()


def _header_and_arrays(blob):
    (length,) = struct.unpack("<I", blob[8:12])
    return json.loads(blob[12:12 + length]), blob[12 + length:-4]


@pytest.mark.parametrize("change, message", [
    (lambda h: {**h, "n_rows": -1}, "n_rows = -1 is negative"),
    (lambda h: {**h, "n_rows": 7.0}, "n_rows = 7.0 is not an integer"),
    (lambda h: {**h, "width": 0.1}, "power of two"),
    (lambda h: {**h, "order": 17}, "order = 17 must be an integer between 2 and 16"),
    (lambda h: {**h, "positives": float("nan")}, "positives = nan"),
    (lambda h: {**h, "weight_sum": -1.0}, "weight_sum = -1.0"),
    (lambda h: {**h, "active_negatives": h["active_negatives"] * 2}, "totals do not agree"),
    (lambda h: {**h, "offset_min": 5.0}, "offset range"),
    (lambda h: {**h, "weight_scale": 3}, "unknown field 'weight_scale'"),
    (lambda h: {k: v for k, v in h.items() if k != "positives"}, "no field 'positives'"),
    (lambda h: {**h, "max_cells": 2}, r"n_cells = 7 is outside \[0, max_cells = 2\]"),
], ids=["negative-rows", "float-rows", "width", "order", "nan-positives", "negative-weight",
        "inconsistent-totals", "offset-range", "unknown-field", "missing-field", "over-budget"])
def test_a_resealed_blob_with_a_bad_field_is_refused(real_blob, change, message):
    header, arrays = _header_and_arrays(real_blob)
    with pytest.raises(logitshift.InputError, match=message):
        Sketch.from_bytes(_v2_with_header(change(header), arrays))


def test_a_field_with_a_default_may_be_absent(real_blob):
    # How a blob written before a field existed reads: `max_cells` takes its default.
    header, arrays = _header_and_arrays(real_blob)
    del header["max_cells"]
    sketch = Sketch.from_bytes(_v2_with_header(header, arrays))
    assert sketch.max_cells == logitshift._summary.sketch.DEFAULT_MAX_CELLS
    assert sketch.solve().shift == Sketch.from_bytes(real_blob).solve().shift


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b"", "not a logitshift sketch"),
    (lambda b: b"LSS", "not a logitshift sketch"),
    (lambda b: b"junk" + b[4:], "not a logitshift sketch"),
    (lambda b: b[:4] + struct.pack("<I", 4) + b[8:], "format version 4; this reads up to 3"),
    (lambda b: b[:4] + struct.pack("<I", 0) + b[8:], "not a logitshift sketch"),
    (lambda b: b[:-1], "checksum mismatch"),
    (lambda b: b[:len(b) // 2], "checksum mismatch"),
    (lambda b: b + b"\0", "checksum mismatch"),
    (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "checksum mismatch"),
    (lambda b: b[:-20] + bytes([b[-20] ^ 0x80]) + b[-19:], "checksum mismatch"),
    (lambda b: _resealed(b[:-12]), "bytes, where its header says"),
    (lambda b: _respelled(b), "not as Sketch.to_bytes"),
    (lambda b: _resealed(b[:12] + b"\xff" + b[13:-4]), "not JSON"),
], ids=["empty", "short", "magic", "newer", "version-0", "truncated-1", "truncated-half",
        "padded", "flip-header", "flip-table", "resealed-truncation", "respelled-header",
        "not-utf8"])
def test_corrupted_blobs_are_input_errors(real_blob, mangle, message):
    with pytest.raises(logitshift.InputError, match=message):
        Sketch.from_bytes(mangle(real_blob))


def test_the_truncated_blob_of_the_issue_is_refused():
    rng = np.random.default_rng(0)
    labels, offsets, _ = make_data(5000, rng)
    blob = Sketch().update(labels, offsets).to_bytes()
    for cut in (len(blob) - 8 * 17, len(blob) - 8, len(blob) - 4, 100):
        with pytest.raises(logitshift.InputError, match="corrupted"):
            Sketch.from_bytes(blob[:cut])


def _mutations():
    def flip(blob, data):
        position = data.draw(st.integers(0, len(blob) * 8 - 1))
        return blob[:position // 8] + bytes([blob[position // 8] ^ (1 << position % 8)]) + \
            blob[position // 8 + 1:]

    def truncate(blob, data):
        return blob[:data.draw(st.integers(0, len(blob) - 1))]

    def insert(blob, data):
        position = data.draw(st.integers(0, len(blob)))
        return blob[:position] + data.draw(st.binary(min_size=1, max_size=16)) + blob[position:]

    def splice(blob, data, other):
        cut = data.draw(st.integers(0, len(blob)))
        other_cut = data.draw(st.integers(0, len(other)))
        return blob[:cut] + other[other_cut:]

    return {"flip": flip, "truncate": truncate, "insert": insert, "splice": splice}


@pytest.mark.parametrize("kind", ["flip", "truncate", "insert", "splice"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_blobs_are_refused_with_input_errors(kind, data):
    blobs = _fuzz_blobs()
    blob = blobs[data.draw(st.integers(0, len(blobs) - 1))]
    mutate = _mutations()[kind]
    if kind == "splice":
        mangled = mutate(blob, data, blobs[data.draw(st.integers(0, len(blobs) - 1))])
    else:
        mangled = mutate(blob, data)
    if mangled in blobs:  # a splice can rebuild a whole blob
        return
    with pytest.raises(logitshift.InputError):
        Sketch.from_bytes(mangled)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_dicts_with_a_changed_number_are_refused(data):
    blobs = _fuzz_blobs()[:2]
    original = Sketch.from_bytes(blobs[data.draw(st.integers(0, 1))]).to_dict()
    numbers = {name: value for name, value in original.items()
               if isinstance(value, (int, float)) and name != "version"}
    field = data.draw(st.sampled_from(sorted(numbers) + ["centres", "tables"]))
    changed = json.loads(json.dumps(original))
    if field in ("centres", "tables"):
        flat = np.array(changed[field], dtype=np.float64)
        position = data.draw(st.integers(0, flat.size - 1))
        bit = data.draw(st.integers(0, 63))
        flat.ravel().view(np.uint64)[position] ^= np.uint64(1 << bit)
        changed[field] = flat.tolist()
    else:
        value = changed[field]
        changed[field] = value + data.draw(st.sampled_from([1, -1])) * (
            1 if isinstance(value, int) else max(abs(value), 1.0) * 1e-12)
    if changed == json.loads(json.dumps(original)):
        return
    with pytest.raises(logitshift.InputError):
        Sketch.from_dict(changed)


_BLOBS: list[bytes] = []


def _fuzz_blobs() -> list[bytes]:
    if not _BLOBS:
        rng = np.random.default_rng(12)
        for n in (3, 40):
            labels, offsets, weights = make_data(n, rng, weighted=True, soft=True)
            _BLOBS.append(Sketch().update(labels, offsets, weights + 0.1).to_bytes())
        _BLOBS.append(Sketch().to_bytes())
    return _BLOBS


@pytest.mark.parametrize("data, message", [
    ([1, 2], "not a logitshift sketch"),
    ({"version": 4}, "format version 4"),
    ({"version": "2"}, "not a logitshift sketch"),
    ({"version": 2}, "no field 'centres'"),
], ids=["list", "newer", "string-version", "no-fields"])
def test_bad_dicts_are_input_errors(data, message):
    with pytest.raises(logitshift.InputError, match=message):
        Sketch.from_dict(data)


def test_a_changed_dict_fails_its_checksum(real_blob):
    data = Sketch.from_bytes(real_blob).to_dict()
    assert Sketch.from_dict(data).to_bytes() == real_blob
    changed = json.loads(json.dumps(data))
    changed["tables"][0][0][0] *= 1.5
    with pytest.raises(logitshift.InputError, match="checksum mismatch|do not agree"):
        Sketch.from_dict(changed)
    changed = {**data, "centres": [str(value) for value in data["centres"]]}
    with pytest.raises(logitshift.InputError, match="not an array of numbers"):
        Sketch.from_dict(changed)
    ragged = {**data, "tables": [[1.0], [2.0, 3.0]]}
    with pytest.raises(logitshift.InputError, match="corrupted"):
        Sketch.from_dict(ragged)


# -- the cell budget ----------------------------------------------------------------------------

def wide_rows(n=200_000, spread=1e6, seed=4):
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-spread, spread, n)
    labels = (rng.random(n) < 0.5).astype(np.int8)
    return labels, offsets


def test_fit_falls_back_to_exact_passes_past_the_cell_budget():
    labels, offsets = wide_rows()
    result = logitshift.fit(labels, offsets)
    exact = logitshift.fit(labels, offsets, method="newton")
    assert result.method == "newton"
    # The sketch's pass, given up, then the exact solver's.
    assert result.passes == exact.passes + 1
    assert result.shift == exact.shift
    with pytest.raises(logitshift.InputError, match="max_cells = 65,536"):
        logitshift.fit(labels, offsets, method="sketch")


def test_a_stream_past_the_cell_budget_is_refused_naming_the_range():
    labels, offsets = wide_rows(spread=1e12)
    with pytest.raises(logitshift.InputError,
                       match=r"offset spans ±1e\+12 logits.*really a raw score.*max_cells"
                       ) as caught:
        Sketch().update(labels, offsets)
    assert caught.value.argument == "offset"
    # Chunk by chunk it stops once the sketch is full, and stays as it was.
    sketch = Sketch(max_cells=1000)
    sketch.update(labels[:900], offsets[:900])
    with pytest.raises(logitshift.InputError, match="max_cells = 1,000"):
        sketch.update(labels[900:1200], offsets[900:1200])
    assert sketch.n_rows == 900 and sketch.n_cells <= 1000
    # Merging counts too.
    with pytest.raises(logitshift.InputError, match="max_cells"):
        Sketch(max_cells=1000).update(labels[:900], offsets[:900]) + \
            Sketch(max_cells=1000).update(labels[900:1800], offsets[900:1800])


def test_the_budget_is_settable_and_the_cells_are_counted_before_they_are_filled(monkeypatch):
    labels, offsets = wide_rows(n=50_000)
    cells = Sketch(max_cells=1 << 20).update(labels, offsets).n_cells
    assert Sketch(max_cells=cells).update(labels, offsets).n_cells == cells
    filled = []
    monkeypatch.setattr(logitshift._summary.sketch, "_fill_outside_windows",
                        lambda *args: filled.append(1))
    with pytest.raises(logitshift.InputError, match=f"{cells:,} cells"):
        Sketch(max_cells=cells - 1).update(labels, offsets)
    assert not filled
    with pytest.raises(logitshift.InputError, match="max_cells = 0 must be a positive integer"):
        Sketch(max_cells=0)


def test_the_budget_bounds_the_memory_of_a_wide_stream():
    labels, offsets = wide_rows(n=200_000, spread=1e12)
    Sketch().update(labels[:10], offsets[:10])  # compile outside the measurement
    tracemalloc.start()
    try:
        with pytest.raises(logitshift.InputError, match="max_cells"):
            Sketch().update(labels, offsets)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Beyond the threads' dense windows (allocated whatever the data), the tables of these
    # rows would take 136 bytes a row; counting their cells takes a few dozen.
    from logitshift._summary.passes import row_ranges
    windows = len(row_ranges(labels.size)) * (2 * logitshift._summary.sketch._HALF_WINDOW) * 2 * 8 * 8
    assert peak < windows + 40 * labels.size


# -- evaluators, sums ---------------------------------------------------------------------------

@pytest.mark.parametrize("evaluator", ["loss", "gradient", "hessian", "evaluate", "cells"])
def test_sketch_evaluators_refuse_nan_like_loss_at(evaluator):
    sketch = Sketch().update(np.array([0, 1, 1]), np.array([0.5, -0.25, 1.0]))
    with pytest.raises(logitshift.InputError, match="shift is nan"):
        getattr(sketch, evaluator)(float("nan"))
    with pytest.raises(logitshift.InputError, match="shift is nan"):
        sketch.solve().loss_at(float("nan"))


def test_sum_of_sketches_is_their_merge():
    rng = np.random.default_rng(5)
    parts = [Sketch().update(*make_data(100, rng)[:2]) for _ in range(4)]
    total = sum(parts)
    assert total.n_rows == 400 and total is not parts[0]
    assert total.to_bytes() == (parts[0] + parts[1] + parts[2] + parts[3]).to_bytes()
    assert parts[0].n_rows == 100
    with pytest.raises(TypeError):
        _ = 1 + parts[0]
