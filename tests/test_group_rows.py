"""Groups kept as their rows (`GroupSketch.update(keep_rows=True)`, what `fit_groups` does on
arrays): each group's sums are exact, where a group kept as cells has Taylor series. Every
number is checked against `logitshift.fit` on the group's own rows (exact passes) and against
the same rows filled as cells, the path every group took before; groups on either side of the
size threshold, weights of 2**±600, and merges of a row-kept sketch with a cell-kept one; a
sketch keeping a few rows (a copy of them) and one keeping most (the fill's grouped columns
whole). The row kernels' `exp` and `log1p` are checked against numpy's and mpmath's."""

from __future__ import annotations

import math
import warnings

import mpmath

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

import logitshift
from logitshift import GroupSketch
from logitshift._core import kernels as _kernels
from logitshift._summary import group_sketch as _group_sketch

THRESHOLD = _group_sketch._ROWS_PER_CELL
WIDTH = 2.0 ** -4


def _both(labels: np.ndarray) -> np.ndarray:
    """Labels with both classes (a finite shift in every group)."""
    labels[:2] = [False, True]
    return labels


def _straddling(seed: int) -> tuple[np.ndarray, ...]:
    """Groups whose offsets span exactly ``span`` cells with ``THRESHOLD * span`` rows (kept
    as rows) or one row more (kept as cells), beside small and large random groups."""
    rng = np.random.default_rng(seed)
    ys, groups, offsets = [], [], []
    for code, (span, extra) in enumerate([(3, 0), (3, 1), (10, 0), (10, 1), (1, 0),
                                          (1, 1), (40, 0), (40, 1)]):
        n = THRESHOLD * span + extra
        # Offsets in cells [c, c + span): the first row in the first, the last in the last.
        first = rng.integers(-40, 40)
        cells = np.concatenate([[0, span - 1], rng.integers(0, span, n - 2)])[:n]
        f = (first + cells + rng.random(n)) * WIDTH
        ys.append(_both(rng.random(n) < special.expit(f + rng.normal(0, 0.5))))
        groups.append(np.full(n, code))
        offsets.append(f)
    for code in range(8, 60):  # random sizes, from 2 rows to 3000
        n = int(rng.integers(2, 3000)) if code % 4 == 0 else int(rng.integers(2, 60))
        f = rng.normal(rng.normal(0, 2), rng.uniform(0.1, 3), n)
        ys.append(_both(rng.random(n) < special.expit(f - 0.5)))
        groups.append(np.full(n, code))
        offsets.append(f)
    order = rng.permutation(sum(map(len, ys)))
    return tuple(np.concatenate(parts)[order] for parts in (ys, groups, offsets))


def _mostly_rows(seed: int) -> tuple[np.ndarray, ...]:
    """2000 groups of 2 to 60 rows (kept as rows) beside three of 4000 rows in a narrow
    span (kept as cells): most rows are kept, so the sketch keeps the fill's grouped
    columns whole, the cell groups' rows among them."""
    rng = np.random.default_rng(seed)
    ys, groups, offsets = [], [], []
    for code in range(2003):
        n = 4000 if code % 1000 == 7 else int(rng.integers(2, 60))
        f = rng.normal(rng.normal(0, 1), 0.2 if n == 4000 else 1.5, n)
        ys.append(_both(rng.random(n) < special.expit(f + rng.normal(0, 0.5))))
        groups.append(np.full(n, code))
        offsets.append(f)
    order = rng.permutation(sum(map(len, ys)))
    return tuple(np.concatenate(parts)[order] for parts in (ys, groups, offsets))


@pytest.fixture(scope="module", params=["a few rows kept", "most rows kept"])
def straddling(request) -> tuple[np.ndarray, ...]:
    data = _straddling(1) if request.param == "a few rows kept" else _mostly_rows(2)
    kept = GroupSketch().update(*data, keep_rows=True)._kept
    assert kept.every_row == (request.param == "most rows kept")
    return data


def _kept_counts(sketch: GroupSketch) -> np.ndarray:
    return np.zeros(sketch.n_groups, dtype=np.int64) if sketch._kept is None else \
        sketch._kept.counts


def test_the_threshold_keeps_the_groups_at_it_as_rows_and_those_beyond_as_cells():
    y, group, offset = _straddling(1)
    sketch = GroupSketch().update(y, group, offset, keep_rows=True)
    kept = _kept_counts(sketch)
    for code, (span, extra) in enumerate([(3, 0), (3, 1), (10, 0), (10, 1), (1, 0), (1, 1),
                                          (40, 0), (40, 1)]):
        rows = THRESHOLD * span + extra
        assert kept[code] == (rows if extra == 0 else 0), code
        cells = np.diff(sketch._start)[code]
        assert (cells == 0) == (extra == 0), code
    assert kept.sum() + sum(np.diff(sketch._start) > 0) > 0
    # Both kinds are present among the random groups too.
    assert (kept[8:] > 0).any() and (kept[8:] == 0).any()
    assert GroupSketch().update(y, group, offset)._kept is None  # the default keeps cells


