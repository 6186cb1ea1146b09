"""numba kernels, and nothing else: the one-pass sketch fill, the exact pass, the sketch sums.

Each kernel reads the caller's arrays in place, whatever their dtype (float32/float64
offsets; integer or float labels; float64 weights), over a range of rows ``[start, stop)``,
and writes into the output row it is given: the caller runs one range per core in threads
(the kernels release the GIL) and combines the rows. Nothing the size of the data is
allocated. In `totals` and `exact_terms` the sums run plainly over blocks of rows and the
blocks are compensated (Neumaier), so they stay accurate over billions of rows; `fill` keeps
its sums per table cell, plainly (exact for integer weights and 0/1 labels). The numpy reference
(`losses.py`, `solve.ArrayCurve`, `sketch.fill_reference`) is the oracle the tests hold
these kernels to.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba as nb
import numpy as np

__all__ = [
    "N_STATS", "N_TERMS", "N_LOG", "N_SLOPE_TERMS", "totals", "fill", "fill_unweighted",
    "count_labels", "exact_terms", "sketch_terms", "exact_log_parts", "sketch_log_parts",
    "slope_terms", "derivative_coefficients", "compile_vectorized", "polynomial_derivatives",
    "sketch_polynomials", "group_scan", "group_scatter", "group_cell_counts", "group_fill",
    "group_terms", "fill_extras", "ordered_pairs", "pool_cells", "merge_cells",
    "group_derivatives", "group_integrals", "N_INTEGRAL", "group_row_terms",
    "group_row_newton", "group_row_totals", "exp_values", "log1p_values", "group_count",
    "group_row_bounds", "group_fill_unweighted", "spline_terms", "spline_differences",
]

_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy"}
# Small helpers are inlined in numba's IR: as separate functions they cost 2-3 ns a call.
_HELPER = dict(_OPTIONS, inline="always")

#: Rows summed plainly before a block's sum joins the compensated total.
_BLOCK = 256

# Columns of the statistics `totals` and `fill` write (module constants, so numba folds them).
S_WEIGHT, S_WEIGHT_C = 0, 1  # Σ w (value, compensation)
S_POSITIVES, S_POSITIVES_C = 2, 3  # Σ w y
S_ACTIVE_NEG, S_ACTIVE_NEG_C = 4, 5  # Σ w (1 - y) over rows with a finite offset
S_ACTIVE_POS, S_ACTIVE_POS_C = 6, 7  # Σ w y over rows with a finite offset
S_WEIGHTED_OFFSET, S_WEIGHTED_OFFSET_C = 8, 9  # Σ w f over rows with a finite offset
S_OFFSET_MIN, S_OFFSET_MAX = 10, 11  # over rows with w > 0 and a finite offset
S_ANCHOR, S_LOW, S_HIGH = 12, 13, 14  # a fill's table window: first cell, rows used
S_OVERFLOW = 15  # rows whose cell fell outside the window
S_FIRST_BAD = 16  # first row that fails validation, or -1
N_STATS = 17

#: negative, positive, gradient (certain part), gradient (tails), negative and positive
#: curvature, loss: the fields of `solve.Terms`, the gradient in two parts.
N_TERMS = 7

#: The log passes write, per label part (negative, then positive), a log-sum-exp in progress:
#: anchor, residual (the pivot's), the sum of the terms over the pivot and its compensation,
#: the same sum weighted by the slopes and its compensation.
N_LOG = 12
_LOG_FIELDS = 6
#: As `solve._DEEP`: below it, log σ(x) is kept as its anchor (an offset) plus the rest.
_DEEP = -700.0
# The log passes run only on separable data, where they are the whole cost of an evaluation;
# IEEE semantics are what their exactness rests on.
_LOG_OPTIONS = dict(_OPTIONS, fastmath=False)
_LOG_HELPER = dict(_LOG_OPTIONS, inline="always")


@nb.njit(**_HELPER)
def _add(total, compensation, value):
    """Neumaier's compensated addition; returns the new (total, compensation)."""
    t = total + value
    if abs(total) >= abs(value):
        compensation += (total - t) + value
    else:
        compensation += (value - t) + total
    return t, compensation


@nb.njit(**_HELPER)
def _valid(y, f, w):
    """A row passes unless it has a NaN, a label outside [0, 1], a negative or infinite
    weight, or an infinite offset that contradicts its label."""
    ok = (y >= 0.0) & (y <= 1.0) & (w >= 0.0) & (w < math.inf) & (f == f)
    if ok and not math.isfinite(f) and w > 0.0:
        ok = (f > 0.0 and y == 1.0) or (f < 0.0 and y == 0.0)
    return ok


@nb.njit(**_OPTIONS)
def totals(offsets, has_offsets, constant_offset, labels, weights, has_weights, start, stop,
           out):
    """Validate rows ``[start, stop)`` and write their statistics (no tables) into ``out``."""
    # Running (value, compensation) pairs, in memory: in registers they crowd the loop.
    acc = np.zeros(S_WEIGHTED_OFFSET_C + 1)
    offset_min = math.inf
    offset_max = -math.inf
    first_bad = -1
    for block in range(start, stop, _BLOCK):
        b_weight = b_positives = b_neg = b_pos = b_offset = 0.0
        for i in range(block, min(stop, block + _BLOCK)):
            y = float(labels[i])
            f = float(offsets[i]) if has_offsets else constant_offset
            w = float(weights[i]) if has_weights else 1.0
            if not _valid(y, f, w):
                first_bad = i
                break
            pos = w * y
            b_weight += w
            b_positives += pos
            if w == 0.0 or not math.isfinite(f):
                continue  # no weight, or a certain row that agrees with its label
            b_neg += w * (1.0 - y)  # exact where y is near 1; w - w y is not
            b_pos += pos
            b_offset += w * f
            if f < offset_min:
                offset_min = f
            if f > offset_max:
                offset_max = f
        acc[0], acc[1] = _add(acc[0], acc[1], b_weight)
        acc[2], acc[3] = _add(acc[2], acc[3], b_positives)
        acc[4], acc[5] = _add(acc[4], acc[5], b_neg)
        acc[6], acc[7] = _add(acc[6], acc[7], b_pos)
        acc[8], acc[9] = _add(acc[8], acc[9], b_offset)
        if first_bad >= 0:
            break
    out[:] = 0.0
    out[S_WEIGHT:S_WEIGHTED_OFFSET_C + 1] = acc
    out[S_OFFSET_MIN] = offset_min
    out[S_OFFSET_MAX] = offset_max
    out[S_FIRST_BAD] = first_bad


@nb.njit(**_OPTIONS)
def count_labels(labels, start, stop, out):
    """Integer labels without weights: ``out = (Σ y, first bad row or -1)``, exactly.

    Branch-free, so it runs at memory speed; a bad row is only located once one is known.
    """
    positives = 0
    bad = 0
    for i in range(start, stop):
        value = labels[i]
        positives += value
        bad += (value < 0) | (value > 1)
    out[0] = positives
    out[1] = -1
    if bad:
        for i in range(start, stop):
            if labels[i] < 0 or labels[i] > 1:
                out[1] = i
                break


@contextmanager
def _straight_line_vectorizer() -> Iterator[None]:
    saved = nb.config.SLP_VECTORIZE
    nb.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        nb.config.SLP_VECTORIZE = saved


def compile_vectorized(kernel: Any, args: tuple) -> None:
    """Compile ``kernel`` for the types of ``args`` (unless it has been) with LLVM's
    straight-line (SLP) vectorizer on.

    numba leaves that pass off (``NUMBA_SLP_VECTORIZE=0``) and offers no per-function switch;
    for `fill` it turns the eight updates of a cell into two vector ones (measured 11% faster,
    the same results to the bit). The setting is numba's global one, restored at once; a
    function another thread compiles meanwhile is merely vectorized too. The compiled code is
    cached on disk like any other.
    """
    if not hasattr(nb.config, "SLP_VECTORIZE"):
        return
    signature = tuple(kernel.typeof_pyval(arg) for arg in args)
    if signature not in kernel.overloads:
        with _straight_line_vectorizer():
            kernel.compile(signature)


@nb.njit(**_OPTIONS)
def fill(offsets, has_offsets, constant_offset, labels, weights, has_weights, start, stop,
         inv_width, width, order, table, out):
    """Validate rows ``[start, stop)`` and add them to a dense Taylor table.

    ``table`` (zeros on entry) covers ``2 * half`` cells from ``anchor - half``, the anchor
    being the cell of the first row with a finite offset; cell ``k`` holds at
    ``(2 k + label) * order + j`` the moments ``Σ w_label d^j`` of its rows,
    ``d = f - (cell + 1/2) width``, ``w_label = w (1 - y)`` (label 0) or ``w y`` (label 1).
    ``out`` gets the weight of every row, but the positives only of rows outside the table
    (infinite offsets); rows of finite offset outside the window are only counted
    (``OVERFLOW``): the caller takes the rest from the table and redoes those.

    The hot path is kept short: a NaN or infinite offset fails the window test like a far
    one, and only then is it told apart.
    """
    window = table.shape[0] // (2 * order)
    half = window // 2
    anchor = 0.0
    for i in range(start, stop):
        f = float(offsets[i]) if has_offsets else constant_offset
        if math.isfinite(f):
            anchor = np.floor(f * inv_width)  # a float: math.floor would be an int64
            break
    origin = anchor - half
    offset_min = math.inf
    offset_max = -math.inf
    low = window
    high = -1
    overflow = 0
    first_bad = -1
    # Unweighted, every row weighs 1; weighted, the weights are summed on the way.
    weight = 0.0 if has_weights else float(stop - start)
    outside_positives = 0.0
    for i in range(start, stop):
        # An unsigned index: numba adds no test for a negative (wrap-around) index to each
        # read (measured 9% faster).
        row = np.uint64(i)
        y = float(labels[row])
        f = float(offsets[row]) if has_offsets else constant_offset
        if not (y >= 0.0 and y <= 1.0):
            first_bad = i
            break
        w = 1.0
        if has_weights:
            w = float(weights[row])
            if not (w >= 0.0 and w < math.inf) or f != f:
                first_bad = i
                break
            if w == 0.0:
                continue
            weight += w
        cell = np.floor(f * inv_width)
        position = cell - origin  # `sketch._fill_outside_windows` repeats this exactly
        if not (position >= 0.0 and position < window):
            if f != f:
                first_bad = i
                break
            if math.isfinite(f):
                overflow += 1
            elif (f > 0.0 and y == 1.0) or (f < 0.0 and y == 0.0):
                outside_positives += w * y  # certain, and right: no loss at any shift
            else:
                first_bad = i
                break
            continue
        k = int(position)
        if k < low:
            low = k
        if k > high:
            high = k
        if f < offset_min:
            offset_min = f
        if f > offset_max:
            offset_max = f
        d = f - (cell + 0.5) * width
        pos = w * y
        neg = w * (1.0 - y)
        base = 2 * k * order
        if pos == 0.0 or neg == 0.0:
            # One label part: its half of the cell's row, chosen without a branch.
            base += order * int(pos != 0.0)
            d2 = d * d
            if order == 8:
                # The default order, written out: powers from a tree of depth 3 and no loop
                # (measured 25-30% faster than the loop below). Compiled with LLVM's
                # straight-line vectorizer (`compile_vectorized`), the eight adjacent
                # updates become two four-wide ones.
                d4 = d2 * d2
                p1 = w * d
                p2 = w * d2
                p3 = p1 * d2
                cell = table[base:base + 8]
                cell[0] += w
                cell[1] += p1
                cell[2] += p2
                cell[3] += p3
                cell[4] += w * d4
                cell[5] += p1 * d4
                cell[6] += p2 * d4
                cell[7] += p3 * d4
                continue
            even = w  # two interleaved chains of powers: half the latency of one
            odd = w * d
            for j in range(0, order - 1, 2):
                table[base + j] += even
                table[base + j + 1] += odd
                even *= d2
                odd *= d2
            if order % 2:
                table[base + order - 1] += even
        else:
            power = 1.0
            for j in range(order):
                table[base + j] += neg * power
                table[base + order + j] += pos * power
                power *= d
    out[:] = 0.0
    out[S_WEIGHT] = weight
    out[S_POSITIVES] = outside_positives
    out[S_OFFSET_MIN] = offset_min
    out[S_OFFSET_MAX] = offset_max
    out[S_ANCHOR] = anchor
    out[S_LOW] = low
    out[S_HIGH] = high
    out[S_OVERFLOW] = overflow
    out[S_FIRST_BAD] = first_bad



@nb.njit(nogil=True, cache=True, error_model="numpy", fastmath=False, inline="always")
def _add_powers(table, base, order, d):
    """``table[base + j] += d**j`` for ``j < order``, the powers formed as `fill` forms them
    (so the two kernels agree to the bit)."""
    d2 = d * d
    if order == 8:
        d3 = d * d2
        d4 = d2 * d2
        table[base] += 1.0
        table[base + 1] += d
        table[base + 2] += d2
        table[base + 3] += d3
        table[base + 4] += d4
        table[base + 5] += d * d4
        table[base + 6] += d2 * d4
        table[base + 7] += d3 * d4
        return
    even = 1.0
    odd = d
    for j in range(0, order - 1, 2):
        table[base + j] += even
        table[base + j + 1] += odd
        even *= d2
        odd *= d2
    if order % 2:
        table[base + order - 1] += even


