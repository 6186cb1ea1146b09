"""The numba kernels and the sketch, against the numpy reference."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

import logitshift
from logitshift import Sketch
from logitshift._arrays import ExactCurve
from logitshift._rows import Prepared
from logitshift._sketch import fill_reference, scan_arrays
from logitshift._solve import ArrayCurve

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
    # And the fit still matches the exact solver.
    exact = logitshift.fit(labels, offsets, method="newton")
    assert logitshift.fit(labels, offsets).shift == pytest.approx(exact.shift, rel=1e-13)


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
    reference = logitshift._shift.fit_curve(ArrayCurve(labels, offsets, None), method="newton")
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
        monkeypatch.setattr(logitshift._rows, "max_threads", lambda: threads)
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
    from logitshift import _kernels

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

    monkeypatch.setattr(logitshift._rows, "max_threads", lambda: 8)
    rng = np.random.default_rng(13)
    labels, offsets, _ = make_data(65_536 * 9, rng, np.int8)
    sizes = [65_536 * k for k in range(2, 10)] * 3
    expected = {n: logitshift.fit(labels[:n], offsets[:n]).shift for n in set(sizes)}
    for _ in range(3):
        logitshift._rows._forget_pool()  # start small, so that calls must grow it
        with ThreadPoolExecutor(len(sizes)) as callers:
            shifts = list(callers.map(lambda n: logitshift.fit(labels[:n], offsets[:n]).shift,
                                      sizes))
        assert shifts == [expected[n] for n in sizes]