def test_every_group_equals_fit_on_its_rows(straddling):
    y, group, offset = straddling
    result = logitshift.fit_groups(y, group, offset)
    sketch = result._curves
    kept = _kept_counts(sketch)
    assert (kept > 0).any() and (kept == 0).any()
    for index, key in enumerate(result.groups.tolist()):
        rows = group == key
        alone = logitshift.fit(y[rows], offset[rows], method="newton")
        assert result.status[index] == "converged"
        assert result.shift[index] == pytest.approx(alone.shift, rel=1e-12, abs=1e-13)
        assert result.se[index] == pytest.approx(alone.se, rel=1e-12)
        assert result.loss[index] == pytest.approx(alone.loss, rel=1e-12)
        assert result.loss_at_zero[index] == pytest.approx(alone.loss_at_zero, rel=1e-12)
        # The group's own fit (its curve: rows or cells) is fit on the rows.
        own = result.fit_of(key)
        assert own.shift == pytest.approx(alone.shift, rel=1e-12, abs=1e-13)
        assert own.confint() == pytest.approx(alone.confint(), rel=1e-10, abs=1e-12)
    everything = logitshift.fit(y, offset, method="newton")
    assert result.pooled.shift == pytest.approx(everything.shift, rel=1e-12, abs=1e-13)
    assert result.pooled.loss == pytest.approx(everything.loss, rel=1e-12)