@nb.njit(nogil=True, cache=True, error_model="numpy", fastmath={"nnan", "nsz"})
def _offset_range(offsets, start, stop, low, high):
    """``(min(low, offsets[start:stop]), max(high, ...))``, vectorized.

    Only for rows already known to be finite: the ``nnan`` flag lets LLVM turn the two
    running comparisons into vector min/max (it may not where a NaN could decide the answer),
    and ``nsz`` lets it pick either zero of a tie between -0.0 and 0.0. Its own explicit
    ``fastmath`` keeps numba from compiling it with its caller's flags.
    """
    for i in range(np.uint64(start), np.uint64(stop)):
        value = float(offsets[i])
        low = value if value < low else low
        high = value if value > high else high
    return low, high


@nb.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)
def fill_unweighted(offsets, labels, start, stop, inv_width, width, order, table, out):
    """`fill` for integer labels (0/1; bool viewed as uint8), an offset per row, no weights.

    The same table and statistics as `fill` with every weight 1, to the bit, about twice as
    fast. Rows go in blocks of `_BLOCK`. A first, branch-free loop over a block (which LLVM
    vectorizes) computes every row's cell position, remainder and table index, and counts
    the rows that fail the window or the label test; a NaN or infinite offset fails the
    window test. A block without such rows is then scattered into the table with no test
    at all; a block with one is redone row by row, as `fill` would (overflow, certain rows,
    the first bad row).
    """
    window = table.shape[0] // (2 * order)
    half = window // 2
    anchor = 0.0
    for i in range(start, stop):
        f = float(offsets[i])
        if math.isfinite(f):
            anchor = np.floor(f * inv_width)
            break
    origin = anchor - half
    row_floats = float(2 * order)
    label_floats = float(order)
    offset_min = math.inf
    offset_max = -math.inf
    overflow = 0
    first_bad = -1
    outside_positives = 0.0
    positions = np.empty(_BLOCK)
    remainders = np.empty(_BLOCK)
    # int32: AVX2 converts four doubles to int32 in one instruction, but not to int64.
    index = np.empty(_BLOCK, dtype=np.int32)
    for block in range(start, stop, _BLOCK):
        size = min(stop - block, _BLOCK)
        first = np.uint64(block)
        good = 0
        for j in range(np.uint64(size)):
            f = float(offsets[first + j])
            y = labels[first + j]
            cell = np.floor(f * inv_width)
            position = cell - origin
            inside = (position >= 0.0) & (position < window)
            good += inside & (y >= 0) & (y <= 1)
            positions[j] = position
            remainders[j] = f - (cell + 0.5) * width
            # Clamped where outside: a float beyond int32 has no defined conversion.
            index[j] = np.int32((position * row_floats + y * label_floats) if inside else 0.0)
        if good == size:
            offset_min, offset_max = _offset_range(offsets, block, block + size, offset_min,
                                                   offset_max)
            if order == 8:
                for j in range(np.uint64(size)):
                    d = remainders[j]
                    d2 = d * d
                    d3 = d * d2
                    d4 = d2 * d2
                    # Eight adjacent updates: two four-wide ones under `compile_vectorized`.
                    base = np.uint64(index[j])
                    table[base] += 1.0
                    table[base + np.uint64(1)] += d
                    table[base + np.uint64(2)] += d2
                    table[base + np.uint64(3)] += d3
                    table[base + np.uint64(4)] += d4
                    table[base + np.uint64(5)] += d * d4
                    table[base + np.uint64(6)] += d2 * d4
                    table[base + np.uint64(7)] += d3 * d4
            else:
                for j in range(size):
                    _add_powers(table, index[j], order, remainders[j])
            continue
        for j in range(size):
            i = block + j
            f = float(offsets[i])
            y = labels[i]
            if not (y >= 0 and y <= 1):
                first_bad = i
                break
            position = positions[j]
            if not (position >= 0.0 and position < window):
                if f != f:
                    first_bad = i
                    break
                if math.isfinite(f):
                    overflow += 1
                elif (f > 0.0 and y == 1) or (f < 0.0 and y == 0):
                    outside_positives += float(y)
                else:
                    first_bad = i
                    break
                continue
            if f < offset_min:
                offset_min = f
            if f > offset_max:
                offset_max = f
            _add_powers(table, index[j], order, remainders[j])
        if first_bad >= 0:
            break
    out[:] = 0.0
    out[S_WEIGHT] = float(stop - start)
    out[S_POSITIVES] = outside_positives
    out[S_OFFSET_MIN] = offset_min
    out[S_OFFSET_MAX] = offset_max
    out[S_ANCHOR] = anchor
    if offset_min <= offset_max:
        # Cells are monotone in the offset: the extreme cells are those of the extremes.
        out[S_LOW] = np.floor(offset_min * inv_width) - origin
        out[S_HIGH] = np.floor(offset_max * inv_width) - origin
    else:
        out[S_LOW] = window
        out[S_HIGH] = -1
    out[S_OVERFLOW] = overflow
    out[S_FIRST_BAD] = first_bad


@nb.njit(nogil=True, cache=True, error_model="numpy", fastmath=False, inline="always")
def _add_extras(squared, histogram, b, d, fraction, w, y, order, bins):
    """One row's part of the optional tables (see `fill_extras`)."""
    if squared.shape[0] > 0:
        w2 = w * w
        parts = (w2 * (1.0 - y) * (1.0 - y), w2 * y * (1.0 - y), w2 * y * y)
        for part in range(3):
            power = parts[part]
            if power == 0.0:
                continue
            for j in range(order):
                squared[b, part, j] += power
                power *= d
    if histogram.shape[0] > 0:
        k = min(max(np.int64(np.floor(fraction * bins)), 0), bins - 1)
        if y == 0.0 or y == 1.0:  # one add, in the label's slot: no branch on the label
            histogram[b, k, np.int64(y)] += w
        else:
            histogram[b, k, 0] += w * (1.0 - y)
            histogram[b, k, 1] += w * y


@nb.njit(**_OPTIONS)
def fill_extras(offsets, has_offsets, constant_offset, labels, weights, has_weights, scale,
                start, stop, centres, lookup, first_cell, inv_width, width, squared,
                histogram):
    """Add rows ``[start, stop)``, already validated, to a sketch's optional per-cell tables.

    Each row of positive weight and finite offset goes to the cell of ``centres`` (sorted)
    that holds it, as `fill` places it: ``lookup[k - first_cell]`` for grid cell ``k``
    where ``lookup`` covers it, else a binary search (cells far out, or beyond the grid).
    ``squared`` (cells, 3, order), unless empty, gets the moments ``Σ v d^j`` with
    ``v = w² (1 - y)², w² y (1 - y), w² y²``: what a sandwich variance needs.
    ``histogram`` (cells, bins, 2), unless empty, gets ``w (1 - y)`` and ``w y`` in
    ``bins`` equal sub-bins of the cell. Weights are multiplied by ``scale`` (the sketch's
    units) first.

    As in `fill_unweighted`, rows go in blocks: a first loop finds every row's cell, and a
    block whose rows all lie in ``lookup`` with positive weight is then added with no test;
    any other block is redone row by row.
    """
    n_cells = centres.shape[0]
    span = lookup.shape[0]
    order = squared.shape[2]
    bins = histogram.shape[1]
    want_squared = squared.shape[0] > 0
    cell_of = np.empty(_BLOCK, dtype=np.int64)
    fractions = np.empty(_BLOCK)
    for block in range(start, stop, _BLOCK):
        size = min(stop - block, _BLOCK)
        good = 0
        for j in range(size):
            i = block + j
            w = (weights[i] if has_weights else 1.0) * scale
            f = float(offsets[i]) if has_offsets else constant_offset
            scaled = f * inv_width
            cell = np.floor(scaled)  # a float: math.floor would overflow an int64
            position = cell - first_cell
            inside = (position >= 0.0) & (position < span) & (w > 0.0)
            good += inside
            cell_of[j] = lookup[np.int64(position) if inside else 0]
            fractions[j] = scaled - cell  # exact: where in the cell, in [0, 1)
        if good == size:
            if not want_squared and not has_weights:  # the common case: a scatter alone
                for j in range(size):
                    y = float(labels[block + j])
                    k = min(max(np.int64(np.floor(fractions[j] * bins)), 0), bins - 1)
                    if y == 0.0 or y == 1.0:
                        histogram[cell_of[j], k, np.int64(y)] += scale
                    else:
                        histogram[cell_of[j], k, 0] += scale * (1.0 - y)
                        histogram[cell_of[j], k, 1] += scale * y
                continue
            for j in range(size):
                i = block + j
                b = cell_of[j]
                f = float(offsets[i]) if has_offsets else constant_offset
                w = (weights[i] if has_weights else 1.0) * scale
                _add_extras(squared, histogram, b, f - centres[b], fractions[j], w,
                            float(labels[i]), order, bins)
            continue
        for j in range(size):
            i = block + j
            w = (weights[i] if has_weights else 1.0) * scale
            f = float(offsets[i]) if has_offsets else constant_offset
            if not (w > 0 and math.isfinite(f)):
                continue
            cell = np.floor(f * inv_width)
            position = cell - first_cell
            if 0.0 <= position < span:
                b = lookup[np.int64(position)]
            else:
                centre = (cell + 0.5) * width
                if not math.isfinite(centre):
                    centre = f
                low, high = 0, n_cells  # the first centre >= centre
                while low < high:
                    middle = (low + high) >> 1
                    if centres[middle] < centre:
                        low = middle + 1
                    else:
                        high = middle
                b = low
                if b == n_cells or (b > 0 and centres[b] != centre
                                    and centre - centres[b - 1] < centres[b] - centre):
                    b -= 1
            d = f - centres[b]
            _add_extras(squared, histogram, b, d, d * inv_width + 0.5, w, float(labels[i]),
                        order, bins)


@nb.njit(**_OPTIONS)
def pool_cells(index, tables, out, counts):
    """Add row ``b`` of ``tables`` (``(cells, m)``) into row ``index[b]`` of ``out`` (zeros)
    and count it in ``counts``: equal cells combined in the order they come, in one pass."""
    m = tables.shape[1]
    for b in range(index.shape[0]):
        k = index[b]
        counts[k] += 1
        for j in range(m):
            out[k, j] += tables[b, j]


@nb.njit(**_OPTIONS)
def ordered_pairs(negative, positive):
    """For sorted ``negative`` and ``positive`` offsets: the pairs (one of each) with the
    negative below, and those tied, as exact integer counts, in one merge."""
    below = 0
    ties = 0
    j = 0
    n = negative.shape[0]
    i = 0
    while i < positive.shape[0]:
        value = positive[i]
        while j < n and negative[j] < value:
            j += 1
        k = j
        while k < n and negative[k] == value:
            k += 1
        m = i
        while m < positive.shape[0] and positive[m] == value:
            m += 1
        below += (m - i) * j
        ties += (m - i) * (k - j)
        i = m
    return below, ties


@nb.njit(**_OPTIONS)
def exact_terms(offsets, has_offsets, constant_offset, labels, weights, has_weights, shift,
                start, stop, out):
    """The sums of `solve.Terms` at ``shift`` over rows ``[start, stop)``, exactly.

    Writes ``out[2 * N_TERMS]``: each sum and its compensation. The gradient comes in two
    parts, the weights of certain mistakes and the tails (see `solve.ArrayCurve.evaluate`).
    Rows of zero weight or infinite offset add nothing.
    """
    out[:] = 0.0
    sums = np.empty(N_TERMS)
    for block in range(start, stop, _BLOCK):
        sums[:] = 0.0
        for i in range(block, min(stop, block + _BLOCK)):
            f = float(offsets[i]) if has_offsets else constant_offset
            w = float(weights[i]) if has_weights else 1.0
            if w == 0.0 or not math.isfinite(f):
                continue
            y = float(labels[i])
            neg = w * (1.0 - y)
            pos = w * y
            z = f + shift
            e = math.exp(-abs(z))
            near = 1.0 / (1.0 + e)
            tail = e * near
            curvature = near * tail
            if z > 0:
                sums[0] += neg * near
                sums[1] += pos * tail
                sums[2] += neg
                sums[3] -= w * tail
            else:
                sums[0] += neg * tail
                sums[1] += pos * near
                sums[2] -= pos
                sums[3] += w * tail
            sums[4] += neg * curvature
            sums[5] += pos * curvature
            # softplus(±z) = max(±z, 0) + log1p(e); a label part of weight 0 adds nothing.
            common = math.log1p(e)
            loss = 0.0
            if neg > 0.0:
                loss += neg * (max(z, 0.0) + common)
            if pos > 0.0:
                loss += pos * (max(-z, 0.0) + common)
            sums[6] += loss
        for j in range(N_TERMS):
            out[j], out[N_TERMS + j] = _add(out[j], out[N_TERMS + j], sums[j])


@nb.njit(**_HELPER)
def _derivatives_at(u, coefficients, derivatives):
    """Fill ``derivatives[j] = σ^(j)(-|u|)`` for ``j < len(derivatives)``, each a polynomial
    in ``σ(-|u|) <= 1/2`` (rows of `derivative_coefficients`, by Horner's rule), and return
    ``exp(-|u|)``."""
    tail = math.exp(-abs(u))
    s = tail / (1.0 + tail)  # σ(-|u|)
    count = derivatives.shape[0]
    for j in range(count):
        p = 0.0
        # P_j has degree j + 1: Horner from its leading coefficient (the zeros above it
        # would add nothing but time).
        for k in range(min(j + 1, coefficients.shape[1] - 1), -1, -1):
            p = p * s + coefficients[j, k]
        derivatives[j] = p
    return tail


