"""Label shift without labels: the maximum-likelihood class priors of unlabelled rows.

Under label shift the class-conditional densities stay and the priors move from the source
``π`` (where the model's posteriors ``p_ik = softmax(F_i)_k`` hold) to a target ``π'``. The
target posteriors are then ``p'_ik ∝ p_ik π'_k / π_k``, that is ``softmax(F_i + b)`` with
``b = log(π' / π)``, and the log-likelihood of the unlabelled rows, relative to ``π' = π``,
is

    ℓ(π') = Σ_i w_i log Σ_k p_ik π'_k / π_k = Σ_i w_i (lse(F_i + b) - lse(F_i)),

concave in ``π'`` on the simplex (the logarithm of a linear function), so its maximum is
global; in ``b`` it is not concave. Saerens, Latinne & Decaestecker (2002) maximise it by
EM: ``π'_k ← Σ w p'_k / Σ w``. Here Newton on the simplex (the exact Hessian
``-D⁻¹ (Σ w p' p'ᵀ) D⁻¹``, ``D = diag(π')``, the constraint ``Σ π' = 1`` by its Lagrange
multiplier) takes over from EM wherever its step stays inside the simplex; EM steps (which
always do, and never lower ℓ) are the fallback, towards a prior on the boundary too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core import jsonsafe as _json
from .._core.kernels import M_PROBABILITY
from .._core.softmax import log_softmax
from .._core.validate import InputError, warn
from .multiclass import DENSE_MAX, MulticlassFit, MulticlassLRTest, SoftmaxPass, SoftmaxSums
from .result import chi2_sf

__all__ = ["PriorShiftFit", "fit_priors", "as_source_priors"]

#: Newton stops once its step in the priors is below this (the priors are at most 1).
DEFAULT_TOL = 1e-12


def as_source_priors(priors: Any, n_classes: int) -> np.ndarray:
    """The source priors as K positive numbers summing to 1 (counts are normalised); a
    float for two classes is the prior of the second (the positives)."""
    if priors is None:
        raise InputError(
            "source_priors is required: the label-shift likelihood divides each posterior "
            "by its class's prior in the data the model was trained (or recalibrated) on. "
            "Pass those class frequencies, or the MulticlassFit of a labelled calibration "
            "set (its weighted label frequencies)", argument="source_priors")
    values = np.asarray(priors, dtype=np.float64) if not isinstance(priors, str) else None
    if values is None or values.dtype.kind != "f":
        raise InputError(f"source_priors must be numbers, got {priors!r}",
                         argument="source_priors", value=priors)
    if values.ndim == 0 and n_classes == 2:
        values = np.array([1.0 - values, values])
    if values.shape != (n_classes,):
        raise InputError(f"source_priors has shape {values.shape}, the logits have "
                         f"{n_classes} classes", argument="source_priors")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(f"source_priors[{k}] = {float(values[k])!r} must be positive and "
                         "finite: a class with prior 0 has no posterior to reweight",
                         argument="source_priors", index=k, value=float(values[k]))
    return values / values.sum()


@dataclass(frozen=True, repr=False)
class PriorShiftFit:
    """The maximum-likelihood class priors of unlabelled rows under label shift.

    Attributes
    ----------
    priors : ndarray, shape (K,)
        The target priors ``π'`` (summing to 1).
    source_priors : ndarray, shape (K,)
        ``π``, as given (normalised), or the labelled fit's weighted label frequencies.
    priors_se : ndarray, shape (K,)
        Standard errors of ``π'`` from the observed information on the simplex
        (``Z (Zᵀ I Z)⁻¹ Zᵀ``, ``Z`` a basis of ``Σ δ = 0``); NaN for a prior on the boundary.
    shift : ndarray, shape (K,)
        ``b = log(π' / π)``, the shift of the logits that the new priors imply (``-inf`` for
        a prior of 0); ``shift_se = priors_se / priors`` (delta method).
    status : str
        ``"converged"``, ``"boundary"`` (converged with a prior at 0, by EM), or
        ``"max_iter"``.
    converged : bool
    iterations, passes : int
    gradient_norm : float
        ``max_k |∂ℓ/∂π'_k / Σ w - 1|`` over the priors above 0 (0 at an interior maximum).
    n_rows, weight_sum : int, float
    log_likelihood : float
        ``ℓ(π')``, relative to ``π' = π`` (total, in nats).
    calibration : MulticlassFit or None
        The labelled fit whose recalibration was applied to the logits first.
    """

    priors: np.ndarray
    source_priors: np.ndarray
    priors_se: np.ndarray
    shift: np.ndarray
    shift_se: np.ndarray
    status: str
    converged: bool
    iterations: int
    passes: int
    gradient_norm: float
    n_rows: int
    weight_sum: float
    log_likelihood: float
    classes: list
    calibration: MulticlassFit | None = None
    logits_is: str = "logit"
    _binary: bool = field(default=False, compare=False)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def lr_test(self) -> MulticlassLRTest:
        """Likelihood-ratio test of no prior shift (``π' = π``): ``2 ℓ(π')``, chi-square
        with K - 1 degrees of freedom."""
        statistic = max(0.0, 2.0 * self.log_likelihood)
        df = self.n_classes - 1
        return MulticlassLRTest(statistic, df, chi2_sf(statistic, df))

    def predict_logits(self, logits: Any) -> np.ndarray:
        """The logits of new rows under the target priors: recalibrated by ``calibration``
        (where given), plus ``shift``; n × K."""
        from .._core.class_input import as_logits

        values = np.asarray(logits)
        if self._binary and values.ndim == 1:
            values = _binary_logits(values, self.logits_is)
            logits_is = "logit"
        else:
            logits_is = self.logits_is
        if self.calibration is not None:
            grid = self.calibration.predict_logits(values)
        else:
            grid = as_logits(values, "logits", logits_is).astype(np.float64)
            if grid.shape[1] != self.n_classes:
                raise InputError(f"logits has {grid.shape[1]} columns, the fit has "
                                 f"{self.n_classes} classes", argument="logits")
        with np.errstate(invalid="ignore"):
            return grid + self.shift

    def predict_proba(self, logits: Any) -> np.ndarray:
        """The posteriors of new rows under the target priors, n × K."""
        return np.exp(log_softmax(self.predict_logits(logits)))

    def to_dict(self, *, json_safe: bool = False) -> dict[str, Any]:
        """Plain Python values; ``json_safe`` as :meth:`ShiftFit.to_dict`."""
        test = self.lr_test()
        record = {
            "classes": list(self.classes), "priors": self.priors.tolist(),
            "priors_se": self.priors_se.tolist(), "source_priors": self.source_priors.tolist(),
            "shift": self.shift.tolist(), "shift_se": self.shift_se.tolist(),
            "status": self.status, "converged": self.converged,
            "iterations": self.iterations, "passes": self.passes,
            "gradient_norm": self.gradient_norm, "n_rows": self.n_rows,
            "weight_sum": self.weight_sum, "log_likelihood": self.log_likelihood,
            "lr_statistic": test.statistic, "lr_df": test.df, "lr_pvalue": test.pvalue,
            "recalibrated": None if self.calibration is None else self.calibration.method,
        }
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        priors = np.array2string(self.priors, precision=4, threshold=8)
        source = np.array2string(self.source_priors, precision=4, threshold=8)
        return (f"PriorShiftFit(priors={priors}, source_priors={source}, "
                f"status={self.status!r}, iterations={self.iterations}, passes={self.passes}, "
                f"gradient_norm={self.gradient_norm:.3g}, n_rows={self.n_rows}, "
                f"weight_sum={self.weight_sum:.10g})")


def _binary_logits(values: np.ndarray, logits_is: str) -> np.ndarray:
    """One column of log-odds (or probabilities of the second class) as two classes'
    logits ``[0, f]`` (or probabilities ``[1 - p, p]``)."""
    values = np.asarray(values, dtype=np.float64)
    if logits_is == "probability":
        return np.column_stack([1.0 - values, values])
    return np.column_stack([np.zeros_like(values), values])


def fit_priors(rows: SoftmaxPass, source_priors: np.ndarray, *, tol: float | None = None,
               max_iter: int = 1000, classes: list | None = None,
               calibration: MulticlassFit | None = None, logits_is: str = "logit",
               binary: bool = False) -> PriorShiftFit:
    """The maximum-likelihood target priors of the unlabelled ``rows`` (see the module)."""
    tol = DEFAULT_TOL if tol is None else tol
    k = rows.n_classes
    ones = np.ones(k)
    source = np.asarray(source_priors, dtype=np.float64)
    dense = k <= 4 * DENSE_MAX

    def evaluate(priors: np.ndarray, *, square: bool) -> SoftmaxSums:
        with np.errstate(divide="ignore"):
            bias = np.log(priors) - np.log(source)
        active = priors > 0
        return rows.evaluate(ones, np.where(active, bias, 0.0), active,
                             dense=1 if square and dense else 0,
                             store=square and not dense, with_scale=False)

    base = evaluate(source, square=False)
    weight_sum = base.weight_sum
    if not weight_sum > 0:
        raise InputError("weight is zero on every row", argument="weight")
    # The first EM step from the source priors: the mean posterior.
    priors = base.block(M_PROBABILITY) / weight_sum
    sums = evaluate(priors, square=True)
    converged, status, iterations = False, "max_iter", 0
    for iteration in range(1, max_iter + 1):
        iterations = iteration
        expected = sums.block(M_PROBABILITY)
        em = expected / weight_sum
        step = None
        if dense and np.all(priors > 0):
            step = _newton_step(sums, priors, expected)
        if step is not None and np.all(priors + step > 0):
            if np.max(np.abs(step)) <= tol:
                priors = _normalised(priors + step)
                converged, status = True, "converged"
                break
            t = 1.0
            while t > 2.0 ** -30:
                trial_priors = _normalised(priors + t * step)
                trial = evaluate(trial_priors, square=True)
                if trial.loss >= sums.loss - 1e-13 * abs(sums.loss):
                    break
                t *= 0.5
            priors, sums = trial_priors, trial
            continue
        # EM: feasible, monotone; also the road to a prior on the boundary.
        change = float(np.max(np.abs(em - priors)))
        priors = _normalised(em)
        if change <= tol:
            converged = True
            status = "boundary" if np.any(priors < 1e-8) else "converged"
            break
        sums = evaluate(priors, square=True)
    if not converged:
        warn(f"the prior-shift fit did not converge after {iterations} iterations; last "
             f"priors {np.array2string(priors, precision=4, threshold=6)}")
    final = evaluate(priors, square=True)
    expected = final.block(M_PROBABILITY)
    positive = priors > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        gradient = np.where(positive, expected / (priors * weight_sum) - 1.0, 0.0)
        shift = np.log(priors) - np.log(source)
    priors_se = _standard_errors(rows, final, priors, dense)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift_se = np.where(positive, priors_se / priors, np.nan)
    return PriorShiftFit(
        priors=priors, source_priors=source, priors_se=priors_se, shift=shift,
        shift_se=shift_se, status=status, converged=converged, iterations=iterations,
        passes=rows.passes, gradient_norm=float(np.max(np.abs(gradient))), n_rows=rows.n_rows,
        weight_sum=weight_sum, log_likelihood=final.loss - base.loss,
        classes=list(classes) if classes else list(range(k)), calibration=calibration,
        logits_is=logits_is, _binary=binary)


def _normalised(priors: np.ndarray) -> np.ndarray:
    priors = np.maximum(priors, 0.0)
    return priors / priors.sum()


def _information(sums: SoftmaxSums, priors: np.ndarray) -> np.ndarray:
    """``-∇²ℓ = D⁻¹ (Σ w p' p'ᵀ) D⁻¹`` in the priors."""
    return sums.square[0] / np.outer(priors, priors)


def _newton_step(sums: SoftmaxSums, priors: np.ndarray, expected: np.ndarray
                 ) -> np.ndarray | None:
    """Newton's step in the priors along ``Σ δ = 0``: the KKT system
    ``[I 1; 1ᵀ 0] [δ; μ] = [g; 0]`` with the information ``I`` and gradient ``g``."""
    k = priors.shape[0]
    information = _information(sums, priors)
    gradient = expected / priors
    system = np.zeros((k + 1, k + 1))
    system[:k, :k] = information
    system[:k, k] = system[k, :k] = 1.0
    try:
        solution = np.linalg.solve(system, np.concatenate([gradient, [0.0]]))
    except np.linalg.LinAlgError:
        return None
    step = solution[:k]
    return step if np.all(np.isfinite(step)) else None


def _standard_errors(rows: SoftmaxPass, sums: SoftmaxSums, priors: np.ndarray,
                     dense: bool) -> np.ndarray:
    """``sqrt diag(Z (Zᵀ I Z)⁻¹ Zᵀ)`` over the priors above 0, ``Z`` a basis of the
    directions that keep the sum (the last prior above 0 takes up the others' change)."""
    k = priors.shape[0]
    se = np.full(k, math.nan)
    positive = np.flatnonzero(priors > 1e-12)
    if positive.shape[0] < 2:
        return np.where(priors > 1e-12, 0.0, np.nan)
    square = sums.square[0] if sums.square is not None else rows.stored_square(1)[0]
    information = (square / np.outer(priors, priors))[np.ix_(positive, positive)]
    m = positive.shape[0]
    basis = np.vstack([np.eye(m - 1), -np.ones((1, m - 1))])
    try:
        inner = np.linalg.inv(basis.T @ information @ basis)
    except np.linalg.LinAlgError:
        return se
    covariance = basis @ inner @ basis.T
    se[positive] = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    return se
