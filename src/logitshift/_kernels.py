"""numba kernels, and nothing else: the one-pass sketch fill, the exact pass, the sketch sums.

Every kernel reads the caller's arrays in place, whatever their dtype (float32/float64
offsets; bool, integer or float labels and weights), and allocates nothing the size of the
data. Parallel kernels split the rows into one contiguous range per thread; each thread owns
its slice of the output, and the caller combines the slices. Sums are compensated
(Neumaier), with rows first summed in short blocks, so they stay accurate over billions of
rows. The numpy reference (`_losses.py`, `_solve.ArrayCurve`, `_sketch.fill_reference`) is the
oracle the tests hold these kernels to.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "STAT", "N_STATS", "N_TERMS", "scan", "exact_terms", "sketch_terms", "derivative_coefficients",
]

_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy"}

#: Rows summed plainly before a block's sum joins the compensated total.
_BLOCK = 256


# Columns of the per-thread statistics that `scan` returns (module constants, so that numba
# folds them).
S_WEIGHT, S_WEIGHT_C = 0, 1  # Σ w over every row (value, compensation)
S_POSITIVES, S_POSITIVES_C = 2, 3  # Σ w y over every row
S_ACTIVE_NEG, S_ACTIVE_NEG_C = 4, 5  # Σ w (1 - y) over rows with a finite offset
S_ACTIVE_POS, S_ACTIVE_POS_C = 6, 7  # Σ w y over rows with a finite offset
S_WEIGHTED_OFFSET, S_WEIGHTED_OFFSET_C = 8, 9  # Σ w f over rows with a finite offset
S_OFFSET_MIN, S_OFFSET_MAX = 10, 11  # over rows with w > 0 and a finite offset
S_ANCHOR, S_LOW, S_HIGH = 12, 13, 14  # the thread's table window: first cell, rows used
S_OVERFLOW = 15  # rows whose cell fell outside the window
S_FIRST_BAD = 16  # first row that fails validation, or -1


class STAT:
    """The statistics' columns, by name, for Python callers."""

    WEIGHT, WEIGHT_C, POSITIVES, POSITIVES_C = S_WEIGHT, S_WEIGHT_C, S_POSITIVES, S_POSITIVES_C
    ACTIVE_NEG, ACTIVE_NEG_C, ACTIVE_POS, ACTIVE_POS_C = (S_ACTIVE_NEG, S_ACTIVE_NEG_C,
                                                          S_ACTIVE_POS, S_ACTIVE_POS_C)
    WEIGHTED_OFFSET, WEIGHTED_OFFSET_C = S_WEIGHTED_OFFSET, S_WEIGHTED_OFFSET_C
    OFFSET_MIN, OFFSET_MAX = S_OFFSET_MIN, S_OFFSET_MAX
    ANCHOR, LOW, HIGH, OVERFLOW, FIRST_BAD = S_ANCHOR, S_LOW, S_HIGH, S_OVERFLOW, S_FIRST_BAD


N_STATS = 17
#: negative, positive, gradient (certain part), gradient (tails), negative and positive
#: curvature, loss: the fields of `_solve.Terms`, the gradient in two parts.
N_TERMS = 7


@nb.njit(**_OPTIONS)
def _add(total, compensation, value):
    """Neumaier's compensated addition; returns the new (total, compensation)."""
    t = total + value
    if abs(total) >= abs(value):
        compensation += (total - t) + value
    else:
        compensation += (value - t) + total
    return t, compensation


@nb.njit(**_OPTIONS)
def _bad_row(y, f, w):
    """Whether a row fails validation: a NaN, a label outside [0, 1], a negative or infinite
    weight, or an infinite offset that contradicts its label."""
    if not (y >= 0.0 and y <= 1.0) or f != f or not (w >= 0.0 and w < math.inf):
        return True
    if w > 0.0 and ((f == math.inf and y < 1.0) or (f == -math.inf and y > 0.0)):
        return True
    return False