def derivative_coefficients(count: int) -> np.ndarray:
    """``C[j, k]``: ``σ^(j)(z) = Σ_k C[j, k] σ(z)^k`` for ``j < count`` (exact integers).

    From ``σ' = σ(1 - σ)``: if ``σ^(j) = P_j(σ)`` then ``σ^(j+1) = P_j'(σ) σ (1 - σ)``.
    """
    coefficients = np.zeros((count, count + 1))
    coefficients[0, 1] = 1.0
    for j in range(1, count):
        previous = coefficients[j - 1]
        derivative = np.arange(1, count + 1) * previous[1:]  # P' coefficients, degree k-1
        # multiply by s - s^2
        coefficients[j, 1:] += derivative
        coefficients[j, 2:] -= derivative[:-1]
    return coefficients


#: Cells whose derivatives `_derivative_block` forms together.
_CELL_BLOCK = 64


@nb.njit(**_HELPER)
def _derivative_block(centres, first, m, shift, coefficients, tails, small, derivatives):
    """`_derivatives_at` for the ``m`` cells from ``first`` at once, to the bit:
    ``tails[c] = exp(-|u|)`` and ``derivatives[j, c] = σ^(j)(-|u|)`` for ``j <
    len(derivatives)``, ``u = centres[first + c] + shift``. Horner's rule runs across the
    cells, an inner loop LLVM vectorizes (a cell's own chain of multiply-adds does not):
    sketch_terms is 1.6× faster for it."""
    for c in range(m):
        tail = math.exp(-abs(centres[first + c] + shift))
        tails[c] = tail
        small[c] = tail / (1.0 + tail)  # σ(-|u|)
    top = coefficients.shape[1] - 1
    for j in range(derivatives.shape[0]):
        row = derivatives[j]
        degree = min(j + 1, top)
        # p = 0 · s + C[j, degree] is C[j, degree] itself: start there.
        lead = coefficients[j, degree]
        for c in range(m):
            row[c] = lead
        for k in range(degree - 1, -1, -1):
            coefficient = coefficients[j, k]
            for c in range(m):
                row[c] = row[c] * small[c] + coefficient


@nb.njit(**_OPTIONS)
def sketch_terms(centres, tables, width, shift, coefficients, factorials, per_cell):
    """The sums of `solve.Terms` at ``shift`` from the Taylor tables alone.

    ``centres[b]`` is a cell's centre, ``tables[b, label, j] = Σ w_label d^j``. With ``u`` the
    cell centre plus the shift, every sum is ``Σ_j g^(j)(u) / j! · tables[b, ·, j]`` for its
    function ``g``. All derivatives come from ``D_j = σ^(j)(-|u|)``, polynomials in
    ``σ(-|u|) <= 1/2`` and so accurate in the tails; mirror symmetry gives the other side.
    Cells wholly on one side of ``z = 0`` split their gradient into certain weight and tails
    as the exact pass does. Returns ``(N_TERMS, 2)``: each sum and its compensation. Unless
    ``per_cell`` is empty, it gets each cell's two label parts, ``Σ w (1 - y) σ(z)`` and
    ``Σ w y σ(-z)``.
    """
    order = tables.shape[2]
    out = np.zeros((N_TERMS, 2))
    _sketch_terms_into(centres, tables, width, shift, coefficients, factorials, per_cell, out,
                       np.empty(N_TERMS), np.empty(_CELL_BLOCK), np.empty(_CELL_BLOCK),
                       np.empty((order + 1, _CELL_BLOCK)))
    return out


@nb.njit(**_HELPER)
def _sketch_terms_into(centres, tables, width, shift, coefficients, factorials, per_cell, out,
                       values, exps, small, derivatives):
    """`sketch_terms` into ``out`` (zeroed by the caller), with its work arrays given: a
    caller that sums many small groups allocates them once (on groups of three cells, the
    five allocations a group were about 30% of `group_terms`' time)."""
    n_cells = tables.shape[0]
    order = tables.shape[2]
    keep_cells = per_cell.shape[0] > 0
    half_width = 0.5 * width
    for first in range(0, n_cells, _CELL_BLOCK):
        m = min(_CELL_BLOCK, n_cells - first)
        _derivative_block(centres, first, m, shift, coefficients, exps, small, derivatives)
        for c in range(m):
            b = first + c
            u = centres[b] + shift
            tail = exps[c]
            right = u > 0
            negative = 0.0
            positive = 0.0
            tails = 0.0
            curv_neg = 0.0
            curv_pos = 0.0
            loss = 0.0
            # j = 0 separately: values, not derivatives, of σ and softplus.
            m_neg = tables[b, 0, 0]
            m_pos = tables[b, 1, 0]
            far = derivatives[0, c]
            near = 1.0 - far
            softplus_small = math.log1p(tail)  # softplus(-|u|)
            # (m * inf where m = 0 would be nan: an empty label part has no loss.)
            if right:
                negative += near * m_neg
                positive += far * m_pos
                if m_neg != 0.0:
                    loss += m_neg * (u + softplus_small)
                loss += m_pos * softplus_small
            else:
                negative += far * m_neg
                positive += near * m_pos
                loss += m_neg * softplus_small
                if m_pos != 0.0:
                    loss += m_pos * (softplus_small - u)
            curv_neg += derivatives[1, c] * m_neg
            curv_pos += derivatives[1, c] * m_pos
            # Tails of the gradient: Σ_j t^(j)(u)/j! (M_neg + M_pos)_j with t = σ(-|z|) on
            # this side.
            tails += far * (m_neg + m_pos)
            sign = 1.0
            for j in range(1, order):
                m_neg = tables[b, 0, j] / factorials[j]
                m_pos = tables[b, 1, j] / factorials[j]
                d_j = derivatives[j, c]
                # σ^(j)(u) = D_j for u <= 0 and (-1)^(j+1) D_j for u > 0;
                # (σ(-·))^(j)(u) = (-1)^j σ^(j)(-u).
                sign = -sign  # (-1)^j
                if right:
                    up = -sign * d_j  # σ^(j)(u)
                    down = sign * d_j  # (σ(-·))^(j)(u)
                    curv = sign * derivatives[j + 1, c]  # σ^(j+1)(u)
                else:
                    up = d_j
                    down = -d_j
                    curv = derivatives[j + 1, c]
                negative += up * m_neg
                positive += down * m_pos
                curv_neg += curv * m_neg
                curv_pos += curv * m_pos
                tails += (down if right else up) * (m_neg + m_pos)
                # softplus^(j) = σ^(j-1), and softplus(-z) = softplus(z) - z.
                if right:
                    sp_up = 1.0 - derivatives[0, c] if j == 1 else sign * derivatives[j - 1, c]
                    sp_down = sign * derivatives[j - 1, c]
                else:
                    sp_up = derivatives[j - 1, c]
                    sp_down = derivatives[0, c] - 1.0 if j == 1 else derivatives[j - 1, c]
                loss += sp_up * m_neg + sp_down * m_pos
            if keep_cells:
                per_cell[b, 0] = negative
                per_cell[b, 1] = positive
            if abs(u) > half_width:
                # Every row of the cell is on one side: weight of certain mistakes plus tails.
                if right:
                    certain = tables[b, 0, 0]
                    tails = -tails
                else:
                    certain = -tables[b, 1, 0]
            else:
                certain = 0.0
                tails = negative - positive
            values[0] = negative
            values[1] = positive
            values[2] = certain
            values[3] = tails
            values[4] = curv_neg
            values[5] = curv_pos
            values[6] = loss
            for i in range(N_TERMS):
                out[i, 0], out[i, 1] = _add(out[i, 0], out[i, 1], values[i])


#: loss; the gradient in the intercept and in the slope, each as certain weight and tails;
#: the three entries of the Hessian: the fields of `slope.SlopeTerms`.
N_SLOPE_TERMS = 8


@nb.njit(**_OPTIONS)
def slope_terms(centres, tables, width, intercept, slope, coefficients, factorials):
    """The sums of the logistic recalibration ``z = intercept + slope * offset`` from the
    Taylor tables alone.

    A row of cell ``b`` has ``z = u + slope * d`` with ``u = intercept + slope * centres[b]``,
    so every sum ``Σ w g(z) d^k`` is ``Σ_j g^(j)(u) slope^j / j! · tables[b, ·, j + k]``.
    As in `sketch_terms`, the derivatives come from ``D_j = σ^(j)(-|u|)`` (polynomials in
    ``σ(-|u|) <= 1/2``): each label part is written with the function that is small on
    ``u``'s side, ``t = σ(-z)`` where ``u > 0`` and ``t = σ(z)`` where ``u <= 0``, so that the
    gradient is certain weight plus tails and never a difference of near-equal sums.
    The offset's part ``Σ w (σ(z) - y) offset`` is ``c · Σ_cell g + Σ_cell g d``: the second
    sum uses one moment more than the first, so its series has one term fewer, on terms
    ``|d| <= width / 2`` times smaller. Returns ``(N_SLOPE_TERMS, 2)``: sums and their
    compensations, in the order loss, intercept gradient (certain, tails), slope gradient
    (certain, tails), Hessian (intercept², intercept·slope, slope²).
    """
    n_cells, _, order = tables.shape
    out = np.zeros((N_SLOPE_TERMS, 2))
    derivatives = np.empty(order + 1)
    scaled = np.empty((2, order))  # slope^j / j! · tables[b, label, j]
    values = np.empty(N_SLOPE_TERMS)
    t_0 = np.empty(2)  # per label part: Σ w t(z), Σ w t(z) d, Σ w q(z)
    t_1 = np.empty(2)
    q = np.empty(2)
    h_k = np.empty(3)  # Σ w h(z) d^k
    powers = np.empty(order)
    power = 1.0
    for j in range(order):
        powers[j] = power / factorials[j]
        power *= slope
    for b in range(n_cells):
        c = centres[b]
        u = intercept + slope * c
        tail = _derivatives_at(u, coefficients, derivatives)
        right = u > 0
        for label in range(2):
            for j in range(order):
                scaled[label, j] = powers[j] * tables[b, label, j]
        # The small function t of this side, its derivatives t_j, those of the Hessian
        # h = σ σ(-·) (h_j = σ^(j+1)(u)) and of softplus of t's argument (q_j).
        t_0[:] = 0.0
        t_1[:] = 0.0
        h_k[:] = 0.0
        softplus_small = math.log1p(tail)  # softplus(-|u|)
        q[0] = softplus_small * scaled[0, 0]
        q[1] = softplus_small * scaled[1, 0]
        sign = 1.0
        for j in range(order):
            if right:
                t_j = sign * derivatives[j]  # (σ(-·))^(j)(u) = (-1)^j σ^(j)(-u)
                h_j = sign * derivatives[j + 1]
                q_j = sign * derivatives[j - 1] if j > 0 else 0.0
            else:
                t_j = derivatives[j]
                h_j = derivatives[j + 1]
                q_j = derivatives[j - 1] if j > 0 else 0.0
            both = scaled[0, j] + scaled[1, j]
            for label in range(2):
                t_0[label] += t_j * scaled[label, j]
                q[label] += q_j * scaled[label, j]
                if j + 1 < order:
                    t_1[label] += t_j * powers[j] * tables[b, label, j + 1]
            h_k[0] += h_j * both
            if j + 1 < order:
                h_k[1] += h_j * powers[j] * (tables[b, 0, j + 1] + tables[b, 1, j + 1])
            if j + 2 < order:
                h_k[2] += h_j * powers[j] * (tables[b, 0, j + 2] + tables[b, 1, j + 2])
            sign = -sign
        if right:
            # Label 0: softplus(z) = z + softplus(-z); its certain part is its weight.
            loss = q[0] + q[1]
            if tables[b, 0, 0] != 0.0:  # (an empty label part has no loss, even at u = inf)
                loss += u * tables[b, 0, 0] + slope * tables[b, 0, 1]
            certain_0 = tables[b, 0, 0]
            certain_1 = tables[b, 0, 1]
            tails_0 = -(t_0[0] + t_0[1])
            tails_1 = -(t_1[0] + t_1[1])
        else:
            loss = q[0] + q[1]
            if tables[b, 1, 0] != 0.0:
                loss -= u * tables[b, 1, 0] + slope * tables[b, 1, 1]
            certain_0 = -tables[b, 1, 0]
            certain_1 = -tables[b, 1, 1]
            tails_0 = t_0[0] + t_0[1]
            tails_1 = t_1[0] + t_1[1]
        values[0] = loss
        values[1] = certain_0
        values[2] = tails_0
        values[3] = c * certain_0 + certain_1
        values[4] = c * tails_0 + tails_1
        values[5] = h_k[0]
        values[6] = c * h_k[0] + h_k[1]
        values[7] = c * c * h_k[0] + 2.0 * c * h_k[1] + h_k[2]
        for i in range(N_SLOPE_TERMS):
            out[i, 0], out[i, 1] = _add(out[i, 0], out[i, 1], values[i])
    return out


