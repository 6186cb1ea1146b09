"""Independent references: high-precision ones computed with mpmath, and plain numpy ones
where double precision suffices.

Nothing here calls logitshift: the references are what the package is checked against.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np

DIGITS = 40


def groups(labels, offsets=0.0, weights=None):
    """``[(offset, label, weight)]`` as mpf, grouping repeated rows."""
    labels = np.asarray(labels, dtype=np.float64)
    offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), labels.shape)
    weights = np.ones_like(labels) if weights is None else np.asarray(weights, np.float64)
    order = np.lexsort((labels, offsets))
    f, y = offsets[order], labels[order]
    starts = np.flatnonzero(np.r_[True, (f[1:] != f[:-1]) | (y[1:] != y[:-1])])
    # Integer-valued weights sum exactly in float64 far beyond any test's size.
    summed = np.add.reduceat(weights[order], starts)
    return [(mp.mpf(float(f[i])), mp.mpf(float(y[i])), mp.mpf(float(w)))
            for i, w in zip(starts, summed) if w > 0]


def _sigmoid(z):
    return 1 / (1 + mp.exp(-z))


def gradient(rows, shift):
    return mp.fsum(w * (_sigmoid(f + shift) - y) for f, y, w in rows)


def hessian(rows, shift):
    return mp.fsum(w * _sigmoid(f + shift) * _sigmoid(-(f + shift)) for f, y, w in rows)


def total_loss(rows, shift):
    def softplus(z):
        return mp.log1p(mp.exp(z))

    return mp.fsum(w * ((1 - y) * softplus(f + shift) + y * softplus(-(f + shift)))
                   for f, y, w in rows)


def shift(labels, offsets=0.0, weights=None) -> mp.mpf:
    """The optimal shift to ``DIGITS`` significant digits (bisection, then Newton)."""
    with mp.workdps(DIGITS + 10):
        rows = groups(labels, offsets, weights)
        positives = mp.fsum(w * y for f, y, w in rows)
        total = mp.fsum(w for f, y, w in rows)
        center = mp.log(positives) - mp.log(total - positives)
        lo = center - max(f for f, y, w in rows)
        hi = center - min(f for f, y, w in rows)
        # Bisection in double precision until Newton is safe, then Newton to full precision.
        lo, hi = float(lo), float(hi)
        f = np.array([float(f) for f, y, w in rows])
        y = np.array([float(y) for f, y, w in rows])
        w = np.array([float(w) for f, y, w in rows])
        for _ in range(2000):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            z = np.clip(f + mid, -700, 700)
            if np.sum(w * ((1 - y) / (1 + np.exp(-z)) - y / (1 + np.exp(z)))) > 0:
                hi = mid
            else:
                lo = mid
        x = mp.mpf(lo) / 2 + mp.mpf(hi) / 2
        for _ in range(100):
            step = gradient(rows, x) / hessian(rows, x)
            x -= step
            if abs(step) < mp.mpf(10) ** (-DIGITS - 5) * max(1, abs(x)):
                break
        else:  # pragma: no cover
            raise RuntimeError("reference Newton did not converge")
        return +x


def _working_bits(rows) -> int:
    """Bits that hold ``offset + shift`` exactly enough for any offset of these rows: at
    offsets of 1e300 the sum of 1e300 and a shift of order 1 needs ~1000 bits more than 53."""
    largest = max((abs(f) for f, y, w in rows), default=mp.mpf(1))
    return 53 + 4 * DIGITS + max(0, int(mp.log(max(largest, 1), 2)) + 1)


def shift_any_offsets(labels, offsets=0.0, weights=None) -> mp.mpf:
    """The optimal shift to ``DIGITS`` digits for offsets of any finite size (1e300 included).

    Newton on ``log(negative part) - log(positive part)``, whose slope is in (0, 2), in enough
    bits that ``offset + shift`` is exact; mpmath's exponents are unbounded, so
    ``σ(-1e300)`` is an ordinary number here.
    """
    rows = groups(labels, offsets, weights)
    with mp.workprec(_working_bits(rows)):
        rows = [(mp.mpf(f), mp.mpf(y), mp.mpf(w)) for f, y, w in rows]
        positives = mp.fsum(w * y for f, y, w in rows)
        total = mp.fsum(w for f, y, w in rows)
        center = mp.log(positives) - mp.log(total - positives)
        lo = center - max(f for f, y, w in rows)
        hi = center - min(f for f, y, w in rows)
        x = center - mp.fsum(w * f for f, y, w in rows) / total
        for _ in range(5000):
            up = [(w, _sigmoid(f + x), _sigmoid(-(f + x)), y) for f, y, w in rows]
            negative = mp.fsum(w * (1 - y) * s for w, s, t, y in up)
            positive = mp.fsum(w * y * t for w, s, t, y in up)
            slope = (mp.fsum(w * (1 - y) * s * t for w, s, t, y in up) / negative
                     + mp.fsum(w * y * s * t for w, s, t, y in up) / positive)
            phi = mp.log(negative) - mp.log(positive)
            if phi > 0:
                hi = x
            else:
                lo = x
            step = -phi / slope
            if not lo < x + step < hi:  # safeguard: bisect
                step = (lo + hi) / 2 - x
            x += step
            if abs(step) < mp.mpf(10) ** (-DIGITS - 5) * max(1, abs(x)):
                break
        else:  # pragma: no cover
            raise RuntimeError("reference Newton did not converge")
        return +x


def sums_any_offsets(labels, offsets, weights, shift) -> dict[str, mp.mpf]:
    """Hessian and total loss at ``shift`` (an mpf), for offsets of any finite size."""
    rows = groups(labels, offsets, weights)
    with mp.workprec(_working_bits(rows)):
        x = mp.mpf(shift)
        hessian = mp.fsum(w * _sigmoid(f + x) * _sigmoid(-(f + x)) for f, y, w in rows)
        loss = mp.fsum(w * ((1 - y) * mp.log1p(mp.exp(f + x)) + y * mp.log1p(mp.exp(-(f + x))))
                       for f, y, w in rows)
        return {"hessian": +hessian, "loss": +loss}


def penalised_shift(y, offset, weight, l2) -> tuple[float, float]:
    """``argmin_s Σ w BCE(y, offset + s) + l2 s² / 2`` by damped Newton from 0 in numpy (the
    penalised loss is strictly convex with curvature >= l2; a step longer than 1 is halved,
    since far from the root a one-class group's step overshoots), and the curvature there,
    ``Σ w σ(z) σ(-z) + l2``."""
    shift = 0.0
    for _ in range(5000):
        p, q = _sigmoid_pair(offset + shift)
        gradient = float(np.sum(weight * ((1.0 - y) * p - y * q))) + l2 * shift  # p - y
        hessian = float(np.sum(weight * p * q)) + l2
        step = gradient / hessian
        while abs(step) > 1.0:
            step *= 0.5
        shift -= step
        if abs(step) <= 1e-16 * max(1.0, abs(shift)):
            break
    p, q = _sigmoid_pair(offset + shift)
    return shift, float(np.sum(weight * p * q)) + l2


def _sigmoid_pair(z):
    """σ(z) and σ(-z), each without cancellation (σ(z) near 1e-300 keeps its digits)."""
    small = np.exp(-np.abs(z))
    near, tail = 1.0 / (1.0 + small), small / (1.0 + small)
    return np.where(z >= 0, near, tail), np.where(z >= 0, tail, near)