@nb.njit(parallel=True, **_OPTIONS)
def scan(offsets, has_offsets, constant_offset, labels, weights, has_weights,
         inv_width, width, order, tables, n_threads):
    """Validate, total and (for ``order > 0``) fill the Taylor tables, in one pass.

    ``tables[t, k, label, j]`` (zeros on entry) receives ``Σ w_label d^j`` for the rows of
    thread ``t`` whose cell ``floor(f / width)`` is ``anchor_t - half + k``, with
    ``d = f - (cell + 1/2) width`` and ``w_label = w (1 - y)`` (label 0) or ``w y`` (label 1).
    Rows outside the window are only counted (``OVERFLOW``); the caller redoes them.
    Returns the statistics ``(n_threads, N_STATS)``.
    """
    n = labels.shape[0]
    half = tables.shape[1] // 2
    stats = np.zeros((n_threads, N_STATS))
    chunk = (n + n_threads - 1) // n_threads
    for t in nb.prange(n_threads):
        start = t * chunk
        stop = min(n, start + chunk)
        st = stats[t]
        st[S_OFFSET_MIN] = math.inf
        st[S_OFFSET_MAX] = -math.inf
        st[S_FIRST_BAD] = -1.0
        st[S_LOW] = tables.shape[1]
        st[S_HIGH] = -1.0
        anchor = math.nan
        for block in range(start, stop, _BLOCK):
            b_weight = 0.0
            b_positives = 0.0
            b_neg = 0.0
            b_pos = 0.0
            b_offset = 0.0
            for i in range(block, min(stop, block + _BLOCK)):
                y = float(labels[i])
                f = float(offsets[i]) if has_offsets else constant_offset
                w = float(weights[i]) if has_weights else 1.0
                if _bad_row(y, f, w):
                    st[S_FIRST_BAD] = i
                    break
                b_weight += w
                b_positives += w * y
                if w == 0.0 or not math.isfinite(f):
                    continue  # no weight, or a certain row that agrees with its label
                neg = w - w * y
                pos = w * y
                b_neg += neg
                b_pos += pos
                b_offset += w * f
                st[S_OFFSET_MIN] = min(st[S_OFFSET_MIN], f)
                st[S_OFFSET_MAX] = max(st[S_OFFSET_MAX], f)
                if order == 0:
                    continue
                cell = np.floor(f * inv_width)  # a float: math.floor would be an int64
                if anchor != anchor:
                    anchor = cell
                    st[S_ANCHOR] = anchor
                position = cell - anchor + half
                if not (position >= 0 and position < 2 * half):
                    st[S_OVERFLOW] += 1.0
                    continue
                k = int(position)
                st[S_LOW] = min(st[S_LOW], k)
                st[S_HIGH] = max(st[S_HIGH], k)
                d = f - (cell + 0.5) * width
                row = tables[t, k]
                if pos == 0.0:
                    power = neg
                    for j in range(order):
                        row[0, j] += power
                        power *= d
                elif neg == 0.0:
                    power = pos
                    for j in range(order):
                        row[1, j] += power
                        power *= d
                else:
                    power = 1.0
                    for j in range(order):
                        row[0, j] += neg * power
                        row[1, j] += pos * power
                        power *= d
            st[S_WEIGHT], st[S_WEIGHT_C] = _add(st[S_WEIGHT], st[S_WEIGHT_C],
                                                      b_weight)
            st[S_POSITIVES], st[S_POSITIVES_C] = _add(
                st[S_POSITIVES], st[S_POSITIVES_C], b_positives)
            st[S_ACTIVE_NEG], st[S_ACTIVE_NEG_C] = _add(
                st[S_ACTIVE_NEG], st[S_ACTIVE_NEG_C], b_neg)
            st[S_ACTIVE_POS], st[S_ACTIVE_POS_C] = _add(
                st[S_ACTIVE_POS], st[S_ACTIVE_POS_C], b_pos)
            st[S_WEIGHTED_OFFSET], st[S_WEIGHTED_OFFSET_C] = _add(
                st[S_WEIGHTED_OFFSET], st[S_WEIGHTED_OFFSET_C], b_offset)
            if st[S_FIRST_BAD] >= 0:
                break
    return stats