def polynomial_derivatives(polynomial: np.ndarray, count: int) -> np.ndarray:
    """The derivatives of ``g(z) = P(σ(z))`` for ``P`` of coefficients ``polynomial`` (by
    power), each side written in the variable that is small there: ``out[0, j]`` holds
    ``g^(j)`` as a polynomial in ``σ(z)`` (for ``z <= 0``) and ``out[1, j]`` as one in
    ``σ(-z)`` (for ``z > 0``), ``j < count``; exact for integer coefficients.

    From ``σ' = σ(1 - σ)``: ``d/dz Q(σ) = Q'(σ)(σ - σ²)``; with ``s = σ(-z) = 1 - σ``,
    ``d/dz R(s) = -R'(s)(s - s²)`` and ``R_0(s) = P(1 - s)``.
    """
    degree = polynomial.size - 1
    size = degree + count + 1
    out = np.zeros((2, count, size))
    out[0, 0, :polynomial.size] = polynomial
    for k, coefficient in enumerate(polynomial):  # P(1 - s) = Σ_k p_k Σ_i C(k, i) (-s)^i
        for i in range(k + 1):
            out[1, 0, i] += coefficient * math.comb(k, i) * (-1.0) ** i
    for side, sign in ((0, 1.0), (1, -1.0)):
        for j in range(1, count):
            derivative = np.arange(1, size) * out[side, j - 1, 1:]  # Q', degree one less
            out[side, j, 1:] += sign * derivative
            out[side, j, 2:] -= sign * derivative[:-1]
    return out


@nb.njit(**_OPTIONS)
def sketch_polynomials(centres, tables, shift, negative, positive, factorials, per_cell):
    """``Σ w (1 - y) P(σ(z))`` and ``Σ w y Q(σ(z))`` with ``z = offset + shift``, from the
    Taylor tables alone: each cell's part is ``Σ_j g^(j)(u) / j! · tables[b, ·, j]``.

    ``negative`` and ``positive`` are `polynomial_derivatives` of ``P`` and ``Q``: every
    derivative is evaluated at ``σ(-|u|) <= 1/2`` in the variable small on ``u``'s side, so
    terms near 0 or 1 keep their relative accuracy. Returns ``(2, 2)``: the two sums and
    their compensations; unless ``per_cell`` is empty it gets each cell's two parts.
    """
    n_cells, _, order = tables.shape
    keep_cells = per_cell.shape[0] > 0
    out = np.zeros((2, 2))
    size = negative.shape[2]
    for b in range(n_cells):
        u = centres[b] + shift
        tail = math.exp(-abs(u))
        s = tail / (1.0 + tail)  # σ(-|u|)
        side = 1 if u > 0 else 0
        for label in range(2):
            derivatives = negative if label == 0 else positive
            total = 0.0
            for j in range(order):
                p = 0.0
                for k in range(size - 1, -1, -1):
                    p = p * s + derivatives[side, j, k]
                total += p * tables[b, label, j] / factorials[j]
            if keep_cells:
                per_cell[b, label] = total
            out[label, 0], out[label, 1] = _add(out[label, 0], out[label, 1], total)
    return out


@nb.njit(**_LOG_HELPER)
def _log_add(state, base, anchor, residual, slope):
    """Add ``exp(anchor + residual)`` (and that times ``slope``) to the log-sum-exp at
    ``state[base:base + 6]``: its pivot (the largest term so far, as anchor and residual) and
    the compensated sums of the terms over the pivot. Anchors are subtracted apart from
    residuals, so that equal anchors of 1e300 cancel exactly."""
    if state[base + 2] == 0.0:
        state[base] = anchor
        state[base + 1] = residual
        state[base + 2] = 1.0
        state[base + 3] = 0.0
        state[base + 4] = slope
        state[base + 5] = 0.0
        return
    gap = (anchor - state[base]) + (residual - state[base + 1])
    if not math.isfinite(gap):  # anchors 3e308 apart: their rounded sums will do
        gap = (anchor + residual) - (state[base] + state[base + 1])
    if gap > 0.0:
        # A new pivot: rescale what was summed over the old one.
        factor = math.exp(-gap)
        state[base] = anchor
        state[base + 1] = residual
        state[base + 2] *= factor
        state[base + 3] *= factor
        state[base + 4] *= factor
        state[base + 5] *= factor
        term = 1.0
    else:
        term = math.exp(gap)
    state[base + 2], state[base + 3] = _add(state[base + 2], state[base + 3], term)
    state[base + 4], state[base + 5] = _add(state[base + 4], state[base + 5], term * slope)


@nb.njit(**_LOG_HELPER)
def _log_sigmoid_pieces(offset, shift, side):
    """``log σ(x)`` for ``x = side · (offset + shift)`` as (anchor, residual): far below σ's
    range the anchor is ``side · offset`` and the residual keeps the shift; elsewhere the
    anchor is 0. Also returns ``σ(-x)``, the curvature over σ(x)."""
    x = side * (offset + shift)
    e = math.exp(-abs(x))
    near = 1.0 / (1.0 + e)
    far = e * near
    if x < _DEEP:
        return side * offset, side * shift - math.log1p(math.exp(x)), near
    # log σ(x) = -softplus(-x)
    return 0.0, -(max(-x, 0.0) + math.log1p(e)), far if x > 0 else near


@nb.njit(**_LOG_OPTIONS)
def exact_log_parts(offsets, has_offsets, constant_offset, labels, weights, has_weights,
                    shift, scale, start, stop, out):
    """The logarithms of the two label parts of the gradient at ``shift`` over rows
    ``[start, stop)``, by log-sum-exp of ``log(w scale) + log σ(±z)``; into ``out[N_LOG]``
    (see `N_LOG`). Only for parts that underflow (`solve.with_log_parts`); the numpy
    reference is `solve.log_parts`."""
    out[:] = 0.0
    for i in range(start, stop):
        f = float(offsets[i]) if has_offsets else constant_offset
        w = (float(weights[i]) if has_weights else 1.0) * scale
        if w == 0.0 or not math.isfinite(f):
            continue
        y = float(labels[i])
        neg = w * (1.0 - y)
        pos = w * y
        if neg > 0.0:
            anchor, residual, slope = _log_sigmoid_pieces(f, shift, 1.0)
            _log_add(out, 0, anchor, residual + math.log(neg), slope)
        if pos > 0.0:
            anchor, residual, slope = _log_sigmoid_pieces(f, shift, -1.0)
            _log_add(out, _LOG_FIELDS, anchor, residual + math.log(pos), slope)


@nb.njit(**_LOG_OPTIONS)
def sketch_log_parts(centres, tables, width, shift, coefficients, factorials, scale, out):
    """The logarithms of the two label parts of the gradient at ``shift`` from the Taylor
    tables, by log-sum-exp over cells; into ``out[N_LOG]`` (see `N_LOG`).

    With ``u = c + shift`` and ``s = σ(-|u|)``, a cell's negative part is, for ``u <= 0``,
    ``σ(u) Σ_j Q_j(s) M_j / j!`` with ``Q_j = σ^(j) / σ``, the polynomial ``P_j(s) / s`` (the
    rows ``P_j`` of ``coefficients`` have no constant term): ``log σ(u)`` plus the logarithm
    of a bounded series, ``Σ w e^d`` far out. Its curvature is ``σ(u) Σ_j Q_(j+1)(s) M_j / j!``.
    For ``u > 0`` the part is at least half the cell's weight and its linear series is
    accurate (as in `sketch_terms`). The positive part mirrors this.
    """
    n_cells, _, order = tables.shape
    out[:] = 0.0
    q = np.empty(order + 1)
    derivatives = np.empty(order + 1)
    for b in range(n_cells):
        c = centres[b]
        u = c + shift
        tail = math.exp(-abs(u))
        s = tail / (1.0 + tail)  # σ(-|u|)
        for j in range(order + 1):
            r = 0.0
            for k in range(order + 1, 0, -1):
                r = r * s + coefficients[j, k]  # Q_j: P_j without its factor s
            q[j] = r
            derivatives[j] = r * s  # P_j(s) = σ^(j)(-|u|): coefficients[j, 0] is 0
        for label in range(2):
            if tables[b, label, 0] == 0.0:
                continue
            # side +1: the negative part, σ(u); side -1: the positive part, σ(-u).
            side = 1.0 if label == 0 else -1.0
            x = side * u
            if x <= 0.0:
                # σ(x) · Σ_j (±1)^j Q_j(s) M_j / j!: for the positive part the derivatives
                # of σ(-·) alternate in sign.
                series = 0.0
                curvature = 0.0
                sign = 1.0
                for j in range(order):
                    m = tables[b, label, j] / factorials[j] * scale
                    series += sign * q[j] * m
                    curvature += sign * q[j + 1] * m
                    sign *= side
                if not series > 0.0:
                    continue
                if x < _DEEP:
                    anchor = side * c
                    residual = side * shift - math.log1p(tail)
                else:
                    anchor = 0.0
                    residual = x - math.log1p(tail)
                _log_add(out, label * _LOG_FIELDS, anchor, residual + math.log(series),
                         curvature / series)
            else:
                # The far side of 0: σ(x) >= 1/2, the part is linear and near M_0.
                part = (1.0 - derivatives[0]) * tables[b, label, 0]
                curvature = derivatives[1] * tables[b, label, 0]
                sign = 1.0
                for j in range(1, order):
                    m = tables[b, label, j] / factorials[j]
                    sign = -sign  # (-1)^j
                    # σ^(j)(x) for x > 0 is (-1)^(j+1) D_j, and the positive part's
                    # derivatives in u carry (-1)^j more.
                    part_sign = -sign if label == 0 else -1.0
                    curv_sign = sign if label == 0 else 1.0
                    part += part_sign * derivatives[j] * m
                    curvature += curv_sign * derivatives[j + 1] * m
                part *= scale
                curvature *= scale
                if not part > 0.0:
                    continue
                _log_add(out, label * _LOG_FIELDS, 0.0, math.log(part), curvature / part)
# -- per-group kernels: the tables keyed by (group, cell) ---------------------------------------

@nb.njit(**_OPTIONS)
def group_scan(codes, base, n_codes, offsets, has_offsets, constant_offset, labels, weights,
               has_weights, start, stop, count, tabled, weight, positives, offset_min,
               offset_max, out):
    """Validate rows ``[start, stop)`` and add each row to its group's totals.

    A row's group is ``codes[i] - base``, which must lie in ``[0, n_codes)``. Per group:
    rows, rows that go into the tables (positive weight, finite offset), ``Σ w``, ``Σ w y``
    (every row, infinite offsets included) and the least and greatest offset of a tabled
    row. ``out[0]`` gets the first bad row (a bad label, weight, offset or group code), or
    -1; the rows before it are counted.
    """
    first_bad = -1
    for i in range(start, stop):
        row = np.uint64(i)
        code = np.int64(codes[row]) - base
        y = float(labels[row])
        f = float(offsets[row]) if has_offsets else constant_offset
        w = float(weights[row]) if has_weights else 1.0
        if not (code >= 0 and code < n_codes and _valid(y, f, w)):
            first_bad = i
            break
        count[code] += 1
        weight[code] += w
        positives[code] += w * y
        if w > 0.0 and math.isfinite(f):
            tabled[code] += 1
            if f < offset_min[code]:
                offset_min[code] = f
            if f > offset_max[code]:
                offset_max[code] = f
    out[0] = first_bad


@nb.njit(**_OPTIONS)
def group_count(codes, base, n_codes, offsets, labels, start, stop, count, out):
    """`group_scan` for integer labels, an offset per row and no weights, the common case:
    validate rows ``[start, stop)`` and count each group's rows, and nothing else (one
    table read at random a row, where `group_scan` updates six). ``out[0]`` gets the first
    row that is bad or has an infinite offset, or -1: the caller then runs `group_scan`,
    which tells them apart. The groups' label sums and offset ranges come after the rows
    are grouped (`group_row_bounds`), read in order."""
    first_bad = -1
    for i in range(start, stop):
        row = np.uint64(i)
        code = np.int64(codes[row]) - base
        y = labels[row]
        f = float(offsets[row])
        if not (code >= 0 and code < n_codes and y >= 0 and y <= 1 and math.isfinite(f)):
            first_bad = i
            break
        count[code] += 1
    out[0] = first_bad


@nb.njit(**_OPTIONS)
def group_row_bounds(sorted_offsets, sorted_labels, row_start, first, stop, positives,
                     offset_min, offset_max):
    """For each group ``g`` in ``[first, stop)`` with rows
    ``row_start[g]:row_start[g + 1]`` (integer labels, unit weights): ``Σ y`` and its
    least and greatest offset, as `group_scan` finds them."""
    for g in range(first, stop):
        total = 0
        low = math.inf
        high = -math.inf
        for r in range(row_start[g], row_start[g + 1]):
            f = sorted_offsets[r]
            total += np.int64(sorted_labels[r])
            low = f if f < low else low
            high = f if f > high else high
        positives[g] = float(total)
        offset_min[g] = low
        offset_max[g] = high


@nb.njit(**_OPTIONS)
def group_scatter(codes, base, offsets, has_offsets, constant_offset, labels, weights,
                  has_weights, start, stop, cursor, sorted_offsets, sorted_labels,
                  sorted_weights):
    """Copy the tabled rows of ``[start, stop)`` (positive weight, finite offset) to their
    group's slots: row ``i`` of group ``g`` goes to ``cursor[g]``, which then moves on.

    With each thread's cursors starting where the rows of the threads before it end, the
    copies come out grouped, in row order within each group: a counting sort. Its writes
    go to one stream per group, so a group's rows are then read contiguously, and its
    table window stays in cache while they fill it.
    """
    for i in range(start, stop):
        row = np.uint64(i)
        f = float(offsets[row]) if has_offsets else constant_offset
        w = float(weights[row]) if has_weights else 1.0
        if w == 0.0 or not math.isfinite(f):
            continue
        code = np.int64(codes[row]) - base
        slot = cursor[code]
        cursor[code] = slot + 1
        sorted_offsets[slot] = f
        sorted_labels[slot] = labels[row]
        if has_weights:
            sorted_weights[slot] = w