def test_rows_and_cells_give_the_same_fit_to_rounding(straddling):
    y, group, offset = straddling
    rows = logitshift.fit_groups(y, group, offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = GroupSketch().update(y, group, offset).solve()
    assert rows._curves._kept is not None and cells._curves._kept is None
    assert rows.status.tolist() == cells.status.tolist()
    for name in ("shift", "se", "loss", "loss_at_zero", "observed_expected", "weight_sum",
                 "positives"):
        np.testing.assert_allclose(getattr(rows, name), getattr(cells, name), rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    assert rows.n_rows.tolist() == cells.n_rows.tolist()
    lr_rows, lr_cells = rows.lr_test(), cells.lr_test()
    assert lr_rows.statistic == pytest.approx(lr_cells.statistic, rel=1e-9)
    assert rows.pooled.shift == pytest.approx(cells.pooled.shift, rel=1e-13, abs=1e-14)
    np.testing.assert_allclose(rows.confint(), cells.confint(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("nagq", [1, 9])
def test_random_intercepts_from_rows_equal_those_from_cells(straddling, nagq):
    y, group, offset = straddling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = logitshift.fit_groups(y, group, offset, shrinkage="random", nagq=nagq)
        cells = GroupSketch().update(y, group, offset).solve(shrinkage="random", nagq=nagq)
    assert rows.converged and cells.converged
    for name in ("mean", "tau", "loglik", "mean_se"):
        assert getattr(rows, name) == pytest.approx(getattr(cells, name), rel=1e-10), name
    np.testing.assert_allclose(rows.shrunk, cells.shrunk, rtol=1e-9, atol=1e-12)


def test_a_row_kept_sketch_writes_and_merges_as_the_cells_it_stands_for(straddling):
    y, group, offset = straddling
    kept = GroupSketch().update(y, group, offset, keep_rows=True)
    cells = GroupSketch().update(y, group, offset)
    assert kept._kept is not None
    # Its cells are filled as a fill without keep_rows fills them: the same bytes.
    assert kept.to_bytes() == cells.to_bytes()
    assert kept.n_cells == cells.n_cells
    assert GroupSketch.from_bytes(kept.to_bytes())._kept is None
    # A row-kept group merged with a cell-kept one of the same key, and with new keys.
    half = len(y) // 2
    first = GroupSketch().update(y[:half], group[:half], offset[:half], keep_rows=True)
    second = GroupSketch().update(y[half:], group[half:], offset[half:])
    assert first._kept is not None and second._kept is None
    both = GroupSketch().update(y[:half], group[:half], offset[:half]) + second
    assert (first + second).to_bytes() == both.to_bytes()
    assert (second + first).to_bytes() == (second + GroupSketch().update(
        y[:half], group[:half], offset[:half])).to_bytes()
    assert sum([first, second]).to_bytes() == both.to_bytes()
    # The merge is the fit of all rows.
    merged = (first + second).solve()
    whole = logitshift.fit_groups(y, group, offset)
    np.testing.assert_allclose(merged.shift, whole.shift, rtol=1e-12, atol=1e-13)
    # Relabelling keeps every group's cells with its new key.
    relabelled = kept.relabelled([f"g{key:03d}" for key in kept.keys.tolist()])
    assert relabelled.to_bytes() == cells.relabelled(
        [f"g{key:03d}" for key in cells.keys.tolist()]).to_bytes()
    # An update after the first chunk merges: its groups are cells.
    grown = GroupSketch().update(y[:half], group[:half], offset[:half], keep_rows=True)
    grown.update(y[half:], group[half:], offset[half:], keep_rows=True)
    assert grown._kept is None and grown.to_bytes() == both.to_bytes()


def test_sketch_of_a_row_kept_group_is_its_cells(straddling):
    y, group, offset = straddling
    kept = GroupSketch().update(y, group, offset, keep_rows=True)
    cells = GroupSketch().update(y, group, offset)
    code = int(np.flatnonzero(kept._kept.counts)[0])
    key = kept.keys[code]
    assert kept.sketch_of(key).to_bytes() == cells.sketch_of(key).to_bytes()


def test_weights_spanning_two_to_the_600_keep_each_groups_digits():
    rng = np.random.default_rng(7)
    n = 400
    group = rng.integers(0, 8, n)
    offset = rng.normal(0, 1, n)
    y = rng.random(n) < special.expit(offset + 0.3)
    scale = np.array([2.0 ** 600, 2.0 ** -600, 1.0, 2.0 ** 600, 2.0 ** -600, 3.0, 2.0 ** -1,
                      2.0 ** 550])
    weight = scale[group] * rng.uniform(0.5, 2.0, n)
    sketch = GroupSketch().update(y, group, offset, weight, keep_rows=True)
    assert sketch._exponent.any() and sketch._kept is not None
    result = logitshift.fit_groups(y, group, offset, weight)
    for index, key in enumerate(result.groups.tolist()):
        rows = group == key
        alone = logitshift.fit(y[rows], offset[rows], weight[rows], method="newton")
        assert result.shift[index] == pytest.approx(alone.shift, rel=1e-12, abs=1e-13)
        assert result.se[index] == pytest.approx(alone.se, rel=1e-12)
        assert result.weight_sum[index] == pytest.approx(alone.weight_sum, rel=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = GroupSketch().update(y, group, offset, weight).solve()
    np.testing.assert_allclose(result.shift, cells.shift, rtol=1e-12, atol=1e-13)
    assert sketch.to_bytes() == GroupSketch().update(y, group, offset, weight).to_bytes()
    np.testing.assert_allclose(result.pooled.shift, cells.pooled.shift, rtol=1e-12)


def test_newton_sums_without_the_loss_are_those_with_it(straddling):
    y, group, offset = straddling
    sketch = GroupSketch().update(y, group, offset, keep_rows=True)
    shifts = np.random.default_rng(3).normal(0, 3, sketch.n_groups)
    shifts[0] = 800.0  # beyond where σ underflows
    full = sketch.evaluate_groups(shifts)
    newton = sketch.evaluate_groups(shifts, loss=False)
    rows = sketch._kept.counts > 0
    for name in ("negative", "positive", "gradient", "negative_curvature",
                 "positive_curvature"):
        assert np.array_equal(getattr(full, name), getattr(newton, name)), name
    assert np.isnan(newton.loss[rows]).all()
    assert np.array_equal(newton.loss[~rows], full.loss[~rows])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(-5, 5))
def test_adding_a_constant_to_the_offsets_subtracts_it_from_every_shift(seed, shift):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    group = rng.integers(0, 6, n)
    offset = rng.normal(0, 1.5, n)
    y = rng.random(n) < special.expit(offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = logitshift.fit_groups(y, group, offset)
        moved = logitshift.fit_groups(y, group, offset + shift)
        permuted = rng.permutation(n)
        shuffled = logitshift.fit_groups(y[permuted], group[permuted], offset[permuted])
    finite = np.isfinite(base.shift)
    assert base.status.tolist() == moved.status.tolist() == shuffled.status.tolist()
    np.testing.assert_allclose(moved.shift[finite], base.shift[finite] - shift, rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(shuffled.shift, base.shift, rtol=1e-12, atol=1e-12)
    assert math.isfinite(base.pooled.shift)


def _ulps(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|value - reference| in units of the reference's last place (subnormals' included)."""
    return np.abs(value - reference) / np.spacing(np.abs(reference))


def _exp_points() -> np.ndarray:
    rng = np.random.default_rng(11)
    half_steps = (np.arange(-1076, 1025) + 0.5) * math.log(2.0)  # where k changes
    return np.concatenate([
        rng.uniform(-760.0, 720.0, 200_000), rng.uniform(-1.0, 1.0, 50_000),
        rng.uniform(-40.0, 0.0, 50_000),
        np.concatenate([np.nextafter(half_steps, -np.inf), half_steps,
                        np.nextafter(half_steps, np.inf)]),
        rng.uniform(-745.2, -708.3, 20_000),  # subnormal results
        [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e-17, 709.782712893384,
         709.7827128933841, 709.79, 710.0, 1e308, -708.3964185322641, -708.4,
         -745.1332191019411, -745.1332191019412, -745.2, -746.0, -1e308]])


def test_the_row_kernels_exp_is_within_one_ulp_of_numpys_and_exact_at_the_edges():
    x = _exp_points()
    out = np.empty_like(x)
    _kernels.exp_values(x, out)
    with np.errstate(over="ignore"):
        reference = np.exp(x)
    ordinary = np.isfinite(reference) & (reference > 0)
    assert _ulps(out[ordinary], reference[ordinary]).max() <= 1.0
    # Overflow, underflow to zero, infinities and NaN as numpy gives them.
    assert np.array_equal(out[~ordinary], reference[~ordinary])
    specials = np.array([math.inf, -math.inf, math.nan, 800.0, -800.0])
    _kernels.exp_values(specials, got := np.empty(5))
    assert got[0] == math.inf and got[1] == 0.0 and math.isnan(got[2])
    assert got[3] == math.inf and got[4] == 0.0
    assert x.flags.writeable and np.array_equal(x, _exp_points())  # the input is unchanged


def test_the_row_kernels_exp_and_log1p_are_within_one_ulp_of_mpmath():
    mpmath.mp.dps = 40
    rng = np.random.default_rng(12)
    x = _exp_points()
    with np.errstate(over="ignore"):
        ordinary = np.isfinite(np.exp(x)) & (np.exp(x) > 0)
    points = np.concatenate([rng.choice(x[ordinary], 1500, replace=False), x[-19:][
        ordinary[-19:]]])
    got = np.empty_like(points)
    _kernels.exp_values(points, got)
    for value, result in zip(points.tolist(), got.tolist()):
        exact = mpmath.exp(mpmath.mpf(value))
        ulp = mpmath.mpf(float(np.spacing(float(exact))))
        assert abs(mpmath.mpf(result) - exact) <= ulp, value
    units = np.concatenate([rng.uniform(0, 1, 1500), np.exp(-rng.uniform(0, 745, 300)),
                            [0.0, 5e-324, 1e-300, _kernels._LOG1P_SPLIT,
                             np.nextafter(_kernels._LOG1P_SPLIT, 0.0), 0.5, 1.0]])
    logs = np.empty_like(units)
    _kernels.log1p_values(units, logs)
    for value, result in zip(units.tolist(), logs.tolist()):
        exact = mpmath.log1p(mpmath.mpf(value))
        ulp = mpmath.mpf(float(np.spacing(float(exact)))) if exact else mpmath.mpf(5e-324)
        assert abs(mpmath.mpf(result) - exact) <= ulp, value


def test_the_row_kernels_log1p_is_within_one_ulp_of_numpys():
    rng = np.random.default_rng(13)
    units = np.concatenate([rng.uniform(0, 1, 200_000), np.exp(-rng.uniform(0, 745, 50_000)),
                            rng.uniform(0.41, 0.42, 50_000), [0.0, 5e-324, 1.0]])
    out = np.empty_like(units)
    _kernels.log1p_values(units, out)
    reference = np.log1p(units)
    nonzero = reference > 0
    assert _ulps(out[nonzero], reference[nonzero]).max() <= 1.0
    assert np.array_equal(out[~nonzero], reference[~nonzero])


def test_the_row_sums_equal_the_exact_pass_to_rounding(straddling):
    y, group, offset = straddling
    sketch = GroupSketch().update(y, group, offset, keep_rows=True)
    kept = sketch._kept
    shifts = np.random.default_rng(4).normal(0, 3, sketch.n_groups)
    # Beyond where σ underflows, and infinite (a group of one label's shift).
    rows = np.flatnonzero(kept.counts)
    shifts[rows[:3]] = [800.0, -math.inf, math.inf]
    terms = sketch.evaluate_groups(shifts)
    n = _kernels.N_TERMS
    for g in np.flatnonzero(kept.counts).tolist():
        sums = np.zeros(2 * n)
        arguments = kept.arguments(kept.first[g], kept.stop[g])
        _kernels.exact_terms(*arguments, shifts[g], 0, int(kept.counts[g]), sums)
        # Each sum plus its compensation, the sum alone where it is infinite.
        exact = np.where(np.isfinite(sums[:n]), sums[:n] + sums[n:], sums[:n])
        for name, value in (("negative", exact[0]), ("positive", exact[1]),
                            ("gradient", exact[2] + exact[3]),
                            ("negative_curvature", exact[4]),
                            ("positive_curvature", exact[5]), ("loss", exact[6])):
            assert getattr(terms, name)[g] == pytest.approx(value, rel=1e-13, abs=1e-300,
                                                            nan_ok=False), (g, name)


@pytest.mark.parametrize("keep_rows", [False, True], ids=["cells", "rows kept"])
def test_counting_only_then_totalling_the_grouped_rows_gives_the_general_scans_sketch(
        straddling, keep_rows):
    # Integer labels, offsets, no weights: `group_count`, then `group_row_bounds`. Unit
    # weights take `group_scan`, which totals each row as it reads it: the same sketch.
    y, group, offset = straddling
    ones = np.ones(len(y))
    fast = GroupSketch().update(y, group, offset, keep_rows=keep_rows)
    general = GroupSketch().update(y, group, offset, ones, keep_rows=keep_rows)
    assert fast.to_bytes() == general.to_bytes()
    for name in ("_n_rows", "_sums", "_range"):
        assert np.array_equal(getattr(fast, name), getattr(general, name)), name
    # An infinite offset (right for its label) sends the fill to the general scan.
    infinite = offset.copy()
    infinite[[3, 8]] = [math.inf if y[3] else -math.inf, math.inf if y[8] else -math.inf]
    assert GroupSketch().update(y, group, infinite).to_bytes() == \
        GroupSketch().update(y, group, infinite, ones).to_bytes()


@pytest.mark.parametrize("column, row, value, message", [
    ("y", 5, 2, r"y\[5\] = 2"),
    ("offset", 7, math.nan, r"offset\[7\] is nan"),
    ("offset", 9, math.inf, r"offset\[9\]"),
])
def test_a_bad_row_found_while_counting_is_reported_as_the_general_scan_reports_it(
        column, row, value, message):
    rng = np.random.default_rng(5)
    n = 50
    data = {"y": (rng.random(n) < 0.5).astype(np.int8), "group": rng.integers(0, 4, n),
            "offset": rng.normal(0, 1, n)}
    data["y"][9] = 0  # so that offset +inf contradicts it
    data[column] = data[column].astype(float) if column == "y" else data[column]
    data[column][row] = value
    if column == "y":
        data["y"] = data["y"].astype(np.int8)
    with pytest.raises(logitshift.InputError, match=message) as counted:
        logitshift.fit_groups(data["y"], data["group"], data["offset"])
    with pytest.raises(logitshift.InputError) as general:
        logitshift.fit_groups(data["y"], data["group"], data["offset"], np.ones(n))
    assert str(counted.value) == str(general.value)
    assert counted.value.index == row


def test_fit_of_a_row_kept_group_is_that_of_the_cells_it_stands_for(straddling):
    # As before groups were kept as rows: the group's cells, filled as a fill without
    # keep_rows fills them, solved as a Sketch of its rows (shift as fit's, to the bit).
    y, group, offset = straddling
    result = logitshift.fit_groups(y, group, offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = GroupSketch().update(y, group, offset).solve()
    kept = _kept_counts(result._curves)
    for index in np.flatnonzero(kept)[:12].tolist():
        key = result.groups[index]
        assert result.fit_of(key).to_dict() == cells.fit_of(key).to_dict(), key
        rows = group == key
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alone = logitshift.fit(y[rows], offset[rows], method="sketch")
        assert result.fit_of(key).shift == alone.shift, key


def test_a_file_read_in_one_batch_is_fit_as_its_rows_in_memory(straddling, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    y, group, offset = straddling
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y.astype(np.int8), "g": group, "f": offset}), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_file = logitshift.fit_groups_file(path, "y", "g", "f", progress=False)
        in_memory = logitshift.fit_groups(y, group, offset)
    assert from_file.groups.tolist() == in_memory.groups.tolist()
    for name in ("shift", "se", "loss", "loss_at_zero"):
        assert np.array_equal(getattr(from_file, name), getattr(in_memory, name)), name
    assert from_file.pooled.shift == in_memory.pooled.shift
