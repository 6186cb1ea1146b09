"""Each fill kernel and its helpers alone, against the general kernel and the numpy reference.

`fill_unweighted` (integer labels, no weights) must give the tables and totals of `fill`
to the bit, and both those of `_sketch.fill_reference` to rounding, whatever the block a bad,
infinite or far row falls in.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import logitshift
from logitshift._core import kernels as _kernels
from logitshift._summary import sketch as _sketch
from logitshift._core.kernels import (N_STATS, S_ANCHOR, S_FIRST_BAD, S_HIGH, S_LOW, S_OFFSET_MAX,
                                 S_OFFSET_MIN, S_OVERFLOW, S_POSITIVES, S_WEIGHT)
from logitshift._summary.passes import Prepared
from logitshift._summary.sketch import fill_reference, scan_arrays

WIDTH = 2.0 ** -4
INTEGER_LABELS = [np.bool_, np.uint8, np.int8, np.int32, np.int64]
# A window small enough that ordinary offsets overflow it: the far-row path gets rows too.
SMALL_HALF_WINDOW = 64


def run_kernel(kernel, labels, offsets, weights=None, *, order=8, width=WIDTH,
               half_window=_sketch._HALF_WINDOW, start=0, stop=None):
    """One kernel over rows ``[start, stop)``: its dense table and statistics."""
    data = Prepared.of(labels, offsets, weights)
    arguments = data.kernel_arguments
    leading = arguments if kernel is _kernels.fill else (arguments[0], arguments[3])
    stop = labels.shape[0] if stop is None else stop
    table = np.zeros(2 * half_window * 2 * order)
    stats = np.zeros(N_STATS)
    args = (*leading, start, stop, 1.0 / width, width, order, table, stats)
    _kernels.compile_vectorized(kernel, args)
    kernel(*args)
    return table, stats


def assert_same_fill(labels, offsets, **options):
    """`fill_unweighted` and `fill` agree to the bit on every table entry and statistic."""
    table, stats = run_kernel(_kernels.fill_unweighted, labels, offsets, **options)
    ref_table, ref_stats = run_kernel(_kernels.fill, labels, offsets, **options)
    np.testing.assert_array_equal(stats, ref_stats)
    if stats[S_FIRST_BAD] < 0:
        np.testing.assert_array_equal(table, ref_table)
    return table, stats


def make_rows(n, rng, label_dtype=np.int8, offset_dtype=np.float64, spread=2.0):
    offsets = rng.normal(0.0, spread, n).astype(offset_dtype)
    probability = 0.5 + 0.5 * np.tanh(offsets.astype(float) / 2)  # σ, without overflow
    labels = (rng.random(n) < probability).astype(label_dtype)
    return labels, offsets


@pytest.mark.parametrize("label_dtype", INTEGER_LABELS, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("offset_dtype", [np.float32, np.float64],
                         ids=lambda t: np.dtype(t).name)
def test_unweighted_fill_equals_the_general_fill(label_dtype, offset_dtype):
    labels, offsets = make_rows(10_000 + 77, np.random.default_rng(1), label_dtype,
                                offset_dtype)
    table, stats = assert_same_fill(labels, offsets)
    assert stats[S_WEIGHT] == labels.shape[0]
    assert stats[S_OFFSET_MIN] == offsets.min() and stats[S_OFFSET_MAX] == offsets.max()


@pytest.mark.parametrize("order", [2, 3, 7, 8, 9, 12, 16])
def test_unweighted_fill_at_every_order(order):
    labels, offsets = make_rows(3_000, np.random.default_rng(2))
    assert_same_fill(labels, offsets, order=order, width=2.0 ** -3)


@pytest.mark.parametrize("start, stop", [(0, 1), (5, 261), (256, 512), (300, 2_999),
                                         (1_000, 1_000)])
def test_unweighted_fill_over_any_range_of_rows(start, stop):
    labels, offsets = make_rows(3_000, np.random.default_rng(3))
    assert_same_fill(labels, offsets, start=start, stop=stop)


def test_unweighted_fill_with_certain_and_far_rows_in_some_blocks():
    rng = np.random.default_rng(4)
    labels, offsets = make_rows(5_000, rng, spread=8.0)  # beyond ±4 logits: far rows
    labels[[10, 700, 701, 4_999]] = [1, 0, 1, 1]
    offsets[[10, 700, 701, 4_999]] = [np.inf, -np.inf, np.inf, np.inf]
    offsets[[3, 4]] = [1e300, -1e300]
    table, stats = assert_same_fill(labels, offsets, half_window=SMALL_HALF_WINDOW)
    assert stats[S_POSITIVES] == 3  # the certain positives, outside the table
    assert stats[S_OVERFLOW] > 2


@pytest.mark.parametrize("where", [0, 255, 256, 1_000, 2_999])
@pytest.mark.parametrize("bad", ["label", "nan", "contradicting inf"])
def test_unweighted_fill_finds_the_first_bad_row(where, bad):
    labels, offsets = make_rows(3_000, np.random.default_rng(5))
    if bad == "label":
        labels[where] = 2
    elif bad == "nan":
        offsets[where] = np.nan
    else:
        labels[where], offsets[where] = 0, np.inf
    labels[min(where + 3, 2_999)] = 3  # a later bad row does not hide the first
    _, stats = assert_same_fill(labels, offsets)
    assert stats[S_FIRST_BAD] == where


def test_unweighted_fill_of_rows_with_only_infinite_or_far_offsets():
    labels = np.array([1, 0, 1], dtype=np.int8)
    offsets = np.array([np.inf, -np.inf, np.inf])
    _, stats = assert_same_fill(labels, offsets)
    assert stats[S_HIGH] < stats[S_LOW] and stats[S_ANCHOR] == 0.0
    assert math.isinf(stats[S_OFFSET_MIN]) and stats[S_OFFSET_MIN] > 0


@pytest.mark.parametrize("label_dtype", INTEGER_LABELS, ids=lambda t: np.dtype(t).name)
def test_unweighted_fill_matches_the_numpy_fill(label_dtype):
    labels, offsets = make_rows(200_000, np.random.default_rng(6), label_dtype, spread=3.0)
    labels[::11] = 1
    data = Prepared.of(labels, offsets, None)
    assert _sketch._fill_kernel(data.kernel_arguments)[0] is _kernels.fill_unweighted
    _, cells, tables = scan_arrays(data, WIDTH, 8)
    ref_cells, ref_tables = fill_reference(labels, offsets, None, WIDTH, 8)
    np.testing.assert_array_equal(cells, ref_cells)
    scale = np.abs(ref_tables).max(axis=2, keepdims=True)
    assert np.all(np.abs(tables - ref_tables) <= 1e-12 * scale)


def test_the_general_fill_serves_everything_else():
    rng = np.random.default_rng(7)
    labels, offsets = make_rows(1_000, rng)
    weights = rng.exponential(size=1_000)
    for data in (Prepared.of(labels, offsets, weights),
                 Prepared.of(labels.astype(np.float64), offsets, None),
                 Prepared.of(labels, 0.5, None)):
        assert _sketch._fill_kernel(data.kernel_arguments)[0] is _kernels.fill
    data = Prepared.of(labels.astype(bool), offsets.astype(np.float32), None)
    assert _sketch._fill_kernel(data.kernel_arguments)[0] is _kernels.fill_unweighted


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_both_kernels_give_the_same_sketch_and_shift(threads, monkeypatch):
    """Whole scans (threads, the sparse path, the combining) over both kernels."""
    rng = np.random.default_rng(8)
    labels, offsets = make_rows(3 * (1 << 16) + 5, rng, spread=500.0)  # some beyond ±1024
    labels[:100] = 1
    offsets[:100] = np.inf
    data = Prepared.of(labels, offsets, None)
    new = scan_arrays(data, WIDTH, 8, threads)
    monkeypatch.setattr(_sketch, "_fill_kernel",
                        lambda arguments: (_kernels.fill, arguments))
    old = scan_arrays(data, WIDTH, 8, threads)
    assert new[0] == old[0]
    np.testing.assert_array_equal(new[1], old[1])
    np.testing.assert_array_equal(new[2], old[2])


def test_bad_integer_labels_and_offsets_are_reported_like_the_reference():
    labels = np.zeros(70_000, dtype=np.int8)
    labels[::3] = 1
    offsets = np.linspace(-3, 3, 70_000)
    for bad_labels, bad_offsets, message in [
        ({40_000: 2}, {}, r"label y\[40000\] = 2(\.0)? is outside \[0, 1\]"),
        ({}, {12_345: np.nan}, r"offset\[12345\] is nan"),
        ({3: 1}, {3: -np.inf}, r"offset\[3\] = -inf with label y\[3\] = 1(\.0)?"),
    ]:
        y, f = labels.copy(), offsets.copy()
        for row, value in bad_labels.items():
            y[row] = value
        for row, value in bad_offsets.items():
            f[row] = value
        # The integer labels take the fast kernel, the float ones the general one.
        for labels_as in (y, y.astype(np.float64)):
            with pytest.raises(logitshift.InputError, match=message):
                logitshift.fit(labels_as, f)


# -- hypothesis: arbitrary small data --------------------------------------------------------

@st.composite
def unweighted_rows(draw):
    n = draw(st.integers(1, 700))
    labels = draw(hnp.arrays(draw(st.sampled_from(INTEGER_LABELS)), n,
                             elements=st.integers(0, 1)))
    offset_dtype = draw(st.sampled_from([np.float32, np.float64]))
    finite = st.floats(-50, 50, width=32 if offset_dtype == np.float32 else 64)
    offsets = draw(hnp.arrays(offset_dtype, n, elements=finite))
    # Some certain rows that agree with their labels.
    certain = draw(hnp.arrays(np.bool_, n, elements=st.booleans())) & draw(st.booleans())
    offsets[certain] = np.where(labels[certain].astype(bool), np.inf, -np.inf)
    return labels, offsets


@settings(max_examples=80, deadline=None)
@given(unweighted_rows(), st.sampled_from([3, 8, 11]), st.sampled_from([8, 1 << 14]))
def test_unweighted_fill_equals_the_general_fill_on_arbitrary_rows(rows, order, half_window):
    labels, offsets = rows
    assert_same_fill(labels, offsets, order=order, half_window=half_window)


@settings(max_examples=40, deadline=None)
@given(unweighted_rows())
def test_unweighted_fill_matches_the_numpy_fill_on_arbitrary_rows(rows):
    labels, offsets = rows
    _, cells, tables = scan_arrays(Prepared.of(labels, offsets, None), WIDTH, 8)
    ref_cells, ref_tables = fill_reference(labels, offsets, None, WIDTH, 8)
    np.testing.assert_array_equal(cells, ref_cells)
    scale = np.abs(ref_tables).max(axis=2, keepdims=True) if ref_tables.size else 1.0
    assert np.all(np.abs(tables - ref_tables) <= 1e-12 * scale)


# -- helpers alone ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float32, np.float64]), st.integers(1, 600),
                  elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))
def test_offset_range_is_min_and_max(values):
    low, high = _kernels._offset_range(values, 0, values.shape[0], math.inf, -math.inf)
    # Equal as numbers: a tie of -0.0 and 0.0 may give either zero.
    assert low == values.min() and high == values.max()


def test_offset_range_continues_a_running_range():
    values = np.array([3.0, -2.0, 5.0, 0.5])
    assert _kernels._offset_range(values, 1, 3, -7.0, 4.0) == (-7.0, 5.0)
    assert _kernels._offset_range(values, 0, 0, 1.0, 2.0) == (1.0, 2.0)


@pytest.mark.parametrize("order", [2, 3, 8, 16])
def test_add_powers_adds_the_powers_of_the_remainder(order):
    table = np.zeros(3 * order)
    d = -0.0283203125  # a remainder within a cell of width 1/16
    _kernels._add_powers(table, order, order, d)
    _kernels._add_powers(table, order, order, d)
    expected = 2 * d ** np.arange(order)
    np.testing.assert_allclose(table[order:2 * order], expected, rtol=4e-16, atol=0)
    assert not table[:order].any() and not table[2 * order:].any()