@nb.njit(**_OPTIONS)
def group_cell_counts(sorted_offsets, row_first, row_stop, cell_low, span, first, stop,
                      inv_width, used, cells):
    """For each group ``g`` in ``[first, stop)`` with ``span[g] > 0``: how many distinct
    cells its rows ``row_first[g]:row_stop[g]`` occupy, into ``cells[g]``. ``used``
    is scratch of at least ``max(span)`` zeros, left zero."""
    for g in range(first, stop):
        width_cells = span[g]
        if width_cells <= 0:
            continue
        distinct = 0
        for r in range(row_first[g], row_stop[g]):
            k = np.int64(np.floor(sorted_offsets[r] * inv_width) - cell_low[g])
            if not used[k]:
                used[k] = True
                distinct += 1
        cells[g] = distinct
        for r in range(row_first[g], row_stop[g]):
            used[np.int64(np.floor(sorted_offsets[r] * inv_width) - cell_low[g])] = False


@nb.njit(**_OPTIONS)
def group_fill(sorted_offsets, sorted_labels, sorted_weights, has_weights, row_first,
               row_stop, cell_low, span, cell_start, first, stop, inv_width, width, order, window,
               centres, tables):
    """Fill the tables of each group ``g`` in ``[first, stop)`` with ``span[g] > 0`` from
    its rows ``row_first[g]:row_stop[g]`` (grouped by `group_scatter`), and write its
    occupied cells, in increasing offset, from ``cell_start[g]`` of ``centres`` and
    ``tables`` (``(cells, 2 * order)``).

    A group's rows are added to a dense window of its ``span[g]`` cells from
    ``cell_low[g]`` (``window``: scratch zeros of at least ``max(span) * 2 * order``, left
    zero), cell ``k`` holding at ``(2 k + label) * order + j`` the moments ``Σ w_label d^j``
    formed as `fill` forms them; then its occupied cells are copied out.
    """
    for g in range(first, stop):
        width_cells = span[g]
        if width_cells <= 0:
            continue
        low = cell_low[g]
        for r in range(row_first[g], row_stop[g]):
            f = sorted_offsets[r]
            y = float(sorted_labels[r])
            w = sorted_weights[r] if has_weights else 1.0
            cell = np.floor(f * inv_width)
            d = f - (cell + 0.5) * width
            pos = w * y
            neg = w * (1.0 - y)
            where = 2 * np.int64(cell - low) * order
            if pos == 0.0 or neg == 0.0:
                where += order * int(pos != 0.0)
                d2 = d * d
                if order == 8:
                    d4 = d2 * d2
                    p1 = w * d
                    p2 = w * d2
                    p3 = p1 * d2
                    window[where] += w
                    window[where + 1] += p1
                    window[where + 2] += p2
                    window[where + 3] += p3
                    window[where + 4] += w * d4
                    window[where + 5] += p1 * d4
                    window[where + 6] += p2 * d4
                    window[where + 7] += p3 * d4
                    continue
                even = w
                odd = w * d
                for j in range(0, order - 1, 2):
                    window[where + j] += even
                    window[where + j + 1] += odd
                    even *= d2
                    odd *= d2
                if order % 2:
                    window[where + order - 1] += even
            else:
                power = 1.0
                for j in range(order):
                    window[where + j] += neg * power
                    window[where + order + j] += pos * power
                    power *= d
        out = cell_start[g]
        row_floats = 2 * order
        for k in range(width_cells):
            at = k * row_floats
            if window[at] != 0.0 or window[at + order] != 0.0:
                centres[out] = (low + k + 0.5) * width
                for j in range(row_floats):
                    tables[out, j] = window[at + j]
                    window[at + j] = 0.0
                out += 1


@nb.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)
def group_fill_unweighted(sorted_offsets, sorted_labels, row_first, row_stop, cell_low, span,
                          cell_start, first, stop, inv_width, width, window, centres,
                          tables):
    """`group_fill` at order 8 for integer labels (0/1) and no weights, as
    `fill_unweighted` is `fill`'s: the same tables to the bit, in two loops a block of
    rows, one that LLVM vectorises (each row's cell, remainder and place in the window)
    and one that adds the powers, whose eight adjacent updates become two four-wide ones
    under `compile_vectorized`."""
    order = 8
    remainders = np.empty(_BLOCK)
    index = np.empty(_BLOCK, dtype=np.int32)
    for g in range(first, stop):
        width_cells = span[g]
        if width_cells <= 0:
            continue
        origin = cell_low[g]
        high = row_stop[g]
        for block in range(row_first[g], high, _BLOCK):
            size = min(high - block, _BLOCK)
            at = np.uint64(block)
            for j in range(np.uint64(size)):
                f = sorted_offsets[at + j]
                cell = np.floor(f * inv_width)
                remainders[j] = f - (cell + 0.5) * width
                index[j] = np.int32((cell - origin) * 16.0 + float(sorted_labels[at + j]) * 8.0)
            for j in range(np.uint64(size)):
                d = remainders[j]
                d2 = d * d
                d3 = d * d2
                d4 = d2 * d2
                base = np.uint64(index[j])
                window[base] += 1.0
                window[base + np.uint64(1)] += d
                window[base + np.uint64(2)] += d2
                window[base + np.uint64(3)] += d3
                window[base + np.uint64(4)] += d4
                window[base + np.uint64(5)] += d * d4
                window[base + np.uint64(6)] += d2 * d4
                window[base + np.uint64(7)] += d3 * d4
        out = cell_start[g]
        for k in range(width_cells):
            at = k * 2 * order
            if window[at] != 0.0 or window[at + order] != 0.0:
                centres[out] = (origin + k + 0.5) * width
                for j in range(2 * order):
                    tables[out, j] = window[at + j]
                    window[at + j] = 0.0
                out += 1


@nb.njit(**_OPTIONS)
def merge_cells(group_a, centres_a, tables_a, group_b, centres_b, tables_b, out_group,
                out_centres, out_tables):
    """Merge two runs of cells, each sorted by ``(group, centre)`` with no pair twice, into
    one: an equal pair's tables added (``a``'s first). Returns the number of cells; with
    ``out_group`` empty it only counts them (the outputs are then not touched)."""
    write = out_group.shape[0] > 0
    n_a = group_a.shape[0]
    n_b = group_b.shape[0]
    m = tables_a.shape[1]
    i = 0
    j = 0
    n = 0
    while i < n_a or j < n_b:
        if j == n_b:
            take = -1
        elif i == n_a:
            take = 1
        elif group_a[i] != group_b[j]:
            take = -1 if group_a[i] < group_b[j] else 1
        elif centres_a[i] != centres_b[j]:
            take = -1 if centres_a[i] < centres_b[j] else 1
        else:
            take = 0
        if write:
            if take <= 0:
                out_group[n] = group_a[i]
                out_centres[n] = centres_a[i]
                for k in range(m):
                    out_tables[n, k] = tables_a[i, k]
                if take == 0:
                    for k in range(m):
                        out_tables[n, k] += tables_b[j, k]
            else:
                out_group[n] = group_b[j]
                out_centres[n] = centres_b[j]
                for k in range(m):
                    out_tables[n, k] = tables_b[j, k]
        if take <= 0:
            i += 1
        if take >= 0:
            j += 1
        n += 1
    return n


@nb.njit(**_OPTIONS)
def group_terms(group_start, centres, tables, width, shifts, wanted, coefficients,
                factorials, first, stop, out):
    """`sketch_terms` of each group ``g`` in ``[first, stop)`` with ``wanted[g]``, on its
    own cells ``group_start[g]:group_start[g + 1]`` at its own shift ``shifts[g]``.

    ``out[g]`` gets the `N_TERMS` sums, each value plus its compensation (the value alone
    where it is not finite), as `passes.terms_from_sums` forms them before it splits the
    gradient.
    """
    no_cells = np.empty((0, 2))
    sums = np.empty((N_TERMS, 2))
    values = np.empty(N_TERMS)
    exps = np.empty(_CELL_BLOCK)
    small = np.empty(_CELL_BLOCK)
    derivatives = np.empty((tables.shape[2] + 1, _CELL_BLOCK))
    for g in range(first, stop):
        if not wanted[g]:
            continue
        low = group_start[g]
        high = group_start[g + 1]
        sums[:] = 0.0
        _sketch_terms_into(centres[low:high], tables[low:high], width, shifts[g],
                           coefficients, factorials, no_cells, sums, values, exps, small,
                           derivatives)
        for i in range(N_TERMS):
            value = sums[i, 0]
            out[g, i] = value + sums[i, 1] if math.isfinite(value) else value


# -- exp and log1p that LLVM can vectorise --------------------------------------------------
#
# numba without Intel's SVML calls the C library's scalar `exp` and `log1p` for every row;
# the row kernels below spend most of their time there. These two are plain arithmetic on
# a block of values, which LLVM turns into vector code (measured on one core: `exp` 5 ns
# against 14 ns a value, `log1p` 4.5 ns against 10, call overhead included). Each is within
# 1 ulp of the C library's (0.87 and 0.71 ulp of the exact value at worst in the tests,
# against mpmath at 40 digits), not equal to it: the row kernels agree with `exact_terms`
# to rounding, not to the bit.

#: ln 2 in two parts (fdlibm's): ``k * _LN2_HI`` is exact for the ``|k| < 2**11`` used.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
#: 1.5 * 2**52: ``x + _ROUNDER`` rounds x to an integer held in the low bits of the double.
_ROUNDER = 6755399441055744.0
_ROUNDER_BITS = 0x4338000000000000
#: 1/j! for j = 2..13: |r| ≤ ln(2)/2 leaves a Taylor remainder below 4.4e-18.
_E2, _E3, _E4, _E5, _E6, _E7 = 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040
_E8, _E9, _E10 = 1 / 40320, 1 / 362880, 1 / 3628800
_E11, _E12, _E13 = 1 / 39916800, 1 / 479001600, 1 / 6227020800
#: fdlibm's log1p: the minimax polynomial of (log(1+f) - 2s - s·R)/... in s² = (f/(2+f))²,
#: and the point below which 1 + x is not formed (its high word 0x3FDA827A, about √2 - 1).
_LP1, _LP2 = 6.666666666666735130e-01, 3.999999999940941908e-01
_LP3, _LP4 = 2.857142874366239149e-01, 2.222219843214978396e-01
_LP5, _LP6 = 1.818357216161805012e-01, 1.531383769920937332e-01
_LP7 = 1.479819860511658591e-01
_LOG1P_SPLIT = 0.4142136573791504


@nb.njit(**_HELPER)
def _exp_block(x, out, scratch, n):
    """``out[:n] = exp(x[:n])`` within 1 ulp, in loops LLVM vectorises; ``scratch``: n
    doubles. NaN gives NaN, x > 709.8 inf, x < -745.2 zero, subnormal results rounded once.

    ``x = k ln 2 + r`` (Cody-Waite: k by the rounding trick, r in two products) with
    ``|r| ≤ ln(2)/2``; ``exp(r) = 1 + (r + r² q(r))``, q the Taylor polynomial to r¹¹/13!;
    then ``2**k`` as two powers of two written into the exponent bits, so that neither
    overflows nor leaves the normal range before the one rounding of the last product.
    """
    for i in range(n):
        v = min(max(x[i], -746.0), 710.0)
        scratch[i] = v * _INV_LN2 + _ROUNDER
    rounded = scratch.view(np.int64)
    powers = out.view(np.int64)
    for i in range(n):
        v = min(max(x[i], -746.0), 710.0)
        whole = scratch[i] - _ROUNDER
        r = (v - whole * _LN2_HI) - whole * _LN2_LO
        q = _E13
        q = q * r + _E12
        q = q * r + _E11
        q = q * r + _E10
        q = q * r + _E9
        q = q * r + _E8
        q = q * r + _E7
        q = q * r + _E6
        q = q * r + _E5
        q = q * r + _E4
        q = q * r + _E3
        q = q * r + _E2
        near_one = 1.0 + (r + r * r * q)
        k = rounded[i] - _ROUNDER_BITS
        half = k >> 1
        rounded[i] = (half + 1023) << 52
        powers[i] = (k - half + 1023) << 52
        scratch[i] = near_one * scratch[i]
    for i in range(n):
        value = scratch[i] * out[i]
        out[i] = value if x[i] == x[i] else x[i]


@nb.njit(**_HELPER)
def _log1p_unit(x):
    """``log(1 + x)`` for ``0 ≤ x ≤ 1`` within 1 ulp, without a branch: fdlibm's log1p
    with ``1 + x = 2**k (1 + f)``, k = 0 or 1, and the rounding of ``1 + x`` corrected."""
    big = x >= _LOG1P_SPLIT
    u = 1.0 + x
    k = 1.0 if big else 0.0
    f = 0.5 * u - 1.0 if big else x
    correction = (x - (u - 1.0)) / u if big else 0.0
    half_square = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    rest = z * (_LP1 + z * (_LP2 + z * (_LP3 + z * (_LP4 + z * (_LP5 + z * (_LP6 + z * _LP7))))))
    return k * _LN2_HI - ((half_square - (s * (half_square + rest)
                                          + (k * _LN2_LO + correction))) - f)