@nb.njit(**_OPTIONS)
def _softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@nb.njit(parallel=True, **_OPTIONS)
def exact_terms(offsets, has_offsets, constant_offset, labels, weights, has_weights, shift,
                n_threads):
    """The sums of `_solve.Terms` at ``shift`` over every row, exactly (one pass).

    Returns ``(n_threads, 2 * N_TERMS)``: per thread, each sum and its compensation. The
    gradient comes in two parts, the weights of certain mistakes and the tails (see
    `_solve.ArrayCurve.evaluate`). Rows of zero weight or infinite offset add nothing.
    """
    n = labels.shape[0]
    out = np.zeros((n_threads, 2 * N_TERMS))
    chunk = (n + n_threads - 1) // n_threads
    for t in nb.prange(n_threads):
        start = t * chunk
        stop = min(n, start + chunk)
        acc = out[t]
        sums = np.empty(N_TERMS)
        for block in range(start, stop, _BLOCK):
            sums[:] = 0.0
            for i in range(block, min(stop, block + _BLOCK)):
                f = float(offsets[i]) if has_offsets else constant_offset
                w = float(weights[i]) if has_weights else 1.0
                if w == 0.0 or not math.isfinite(f):
                    continue
                y = float(labels[i])
                neg = w - w * y
                pos = w * y
                z = f + shift
                tail = math.exp(-abs(z))
                near = 1.0 / (1.0 + tail)
                tail *= near
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
                loss = 0.0
                if neg > 0.0:
                    loss += neg * _softplus(z)
                if pos > 0.0:
                    loss += pos * _softplus(-z)
                sums[6] += loss
            for j in range(N_TERMS):
                acc[j], acc[N_TERMS + j] = _add(acc[j], acc[N_TERMS + j], sums[j])
    return out


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


@nb.njit(**_OPTIONS)
def sketch_terms(cells, tables, width, shift, coefficients, factorials):
    """The sums of `_solve.Terms` at ``shift`` from the Taylor tables alone.

    ``cells[b]`` is a cell's index, ``tables[b, label, j] = Σ w_label d^j``. With ``u`` the
    cell centre plus the shift, every sum is ``Σ_j g^(j)(u) / j! · tables[b, ·, j]`` for its
    function ``g``. All derivatives come from ``D_j = σ^(j)(-|u|)``, polynomials in
    ``σ(-|u|) <= 1/2`` and so accurate in the tails; mirror symmetry gives the other side.
    Cells wholly on one side of ``z = 0`` split their gradient into certain weight and tails
    as the exact pass does. Returns ``(N_TERMS, 2)``: each sum and its compensation.
    """
    n_cells, _, order = tables.shape
    out = np.zeros((N_TERMS, 2))
    derivatives = np.empty(order + 1)
    values = np.empty(N_TERMS)
    half_width = 0.5 * width
    for b in range(n_cells):
        u = (cells[b] + 0.5) * width + shift
        tail = math.exp(-abs(u))
        s = tail / (1.0 + tail)  # σ(-|u|)
        for j in range(order + 1):
            p = 0.0
            for k in range(order + 1, -1, -1):
                p = p * s + coefficients[j, k]
            derivatives[j] = p
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
        far = derivatives[0]
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
        curv_neg += derivatives[1] * m_neg
        curv_pos += derivatives[1] * m_pos
        # Tails of the gradient: Σ_j t^(j)(u)/j! (M_neg + M_pos)_j with t = σ(-|z|) on this side.
        tails += far * (m_neg + m_pos)
        sign = 1.0
        for j in range(1, order):
            m_neg = tables[b, 0, j] / factorials[j]
            m_pos = tables[b, 1, j] / factorials[j]
            d_j = derivatives[j]
            # σ^(j)(u) = D_j for u <= 0 and (-1)^(j+1) D_j for u > 0;
            # (σ(-·))^(j)(u) = (-1)^j σ^(j)(-u).
            sign = -sign  # (-1)^j
            if right:
                up = -sign * d_j  # σ^(j)(u)
                down = sign * d_j  # (σ(-·))^(j)(u)
                curv = sign * derivatives[j + 1]  # σ^(j+1)(u)
            else:
                up = d_j
                down = -d_j
                curv = derivatives[j + 1]
            negative += up * m_neg
            positive += down * m_pos
            curv_neg += curv * m_neg
            curv_pos += curv * m_pos
            tails += (down if right else up) * (m_neg + m_pos)
            # softplus^(j) = σ^(j-1), and softplus(-z) = softplus(z) - z.
            if right:
                sp_up = 1.0 - derivatives[0] if j == 1 else sign * derivatives[j - 1]
                sp_down = sign * derivatives[j - 1]
            else:
                sp_up = derivatives[j - 1]
                sp_down = derivatives[0] - 1.0 if j == 1 else derivatives[j - 1]
            loss += sp_up * m_neg + sp_down * m_pos
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
    return out
