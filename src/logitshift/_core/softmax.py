"""The numpy reference math of the softmax cross-entropy: the oracle of the multiclass
kernels (`kernels.multiclass_pass`), the pseudo-rows' sums, and the metrics of
:func:`logitshift.multiclass_metrics`.

Logits ``G`` (n × K), labels as one-hot or soft rows ``Y`` (n × K, rows summing to 1),
weights ``w``. The linear predictor is ``η = scale ∘ G + bias`` (per class), the
probabilities ``p = softmax(η)`` and the loss ``Σ_i w_i (log Σ_k exp η_ik - Σ_k Y_ik η_ik)``.
A logit of ``-inf`` is a class the row gives probability 0; it adds nothing to any sum.
"""

from __future__ import annotations

import numpy as np

from .kernels import (M_BLOCKS, M_CROSS, M_GRADIENT_BIAS, M_GRADIENT_SCALE, M_HEAD,
                      M_LOGIT_SUM, M_LOGIT_WEIGHT, M_LOSS, M_OBSERVED, M_PROBABILITY,
                      M_PROBABILITY2, M_PROBABILITY2_LOGIT2, M_PROBABILITY_LOGIT,
                      M_PROBABILITY_LOGIT2, M_SCALE_SQUARE, M_WEIGHT)

__all__ = ["log_softmax", "softmax", "softmax_sums", "top_label_ece", "classwise_ece",
           "brier_score"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``logits - log Σ_k exp(logits_k)`` of each row, float64 (``-inf`` stays ``-inf``)."""
    logits = np.asarray(logits, dtype=np.float64)
    top = np.max(logits, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return logits - top - np.log(np.sum(np.exp(logits - top), axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """The probabilities of each row of logits, float64."""
    return np.exp(log_softmax(logits))


def softmax_sums(grid: np.ndarray, labels: np.ndarray | None, weights: np.ndarray,
                 scale: np.ndarray, bias: np.ndarray, active: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """What `kernels.multiclass_pass` writes, in numpy: the output row (loss, weight, first
    bad row -1, ``Σ w (pᵀG)²``, then the per-class blocks) and the three K × K sums
    ``Σ w p pᵀ``, ``Σ w (p∘G) pᵀ``, ``Σ w (p∘G)(p∘G)ᵀ``. ``labels`` is n × K (one-hot or
    soft), or None for unlabelled rows. ``grid`` is already normalised (``G``)."""
    grid = np.asarray(grid, dtype=np.float64)
    n, k = grid.shape
    finite = np.isfinite(grid) & active[None, :]
    with np.errstate(invalid="ignore"):
        eta = np.where(finite, scale[None, :] * grid + bias[None, :], -np.inf)
    top = np.max(eta, axis=1, keepdims=True)
    exps = np.exp(eta - top)
    norm = exps.sum(axis=1, keepdims=True)
    prob = exps / norm
    log_norm = top[:, 0] + np.log(norm[:, 0])
    g = np.where(finite, grid, 0.0)
    y = np.zeros((n, k)) if labels is None else np.asarray(labels, dtype=np.float64)
    label_eta = np.sum(np.where(y > 0, y * np.where(finite, eta, 0.0), 0.0), axis=1)
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros(M_HEAD + M_BLOCKS * k)
    out[M_LOSS] = np.sum(w * (log_norm - label_eta))
    out[M_WEIGHT] = np.sum(w)
    out[2] = -1
    mean_grid = np.sum(prob * g, axis=1)
    out[M_SCALE_SQUARE] = np.sum(w * mean_grid ** 2)
    wp = w[:, None] * prob
    blocks = {
        M_GRADIENT_BIAS: w[:, None] * (prob - y),
        M_GRADIENT_SCALE: w[:, None] * (prob - y) * g,
        M_PROBABILITY: wp,
        M_PROBABILITY_LOGIT: wp * g,
        M_PROBABILITY_LOGIT2: wp * g * g,
        M_CROSS: wp * mean_grid[:, None],
        M_OBSERVED: w[:, None] * y,
        M_PROBABILITY2: wp * prob,
        M_PROBABILITY2_LOGIT2: wp * prob * g * g,
        M_LOGIT_SUM: np.where(np.isfinite(grid), w[:, None] * np.where(np.isfinite(grid),
                                                                        grid, 0.0), 0.0),
        M_LOGIT_WEIGHT: np.where(np.isfinite(grid), w[:, None], 0.0),
    }
    for block, values in blocks.items():
        out[M_HEAD + block * k:M_HEAD + (block + 1) * k] = values.sum(axis=0)
    square = np.stack([wp.T @ prob, (wp * g).T @ prob, (wp * g).T @ (prob * g)])
    return out, square


def brier_score(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The multiclass Brier score ``Σ_i w_i Σ_k (p_ik - y_ik)² / Σ w`` (Brier 1950: between
    0 and 2)."""
    return float(np.sum(weights * np.sum((probabilities - labels) ** 2, axis=1))
                 / np.sum(weights))


def _binned_gap(confidence: np.ndarray, outcome: np.ndarray, weights: np.ndarray,
                bins: int) -> float:
    """``Σ_b W_b |mean outcome_b - mean confidence_b| / Σ W`` over equal-width bins of
    ``[0, 1]`` (the last closed), the means weighted."""
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    weight = np.bincount(index, weights, minlength=bins)
    gap = np.abs(np.bincount(index, weights * outcome, minlength=bins)
                 - np.bincount(index, weights * confidence, minlength=bins))
    return float(np.sum(gap) / np.sum(weight))


def top_label_ece(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                  bins: int = 15) -> float:
    """Top-label expected calibration error (Guo et al. 2017): each row's largest
    probability (the first class among ties) against the weight of its label on that
    class, in ``bins`` equal-width bins of confidence, each bin counted by its weight."""
    top = np.argmax(probabilities, axis=1)
    rows = np.arange(probabilities.shape[0])
    return _binned_gap(probabilities[rows, top], labels[rows, top], weights, bins)


def classwise_ece(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                  bins: int = 15) -> float:
    """Class-wise expected calibration error (Kull et al. 2019): the mean over classes of
    each class's binned gap between ``p_k`` and ``y_k``, ``bins`` equal-width bins, every
    row in every class's bins."""
    return float(np.mean([_binned_gap(probabilities[:, k], labels[:, k], weights, bins)
                          for k in range(probabilities.shape[1])]))