@nb.njit(**_OPTIONS)
def exp_values(x, out):
    """``out = exp(x)`` by `_exp_block`, a block at a time (for the tests)."""
    scratch = np.empty(_BLOCK)
    block = np.empty(_BLOCK)
    for start in range(0, x.shape[0], _BLOCK):
        n = min(_BLOCK, x.shape[0] - start)
        _exp_block(x[start:start + n], block, scratch, n)
        out[start:start + n] = block[:n]


@nb.njit(**_OPTIONS)
def log1p_values(x, out):
    """``out = log1p(x)`` by `_log1p_unit` (for the tests; ``0 ≤ x ≤ 1``)."""
    for i in range(x.shape[0]):
        out[i] = _log1p_unit(x[i])


#: Scratch rows of `_row_sums`: z, exp(-|z|), -|z|, the exp's own, and one per sum.
_ROW_SCRATCH = 4 + N_TERMS


@nb.njit(**_HELPER)
def _row_sums(offsets, labels, weights, has_weights, shift, low, high, with_loss, scratch,
              total):
    """The sums of `exact_terms` over rows ``[low, high)`` (finite offsets, positive
    weights) at ``shift``, each with its compensation, into ``total`` (``2 * N_TERMS``;
    without ``with_loss`` the loss is left 0).

    Each block of `_BLOCK` rows goes through three loops without a branch on the data,
    which LLVM vectorises: z and ``exp(-|z|)`` (`_exp_block`); each row's terms, the side
    of z chosen by a select (a branch on the sign of z is mispredicted half the time);
    then the sums, added in row order as `exact_terms` adds them, blocks compensated.
    """
    total[:] = 0.0
    z = scratch[0]
    tails = scratch[1]
    terms = scratch[4:]
    for block in range(low, high, _BLOCK):
        n = min(high - block, _BLOCK)
        for j in range(n):
            value = offsets[block + j] + shift
            z[j] = value
            scratch[2, j] = -abs(value)
        _exp_block(scratch[2], tails, scratch[3], n)
        for j in range(n):
            row = block + j
            w = weights[row] if has_weights else 1.0
            y = float(labels[row])
            neg = w * (1.0 - y)
            pos = w * y
            e = tails[j]
            near = 1.0 / (1.0 + e)
            tail = e * near
            curvature = near * tail
            above = z[j] > 0
            terms[0, j] = neg * (near if above else tail)
            terms[1, j] = pos * (tail if above else near)
            terms[2, j] = neg if above else -pos
            terms[3, j] = -(w * tail) if above else w * tail
            terms[4, j] = neg * curvature
            terms[5, j] = pos * curvature
        if with_loss:
            for j in range(n):
                row = block + j
                w = weights[row] if has_weights else 1.0
                y = float(labels[row])
                # softplus(±z) = max(±z, 0) + log1p(e); a label part of weight 0 adds
                # nothing, even at an infinite z (where 0 · inf would be NaN).
                common = _log1p_unit(tails[j])
                neg = w * (1.0 - y)
                pos = w * y
                terms[6, j] = (neg * (max(z[j], 0.0) + common) if neg > 0.0 else 0.0) + \
                    (pos * (max(-z[j], 0.0) + common) if pos > 0.0 else 0.0)
        # Six (seven) running sums side by side: their additions overlap, where one sum
        # after another would wait on each addition in turn.
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        s5 = 0.0
        s6 = 0.0
        for j in range(n):
            s0 += terms[0, j]
            s1 += terms[1, j]
            s2 += terms[2, j]
            s3 += terms[3, j]
            s4 += terms[4, j]
            s5 += terms[5, j]
            s6 += terms[6, j] if with_loss else 0.0
        for i, part in enumerate((s0, s1, s2, s3, s4, s5, s6)):
            total[i], total[N_TERMS + i] = _add(total[i], total[N_TERMS + i], part)


@nb.njit(**_OPTIONS)
def group_row_terms(row_first, row_stop, offsets, labels, weights, has_weights, shifts,
                    wanted, first, stop, out):
    """The sums of `exact_terms` (to rounding: `_exp_block`, `_log1p_unit`) of each group
    ``g`` in ``[first, stop)`` with ``wanted[g]`` and rows ``row_first[g]:row_stop[g]``
    (finite offsets, positive weights), at its own shift ``shifts[g]``: the same sums as
    `group_terms` writes for a group kept as cells, each value plus its compensation (the
    value alone where it is not finite)."""
    _group_row_sums(row_first, row_stop, offsets, labels, weights, has_weights, shifts,
                    wanted, first, stop, True, out)


@nb.njit(**_OPTIONS)
def group_row_newton(row_first, row_stop, offsets, labels, weights, has_weights, shifts,
                     wanted, first, stop, out):
    """`group_row_terms` without the loss (``out[g, 6]`` is NaN): the sums a Newton step
    needs, without the loss's ``log1p``; the others equal `group_row_terms`' to the bit."""
    _group_row_sums(row_first, row_stop, offsets, labels, weights, has_weights, shifts,
                    wanted, first, stop, False, out)


@nb.njit(**_HELPER)
def _group_row_sums(row_first, row_stop, offsets, labels, weights, has_weights, shifts,
                    wanted, first, stop, with_loss, out):
    scratch = np.empty((_ROW_SCRATCH, _BLOCK))
    total = np.empty(2 * N_TERMS)
    for g in range(first, stop):
        low = row_first[g]
        high = row_stop[g]
        if not wanted[g] or high == low:
            continue
        _row_sums(offsets, labels, weights, has_weights, shifts[g], low, high, with_loss,
                  scratch, total)
        for i in range(N_TERMS):
            value = total[i]
            out[g, i] = value + total[N_TERMS + i] if math.isfinite(value) else value
        if not with_loss:
            out[g, N_TERMS - 1] = math.nan


@nb.njit(**_OPTIONS)
def group_row_totals(row_first, row_stop, offsets, labels, weights, has_weights, out):
    """For each group ``g`` with rows ``row_first[g]:row_stop[g]``: ``Σ w (1 - y)``,
    ``Σ w y`` and ``Σ w f`` over its rows, in row order, into ``out[g]``."""
    for g in range(row_first.shape[0]):
        negative = 0.0
        positive = 0.0
        moment = 0.0
        for r in range(row_first[g], row_stop[g]):
            w = weights[r] if has_weights else 1.0
            y = float(labels[r])
            negative += w * (1.0 - y)
            positive += w * y
            moment += w * offsets[r]
        out[g, 0] = negative
        out[g, 1] = positive
        out[g, 2] = moment


#: What `group_integrals` writes per group: the group's ``-log ∫`` and its gradient and
#: Hessian in ``(μ, θ = log τ)``; its mode as a shift ``s = μ + û`` and the loss's second
#: derivative there; the mode's first and second derivatives in ``(μ, θ)``; Newton's
#: iterations.
N_INTEGRAL = 14
(I_VALUE, I_MEAN, I_THETA, I_MEAN_MEAN, I_MEAN_THETA, I_THETA_THETA, I_SHIFT, I_CURVATURE,
 I_SHIFT_MEAN, I_SHIFT_THETA, I_SHIFT_MEAN_MEAN, I_SHIFT_MEAN_THETA, I_SHIFT_THETA_THETA,
 I_ITERATIONS) = range(N_INTEGRAL)


@nb.njit(**_HELPER)
def _group_moments(tables, factorials, low, high, moments):
    """``moments[c] = (M_neg, M_pos, M_neg + M_pos)_j / j!`` of the cells ``[low, high)``:
    the tables as `sketch_terms` reads them, divided once for every point a group is
    evaluated at."""
    order = tables.shape[2]
    for c in range(high - low):
        for j in range(order):
            negative = tables[low + c, 0, j] / factorials[j]
            positive = tables[low + c, 1, j] / factorials[j]
            moments[c, 0, j] = negative
            moments[c, 1, j] = positive
            moments[c, 2, j] = negative + positive


@nb.njit(**_HELPER)
def _group_derivatives(centres, moments, low, high, points, n_points, top, coefficients,
                       sums, out):
    """The loss of cells ``[low, high)`` (their `_group_moments`) at each shift
    ``points[k]``, ``k < n_points``, and its derivatives up to ``top`` (2 or 4): ``out[k,
    i] = L^(i)(points[k])``, each summed over the cells with compensation.

    A cell's series (`sketch_terms`') in ``σ^(m)(u)``, ``m >= 1`` (``D_m`` for ``u <= 0``,
    ``(-1)^(m+1) D_m`` above), with ``B_j = (M_neg + M_pos)_j / j!``: the loss is ``M_neg,0
    softplus(u) + M_pos,0 softplus(-u) + M_neg,1 σ(u) - M_pos,1 σ(-u) + Σ_(j>=2) B_j
    σ^(j-1)(u)``, the gradient ``M_neg,0 σ(u) - M_pos,0 σ(-u) + Σ_(j>=1) B_j σ^(j)(u)``, and
    the ``i``-th derivative, ``i >= 2``, ``Σ_j B_j σ^(j+i-1)(u)`` (the two labels' parts of
    each term are equal beyond the first). Each ``D_m`` joins every sum it enters as soon
    as Horner's rule has formed it, in registers. ``coefficients`` needs ``order + 3``
    rows; ``sums`` is work space ``(5, 2)``."""
    order = moments.shape[2]
    n_rows = order + top - 1
    width = coefficients.shape[1] - 1
    for k in range(n_points):
        for i in range(5):
            sums[i, 0] = 0.0
            sums[i, 1] = 0.0
        shift = points[k]
        for c in range(high - low):
            u = centres[low + c] + shift
            tail = math.exp(-abs(u))
            small = tail / (1.0 + tail)  # σ(-|u|) = D_0
            right = u > 0
            negative = moments[c, 0, 0]
            positive = moments[c, 1, 0]
            softplus_small = math.log1p(tail)
            loss = 0.0
            if right:
                up, down = 1.0 - small, small  # σ(u), σ(-u)
                if negative != 0.0:  # (0 · inf would be nan)
                    loss += negative * (u + softplus_small)
                loss += positive * softplus_small
            else:
                up, down = small, 1.0 - small
                loss += negative * softplus_small
                if positive != 0.0:
                    loss += positive * (softplus_small - u)
            loss += moments[c, 0, 1] * up - moments[c, 1, 1] * down
            gradient = negative * up - positive * down
            second = 0.0
            third = 0.0
            fourth = 0.0
            for m in range(1, n_rows):
                degree = min(m + 1, width)
                d = coefficients[m, degree]
                for i in range(degree - 1, -1, -1):
                    d = d * small + coefficients[m, i]
                if right and m % 2 == 0:
                    d = -d  # σ^(m)(u) on the right
                if m + 1 < order:
                    loss += moments[c, 2, m + 1] * d
                if m < order:
                    gradient += moments[c, 2, m] * d
                if m <= order:
                    second += moments[c, 2, m - 1] * d
                if top > 2:
                    if 2 <= m <= order + 1:
                        third += moments[c, 2, m - 2] * d
                    if m >= 3:
                        fourth += moments[c, 2, m - 3] * d
            sums[0, 0], sums[0, 1] = _add(sums[0, 0], sums[0, 1], loss)
            sums[1, 0], sums[1, 1] = _add(sums[1, 0], sums[1, 1], gradient)
            sums[2, 0], sums[2, 1] = _add(sums[2, 0], sums[2, 1], second)
            if top > 2:
                sums[3, 0], sums[3, 1] = _add(sums[3, 0], sums[3, 1], third)
                sums[4, 0], sums[4, 1] = _add(sums[4, 0], sums[4, 1], fourth)
        for i in range(top + 1):
            value = sums[i, 0]
            out[k, i] = value + sums[i, 1] if math.isfinite(value) else value


@nb.njit(**_OPTIONS)
def group_derivatives(group_start, centres, tables, shifts, top, coefficients, factorials,
                      out):
    """`_group_derivatives` of every group at its shift ``shifts[g]``: ``out[g, i] =
    L^(i)`` for ``i <= top``, in each group's own units."""
    order = tables.shape[2]
    most = 0
    for g in range(shifts.shape[0]):
        most = max(most, group_start[g + 1] - group_start[g])
    moments = np.empty((most, 3, order))
    sums = np.empty((5, 2))
    values = np.empty((1, 5))
    points = np.empty(1)
    for g in range(shifts.shape[0]):
        low = group_start[g]
        high = group_start[g + 1]
        _group_moments(tables, factorials, low, high, moments)
        points[0] = shifts[g]
        _group_derivatives(centres, moments, low, high, points, 1, top, coefficients, sums,
                           values)
        for i in range(top + 1):
            out[g, i] = values[0, i]


@nb.njit(**_OPTIONS)
def group_integrals(group_start, centres, tables, exponent, mean, tau, start,
                    negatives, positives, nodes, weights, wanted, coefficients, factorials,
                    first, stop, out):
    """Each group's integral over its random intercept, ``-log ∫ exp(-h(u)) du / sqrt(2π
    τ²)`` with ``h(u) = L(μ + u) + u² / (2τ²)``, and its exact gradient and Hessian in
    ``(μ, θ = log τ)``, for the groups ``g`` in ``[first, stop)`` with ``wanted[g]``:
    ``out[g]`` (the `N_INTEGRAL` columns, ``I_*``). ``L`` is the group's loss in the user's
    units, ``2**exponent[g]`` times its tables'.

    The mode ``û`` solves ``L'(μ + û) + û / τ² = 0``: Halley's steps (the third derivative
    is at hand) from ``start[g]``, inside the bracket ``(-τ² N, τ² P)`` (``negatives``,
    ``positives``), bisecting where a step leaves it, until a step is within 1e-13 of ``û``
    (relative, or the bracket within 1e-15); the mode is the last point evaluated. With
    ``t_k``, ``w_k`` the nodes and weights (summing to 1) of Gauss-Hermite quadrature, the
    points are ``u_k = û + t_k τ / sqrt(P)``, ``P = 1 + τ² L''(μ + û)``, and

        -log ∫ = ½ log P - log Σ_k w_k exp(-h(u_k) + t_k² / 2)

    (one node at 0: Laplace). In the variable ``z = u / τ`` (each term bounded as τ → 0),
    with ``s = μ + τ z``, the mode ``ẑ`` and ``P`` have derivatives from the mode's equation
    ``τ L'(s) + ẑ = 0``, ``L`` differentiated up to four times at ``s``; each point's
    ``h_k = L(s_k) + z_k² / 2``, ``z_k = ẑ + t_k P^(-1/2)``, then has first and second
    derivatives from ``L'`` and ``L''`` at ``s_k``, and with ``π_k`` the points' shares of
    the sum, ``∇ = ½ ∇P / P + Σ π_k ∇h_k`` and ``∇² = ½ ∇²(log P) + Σ π_k ∇²h_k -
    Cov_π(∇h)``.
    """
    order = tables.shape[2]
    variance = tau * tau
    n_nodes = nodes.shape[0]
    most = 0
    for g in range(first, stop):
        most = max(most, group_start[g + 1] - group_start[g])
    moments = np.empty((most, 3, order))
    sums = np.empty((5, 2))
    values = np.empty((n_nodes, 5))
    points = np.empty(n_nodes)
    at = values[0]
    for g in range(first, stop):
        if not wanted[g]:
            continue
        low = group_start[g]
        high = group_start[g + 1]
        _group_moments(tables, factorials, low, high, moments)
        e = exponent[g]
        lo = -variance * negatives[g]
        hi = variance * positives[g]
        u = min(max(start[g], lo), hi)
        iterations = 0
        for iterations in range(1, 201):
            points[0] = mean + u
            _group_derivatives(centres, moments, low, high, points, 1, 4, coefficients,
                               sums, values)
            if e != 0:
                for k in range(5):
                    at[k] = math.ldexp(at[k], e)
            slope = at[1] + u / variance
            if slope > 0:
                hi = u
            elif slope < 0:
                lo = u
            curvature = at[2] + 1.0 / variance
            step = -slope / curvature
            # Halley: Newton's step corrected by the third derivative, where that is a
            # correction (else Newton's).
            bend = 1.0 + 0.5 * at[3] * step / curvature
            if bend > 0.5 and math.isfinite(bend):
                step = step / bend
            new = u + step
            converged = abs(step) <= 1e-13 * max(1.0, abs(u)) or slope == 0
            if not (converged or (lo < new < hi)):
                new = 0.5 * lo + 0.5 * hi
            if converged or hi - lo <= 1e-15 * max(1.0, abs(u)):
                break
            u = new
        loss, a, b, c, d = at[0], at[1], at[2], at[3], at[4]
        # The mode and P, and their derivatives in (μ, θ) (m: μ, t: θ).
        z = u / tau
        p = 1.0 + variance * b
        z_m = -tau * b / p
        z_t = z * (1.0 - variance * b) / p
        s_m = 1.0 / p
        s_t = 2.0 * u / p
        z_mm = -tau * c * s_m * s_m / p
        z_mt = -(tau * b * (1.0 - variance * b) / p + tau * c * s_m * s_t) / p
        z_tt = -(-z + variance * b * z + 2.0 * tau * b * (s_t + tau * z_t)
                 + tau * c * s_t * s_t) / p
        s_mm = tau * z_mm
        s_mt = tau * (z_m + z_mt)
        s_tt = tau * (z + 2.0 * z_t + z_tt)
        p_m = variance * c * s_m
        p_t = variance * (2.0 * b + c * s_t)
        p_mm = variance * (d * s_m * s_m + c * s_mm)
        p_mt = variance * (2.0 * c * s_m + d * s_m * s_t + c * s_mt)
        p_tt = variance * (4.0 * b + 4.0 * c * s_t + d * s_t * s_t + c * s_tt)
        # P^(-1/2), the points' spread in z, and its derivatives.
        r = 1.0 / math.sqrt(p)
        r_m = -0.5 * r * p_m / p
        r_t = -0.5 * r * p_t / p
        r_mm = r * (0.75 * p_m * p_m / p - 0.5 * p_mm) / p
        r_mt = r * (0.75 * p_m * p_t / p - 0.5 * p_mt) / p
        r_tt = r * (0.75 * p_t * p_t / p - 0.5 * p_tt) / p
        at_mode = loss + u * u / (2.0 * variance)
        # h's gradient at the mode, from which every point's is measured.
        h_m = a * s_m + z * z_m
        h_t = a * s_t + z * z_t
        total = 0.0
        mean_m = 0.0  # Σ w e^E δ, δ = ∇h_k - ∇h(û); then over the total
        mean_t = 0.0
        second_mm = 0.0  # Σ w e^E (∇²h_k - δ δ')
        second_mt = 0.0
        second_tt = 0.0
        # Every point but the mode, evaluated together.
        n_points = 0
        for k in range(n_nodes):
            if nodes[k] != 0.0:
                points[n_points] = mean + (u + nodes[k] * tau * r)
                n_points += 1
        if n_points:
            _group_derivatives(centres, moments, low, high, points, n_points, 2,
                               coefficients, sums, values)
        n_points = 0
        for k in range(n_nodes):
            t = nodes[k]
            if t == 0.0:  # the mode itself (Laplace's one point, an odd rule's middle one)
                share, point_loss, a_k, b_k, u_k = weights[k], loss, a, b, u
            else:
                u_k = u + t * tau * r
                point_loss = values[n_points, 0]
                a_k = values[n_points, 1]
                b_k = values[n_points, 2]
                n_points += 1
                if e != 0:
                    point_loss = math.ldexp(point_loss, e)
                    a_k = math.ldexp(a_k, e)
                    b_k = math.ldexp(b_k, e)
                share = weights[k] * math.exp(
                    at_mode - (point_loss + u_k * u_k / (2.0 * variance)) + 0.5 * t * t)
            # z_k = ẑ + t P^(-1/2) and s_k = μ + τ z_k, differentiated.
            z_k = z + t * r
            zk_m = z_m + t * r_m
            zk_t = z_t + t * r_t
            zk_mm = z_mm + t * r_mm
            zk_mt = z_mt + t * r_mt
            zk_tt = z_tt + t * r_tt
            spread = tau * t
            sk_m = s_m + spread * r_m
            sk_t = s_t + spread * (r + r_t)
            sk_mm = s_mm + spread * r_mm
            sk_mt = s_mt + spread * (r_m + r_mt)
            sk_tt = s_tt + spread * (r + 2.0 * r_t + r_tt)
            delta_m = a_k * sk_m + z_k * zk_m - h_m
            delta_t = a_k * sk_t + z_k * zk_t - h_t
            hk_mm = b_k * sk_m * sk_m + a_k * sk_mm + zk_m * zk_m + z_k * zk_mm
            hk_mt = b_k * sk_m * sk_t + a_k * sk_mt + zk_m * zk_t + z_k * zk_mt
            hk_tt = b_k * sk_t * sk_t + a_k * sk_tt + zk_t * zk_t + z_k * zk_tt
            total += share
            mean_m += share * delta_m
            mean_t += share * delta_t
            second_mm += share * (hk_mm - delta_m * delta_m)
            second_mt += share * (hk_mt - delta_m * delta_t)
            second_tt += share * (hk_tt - delta_t * delta_t)
        mean_m /= total
        mean_t /= total
        value = at_mode + 0.5 * math.log1p(variance * b)
        if n_nodes > 1:
            value -= math.log(total)
        out[g, I_VALUE] = value
        out[g, I_MEAN] = 0.5 * p_m / p + h_m + mean_m
        out[g, I_THETA] = 0.5 * p_t / p + h_t + mean_t
        out[g, I_MEAN_MEAN] = (0.5 * (p_mm / p - p_m * p_m / (p * p)) + second_mm / total
                               + mean_m * mean_m)
        out[g, I_MEAN_THETA] = (0.5 * (p_mt / p - p_m * p_t / (p * p)) + second_mt / total
                                + mean_m * mean_t)
        out[g, I_THETA_THETA] = (0.5 * (p_tt / p - p_t * p_t / (p * p)) + second_tt / total
                                 + mean_t * mean_t)
        out[g, I_SHIFT] = mean + u
        out[g, I_CURVATURE] = b
        out[g, I_SHIFT_MEAN] = s_m
        out[g, I_SHIFT_THETA] = s_t
        out[g, I_SHIFT_MEAN_MEAN] = s_mm
        out[g, I_SHIFT_MEAN_THETA] = s_mt
        out[g, I_SHIFT_THETA_THETA] = s_tt
        out[g, I_ITERATIONS] = iterations


@nb.njit(**_OPTIONS)
def weights_by_gap(offsets, labels, weights, has_weights, scale, cuts, start, stop, out):
    """Add rows ``[start, stop)``, already validated, to ``out`` by the gap between the
    sorted cuts they fall in: row ``i`` goes to row ``g`` of ``out``, ``g`` the number of
    cuts at or below its offset, as ``w (1 - y)`` and ``w y``, with ``w`` its weight times
    ``scale``. The rows at or above the ``j``-th cut are then those of the gaps after ``j``:
    what a decision curve counts.

    ``cuts`` is padded with NaN to a power of two longer than the cuts (a NaN is at or below
    no offset), so the search is a fixed number of halvings with no branch on the data.
    """
    half_length = cuts.shape[0] >> 1
    for i in range(start, stop):
        f = float(offsets[i])
        gap = 0
        half = half_length
        while half > 0:
            gap += half * (cuts[gap + half - 1] <= f)
            half >>= 1
        y = float(labels[i])
        w = (weights[i] if has_weights else 1.0) * scale
        out[gap, 0] += w * (1.0 - y)
        out[gap, 1] += w * y


@nb.njit(**_OPTIONS)
def spline_terms(centres, tables, basis, coefficients, sigma_coefficients, factorials):
    """The loss, gradient and Hessian of the spline recalibration ``z = g(offset) = Σ_k β_k
    B_k(offset)`` from the Taylor tables alone.

    Every knot lies on a cell edge, so within cell ``b`` each basis function is a cubic in
    the remainder ``d``: ``basis[b, k, i]`` is the coefficient of ``d^i`` (``i < 4``), and so
    is ``g(c + d) = u + e(d)`` with ``u = g(c)`` and ``e`` a cubic without constant term.
    A function ``φ`` of ``g`` is then the composed series ``Σ_m φ^(m)(u) e(d)^m / m!``
    (truncated at the tables' order), and ``Σ w φ(g) d^i`` is that series dotted with the
    moments shifted by ``i``. The loss takes ``φ = softplus`` for label 0 and
    ``softplus(-·)`` for label 1, the gradient ``σ`` and ``-σ(-·)``, the Hessian ``σ'``:
    each the function small on ``u``'s side, from ``σ^(j)(-|u|)`` as in `sketch_terms`.
    Returns ``1 + K + K²`` numbers: the loss, the gradient and the Hessian (row-major).
    """
    n_cells, _, order = tables.shape
    n_basis = basis.shape[1]
    derivatives = np.empty(order + 2)
    up = np.empty(order + 1)  # σ^(j)(u)
    down = np.empty(order + 1)  # (σ(-·))^(j)(u)
    powers = np.zeros((order, order))  # e(d)^m / m!, by power of d
    cubic = np.zeros(4)
    series = np.zeros((4, order))  # softplus, softplus(-·), σ, -σ(-·), composed with g
    curvature = np.zeros(order)  # σ' composed with g
    moments = np.zeros((2, order))
    loss_sum = np.zeros(2)
    gradient = np.zeros((n_basis, 2))
    hessian = np.zeros((n_basis, n_basis))
    weighted = np.zeros((3, order))  # Σ w φ(g) d^i: gradient (both labels), curvature
    for b in range(n_cells):
        for i in range(4):
            total = 0.0
            for k in range(n_basis):
                total += coefficients[k] * basis[b, k, i]
            cubic[i] = total
        u = cubic[0]
        tail = _derivatives_at(u, sigma_coefficients, derivatives)
        softplus_small = math.log1p(tail)
        right = u > 0
        sign = 1.0
        for j in range(order + 1):
            if right:
                up[j] = 1.0 - derivatives[0] if j == 0 else -sign * derivatives[j]
                down[j] = sign * derivatives[j]
            else:
                up[j] = derivatives[j]
                down[j] = 1.0 - derivatives[0] if j == 0 else -derivatives[j]
            sign = -sign
        # e(d)^m / m! for m < order, each truncated at d^(order - 1).
        for m in range(order):
            for i in range(order):
                powers[m, i] = 0.0
        powers[0, 0] = 1.0
        for m in range(1, order):
            for i in range(m, order):
                total = 0.0
                for step in range(1, 4):
                    if i - step >= m - 1:
                        total += powers[m - 1, i - step] * cubic[step]
                powers[m, i] = total / m
        for i in range(order):
            for f in range(4):
                series[f, i] = 0.0
            curvature[i] = 0.0
        for m in range(order):
            if m == 0:
                plus = softplus_small + (u if right else 0.0)
                minus = softplus_small - (0.0 if right else u)
            else:
                plus = up[m - 1]
                minus = -down[m - 1]
            for i in range(m, order):
                p = powers[m, i]
                series[0, i] += plus * p
                series[1, i] += minus * p
                series[2, i] += up[m] * p
                series[3, i] -= down[m] * p
                curvature[i] += up[m + 1] * p
        for label in range(2):
            for j in range(order):
                moments[label, j] = tables[b, label, j]
        # Σ w φ(g) d^i = Σ_j series[j] M[i + j], one term fewer for each power i.
        for i in range(order):
            grad = 0.0
            curv = 0.0
            for j in range(order - i):
                grad += series[2, j] * moments[0, i + j] + series[3, j] * moments[1, i + j]
                curv += curvature[j] * (moments[0, i + j] + moments[1, i + j])
            weighted[0, i] = grad
            weighted[2, i] = curv
        value = 0.0
        for j in range(order):
            if moments[0, j] != 0.0:
                value += series[0, j] * moments[0, j]
            if moments[1, j] != 0.0:
                value += series[1, j] * moments[1, j]
        loss_sum[0], loss_sum[1] = _add(loss_sum[0], loss_sum[1], value)
        for k in range(n_basis):
            total = 0.0
            for i in range(4):
                total += basis[b, k, i] * weighted[0, i]
            gradient[k, 0], gradient[k, 1] = _add(gradient[k, 0], gradient[k, 1], total)
            for l in range(k, n_basis):
                total = 0.0
                for i in range(4):
                    for i2 in range(4):
                        if i + i2 < order:
                            total += basis[b, k, i] * basis[b, l, i2] * weighted[2, i + i2]
                hessian[k, l] += total
    out = np.empty(1 + n_basis + n_basis * n_basis)
    out[0] = loss_sum[0] + loss_sum[1]
    for k in range(n_basis):
        out[1 + k] = gradient[k, 0] + gradient[k, 1]
        for l in range(n_basis):
            out[1 + n_basis + k * n_basis + l] = hessian[min(k, l), max(k, l)]
    return out


@nb.njit(**_OPTIONS)
def spline_differences(scores, knots, coefficients, out):
    """``out[i] = |σ(g(f_i)) - σ(f_i)|`` for the spline ``g = Σ_k β_k B_k`` of
    `losses.spline_basis`, row by row without forming the ``(n, K)`` basis: the nonlinear
    terms' two shared cubes (of the last two knots) gathered once, so a row costs ``K``
    cubes and two exponentials."""
    k = knots.shape[0]
    before_last, last = knots[k - 2], knots[k - 1]
    norm = (last - knots[0]) * (last - knots[0])
    span = last - before_last
    scaled = np.empty(k - 2)
    shared_last = 0.0
    shared_before = 0.0
    for j in range(k - 2):
        scaled[j] = coefficients[2 + j] / norm
        shared_last += scaled[j] * (before_last - knots[j]) / span
        shared_before -= scaled[j] * (last - knots[j]) / span
    for i in range(scores.shape[0]):
        x = float(scores[i])
        g = coefficients[0] + coefficients[1] * x
        for j in range(k - 2):
            gap = max(x - knots[j], 0.0)
            g += scaled[j] * gap * gap * gap
        gap = max(x - before_last, 0.0)
        g += shared_before * gap * gap * gap
        gap = max(x - last, 0.0)
        g += shared_last * gap * gap * gap
        out[i] = abs(1.0 / (1.0 + math.exp(-g)) - 1.0 / (1.0 + math.exp(-x)))


# -- multiclass: softmax passes -------------------------------------------------------------

# Fields of the output row of `multiclass_pass`: three scalars, then blocks of K per class.
M_LOSS, M_WEIGHT, M_FIRST_BAD, M_SCALE_SQUARE = 0, 1, 2, 3  # M_SCALE_SQUARE: Σ w (pᵀG)²
M_HEAD = 4
#: The per-class blocks, in order: Σ w (p - y), Σ w (p - y) G, Σ w p, Σ w p G, Σ w p G²,
#: Σ w p (pᵀG), Σ w y, Σ w p², Σ w p² G², Σ w G and Σ w over the rows where G is finite.
(M_GRADIENT_BIAS, M_GRADIENT_SCALE, M_PROBABILITY, M_PROBABILITY_LOGIT,
 M_PROBABILITY_LOGIT2, M_CROSS, M_OBSERVED, M_PROBABILITY2, M_PROBABILITY2_LOGIT2,
 M_LOGIT_SUM, M_LOGIT_WEIGHT) = range(11)
M_BLOCKS = 11


@nb.njit(**_OPTIONS)
def multiclass_pass(logits, row_shift, has_row_shift, label_index, label_rows, hard, weights,
                    has_weights, scale, bias, active, with_scale, dense, store, start, stop, out,
                    square, probabilities):
    """One pass of the softmax cross-entropy over rows ``[start, stop)`` at ``(scale, bias)``.

    ``η_k = scale_k G_k + bias_k`` with ``G = logits - row_shift`` (the row's log-sum-exp,
    where ``has_row_shift``), over the ``active`` classes (the others have probability 0).
    Labels are ``label_index`` (``hard``) or the rows of ``label_rows``; with neither (no
    rows in ``label_rows``) the rows are unlabelled and the loss is ``Σ w lse η``. Writes
    into ``out`` (``M_HEAD + M_BLOCKS K``) the loss ``Σ w (lse η - yᵀη)``, ``Σ w``, the first
    bad row (-1 for none) and the sums of the per-class blocks (those that involve ``G``
    only where ``with_scale``); with ``dense`` ≥ 1 adds the upper triangle of ``Σ w p pᵀ``
    to ``square[0]``, with ``dense`` ≥ 2 also ``Σ w (p∘G) pᵀ`` to ``square[1]`` and the
    upper triangle of ``Σ w (p∘G)(p∘G)ᵀ`` to ``square[2]`` (symmetric: the caller mirrors
    them); with ``store`` writes each row's probabilities into ``probabilities``
    (float32, for Hessian-vector products).

    A row is bad where its weight is negative or not finite, a logit is NaN or ``+inf``, a
    class index is outside ``[0, K)``, a soft row has a negative or NaN entry or does not sum
    to 1 within 1e-6, or a row's own class (an index, or a soft label above 0) has logit
    ``-inf``. Bad rows stop nothing: the caller phrases the first one. The sums run plainly
    (no compensation): each thread's range is summed on its own and the ranges added.
    """
    n_classes = logits.shape[1]
    eta = np.empty(n_classes)
    prob = np.empty(n_classes)
    grid = np.empty(n_classes)
    target = np.zeros(n_classes)
    sums = np.zeros((M_BLOCKS, n_classes))
    loss = 0.0
    weight_sum = 0.0
    scale_square = 0.0
    first_bad = -1
    unlabelled = not hard and label_rows.shape[0] == 0
    for i in range(start, stop):
        w = weights[i] if has_weights else 1.0
        if not (w >= 0.0 and w < math.inf):
            if first_bad < 0:
                first_bad = i
            continue
        shift = row_shift[i] if has_row_shift else 0.0
        bad = False
        possible = False  # some class has a finite logit
        top = -math.inf
        for k in range(n_classes):
            f = logits[i, k]
            if f != f or f == math.inf:
                bad = True
            if f > -math.inf:
                possible = True
            if active[k] and f > -math.inf:
                g = f - shift
                value = scale[k] * g + bias[k]
            else:
                g = 0.0
                value = -math.inf
            grid[k] = g
            eta[k] = value
            if value > top:
                top = value
        label = 0
        if hard:
            label = label_index[i]
            if label < 0 or label >= n_classes or logits[i, label] == -math.inf:
                bad = True
        elif not unlabelled:
            total = 0.0
            for k in range(n_classes):
                y = label_rows[i, k]
                if not y >= 0.0 or (y > 0.0 and logits[i, k] == -math.inf):
                    bad = True
                total += y
                target[k] = y
            if not abs(total - 1.0) <= 1e-6:
                bad = True
        if not possible:  # every class ruled out: no recalibration gives the row a class
            bad = True
        if bad:
            if first_bad < 0:
                first_bad = i
            continue
        if w == 0.0:
            continue
        if top == math.inf or top != top:  # a -inf logit under a scale <= 0: no finite loss
            loss = math.inf
            continue
        norm = 0.0
        for k in range(n_classes):
            e = math.exp(eta[k] - top)
            prob[k] = e
            norm += e
        inverse = 1.0 / norm
        log_norm = top + math.log(norm)
        if hard:
            loss += w * (log_norm - eta[label])
            target[label] = 1.0
        elif unlabelled:
            loss += w * log_norm
        else:
            label_eta = 0.0
            for k in range(n_classes):
                if target[k] > 0.0:
                    label_eta += target[k] * eta[k]
            loss += w * (log_norm - label_eta)
        weight_sum += w
        mean_grid = 0.0
        for k in range(n_classes):
            p = prob[k] * inverse
            prob[k] = p
            wp = w * p
            sums[M_GRADIENT_BIAS, k] += wp - w * target[k]
            sums[M_PROBABILITY, k] += wp
            sums[M_OBSERVED, k] += w * target[k]
            sums[M_PROBABILITY2, k] += wp * p
            if store:
                probabilities[i, k] = p
            mean_grid += p * grid[k]
        if with_scale:
            scale_square += w * mean_grid * mean_grid
            for k in range(n_classes):
                p = prob[k]
                g = grid[k]
                wp = w * p
                sums[M_GRADIENT_SCALE, k] += (wp - w * target[k]) * g
                sums[M_PROBABILITY_LOGIT, k] += wp * g
                sums[M_PROBABILITY_LOGIT2, k] += wp * g * g
                sums[M_CROSS, k] += wp * mean_grid
                sums[M_PROBABILITY2_LOGIT2, k] += wp * p * g * g
                if logits[i, k] > -math.inf:
                    sums[M_LOGIT_SUM, k] += w * (logits[i, k] - shift)
                    sums[M_LOGIT_WEIGHT, k] += w
        if hard:
            target[label] = 0.0
        if dense >= 1:  # the upper triangle; the caller mirrors it
            for j in range(n_classes):
                wp = w * prob[j]
                if wp == 0.0:
                    continue
                for k in range(j, n_classes):
                    square[0, j, k] += wp * prob[k]
        if dense >= 2:
            for j in range(n_classes):
                wpg = w * prob[j] * grid[j]
                if wpg == 0.0:
                    continue
                for k in range(n_classes):
                    square[1, j, k] += wpg * prob[k]
                for k in range(j, n_classes):
                    square[2, j, k] += wpg * prob[k] * grid[k]
    out[M_LOSS] += loss
    out[M_WEIGHT] += weight_sum
    out[M_SCALE_SQUARE] += scale_square
    for b in range(M_BLOCKS):
        for k in range(n_classes):
            out[M_HEAD + b * n_classes + k] += sums[b, k]
    out[M_FIRST_BAD] = first_bad


@nb.njit(**_OPTIONS)
def multiclass_hessian_vector(logits, row_shift, has_row_shift, weights, has_weights,
                              probabilities, with_scale, direction_scale, direction_bias,
                              start, stop, out):
    """The Hessian of the softmax cross-entropy in ``(scale, bias)`` times a direction, over
    rows ``[start, stop)``, from the probabilities a pass stored: per row
    ``δη_k = d_scale_k G_k + d_bias_k``, ``J = p∘(δη - pᵀδη)``; adds ``Σ w J`` to
    ``out[:K]`` and, with ``with_scale``, ``Σ w J∘G`` to ``out[K:]``. O(K) per row."""
    n_classes = logits.shape[1]
    grid = np.empty(n_classes)
    step = np.empty(n_classes)
    for i in range(start, stop):
        w = weights[i] if has_weights else 1.0
        if w == 0.0:
            continue
        shift = row_shift[i] if has_row_shift else 0.0
        mean = 0.0
        for k in range(n_classes):
            p = probabilities[i, k]
            g = 0.0
            if with_scale and p > 0.0:  # the logits are read only where the scales move
                g = logits[i, k] - shift
            grid[k] = g
            step[k] = direction_scale[k] * g + direction_bias[k]
            mean += p * step[k]
        for k in range(n_classes):
            j = w * probabilities[i, k] * (step[k] - mean)
            out[k] += j
            if with_scale:
                out[n_classes + k] += j * grid[k]


@nb.njit(**_OPTIONS)
def log_sum_exp_rows(logits, start, stop, out):
    """Each row's ``log Σ_k exp(logits_k)`` into ``out[i]`` (``-inf`` for a row of ``-inf``;
    NaN and ``+inf`` are left to the pass that validates)."""
    n_classes = logits.shape[1]
    for i in range(start, stop):
        top = -math.inf
        for k in range(n_classes):
            if logits[i, k] > top:
                top = logits[i, k]
        if not (top > -math.inf and top < math.inf):
            out[i] = top if top == top else 0.0
            continue
        total = 0.0
        for k in range(n_classes):
            total += math.exp(logits[i, k] - top)
        out[i] = top + math.log(total)


__all__ += ["multiclass_pass", "multiclass_hessian_vector", "log_sum_exp_rows", "M_HEAD",
            "M_BLOCKS"]
