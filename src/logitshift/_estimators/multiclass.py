"""Multiclass recalibration: per-class shifts, temperature, bias-corrected temperature and
vector scaling, fitted by Newton with the exact Hessian on a *softmax pass*.

The estimator sees the rows only through a pass (:class:`SoftmaxPass`): for given
``(scale, bias)`` on the full parameterisation ``η_ik = scale_k G_ik + bias_k`` it returns
the sums of one pass over every row (:class:`SoftmaxSums`: the loss, the gradient, and
what Newton needs of the Hessian), and optionally Hessian-vector products. Each method is
a linear map (:class:`Parameters`) from its free parameters to ``(scale, bias)``:

=====================  ==========================  ===========================
method                 free parameters             identifiable
=====================  ==========================  ===========================
``"shift"``            ``bias`` (K)                K - 1 (a common constant)
``"temperature"``      one ``scale`` (β = 1/T)     1
``"bias_temperature"`` β and ``bias``              K
``"vector"``           ``scale_k`` and ``bias_k``  2K - 1
=====================  ==========================  ===========================

The loss ``Σ w CE(y, softmax(η))`` is convex in ``(scale, bias)`` (a log-sum-exp of a
linear map minus a linear function), so Newton with a backtracking line search converges
from any start, and its last step bounds the distance to the minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._core import jsonsafe as _json
from .._core.kernels import (M_BLOCKS, M_CROSS, M_GRADIENT_BIAS, M_GRADIENT_SCALE, M_HEAD,
                             M_LOGIT_SUM, M_LOGIT_WEIGHT, M_LOSS, M_OBSERVED, M_PROBABILITY,
                             M_PROBABILITY2, M_PROBABILITY2_LOGIT2, M_PROBABILITY_LOGIT,
                             M_PROBABILITY_LOGIT2, M_SCALE_SQUARE, M_WEIGHT)
from .._core.softmax import log_softmax, softmax_sums
from .._core.validate import InputError, as_positive_int, warn
from .result import chi2_sf, normal_quantile

__all__ = ["METHODS", "SoftmaxSums", "SoftmaxPass", "ReferencePass", "Parameters",
           "MulticlassFit", "ClassObservedExpected", "MulticlassLRTest", "fit_softmax",
           "check_multiclass_options", "newton", "DENSE_MAX",
           "MulticlassMetrics",
           "DEFAULT_TOL"]

METHODS = ("shift", "temperature", "bias_temperature", "vector")

#: Newton stops once a step is below ``DEFAULT_TOL · max(1, |parameters|)``; that step is
#: applied, and Newton's quadratic convergence leaves an error far below it.
DEFAULT_TOL = 1e-9

#: Up to this many classes the Hessian is formed (``O(n K²)`` per pass); above, Newton-CG
#: multiplies it by vectors (``O(n K)`` each). Measured in ``benchmarks/multiclass.py``.
DENSE_MAX = 64

_SLACK = 1e-13  # relative rounding allowed in the line search's comparison of losses


@dataclass(frozen=True)
class SoftmaxSums:
    """The sums of one pass at ``(scale, bias)``, as `kernels.multiclass_pass` writes them.

    ``row`` holds the loss ``Σ w (lse η - yᵀη)``, ``Σ w``, the first bad row, ``Σ w (pᵀG)²``
    and the per-class blocks; ``square`` the K × K sums ``Σ w p pᵀ``, ``Σ w (p∘G) pᵀ``,
    ``Σ w (p∘G)(p∘G)ᵀ`` (or None where the pass did not form them). Additive over rows.
    """

    row: np.ndarray
    square: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return (self.row.shape[0] - M_HEAD) // M_BLOCKS

    def block(self, which: int) -> np.ndarray:
        k = self.n_classes
        return self.row[M_HEAD + which * k:M_HEAD + (which + 1) * k]

    @property
    def loss(self) -> float:
        return float(self.row[M_LOSS])

    @property
    def weight_sum(self) -> float:
        return float(self.row[M_WEIGHT])

    def __add__(self, other: SoftmaxSums) -> SoftmaxSums:
        square = (None if self.square is None or other.square is None
                  else self.square + other.square)
        return SoftmaxSums(self.row + other.row, square)


class SoftmaxPass(Protocol):
    """Rows seen through passes: what the multiclass estimators need of a summary.

    ``evaluate`` makes one pass at ``(scale, bias)`` over the ``active`` classes (the others
    have probability 0), with the sums that involve the logits themselves where
    ``with_scale`` asks (the scales' gradient and Hessian, the mean logits), forming the
    K × K sums where ``dense`` asks (1: ``Σ w p pᵀ``; 2: all
    three) and keeping each row's probabilities where ``store`` asks, for
    ``hessian_vector``, which multiplies the Hessian at that point by a direction
    (``Σ w J`` and, with ``with_scale``, ``Σ w J∘G``, ``J = p∘(δη - pᵀδη)``).
    ``stored_square`` forms the K × K sums from the stored probabilities (float32).
    ``subsample`` is a strided subsample of the rows to start from, or None where the rows
    are few. ``normalised``: whether ``G`` is each row's log-softmax of the logits.
    """

    n_rows: int
    n_classes: int
    passes: int
    hessian_products: int

    def evaluate(self, scale: np.ndarray, bias: np.ndarray, active: np.ndarray, *,
                 dense: int = 0, store: bool = False, with_scale: bool = True
                 ) -> SoftmaxSums: ...

    def hessian_vector(self, direction_scale: np.ndarray, direction_bias: np.ndarray, *,
                       with_scale: bool) -> tuple[np.ndarray, np.ndarray]: ...

    def stored_square(self, level: int) -> np.ndarray: ...

    def subsample(self) -> SoftmaxPass | None: ...


class ReferencePass:
    """A softmax pass in numpy over a few rows (the pseudo-rows, and the tests' oracle):
    ``grid`` (n × K, already normalised), ``labels`` (n × K one-hot or soft, or None)."""

    def __init__(self, grid: np.ndarray, labels: np.ndarray | None, weights: np.ndarray
                 ) -> None:
        self.grid, self.labels = np.asarray(grid, dtype=np.float64), labels
        self.weights = np.asarray(weights, dtype=np.float64)
        self.n_rows, self.n_classes = self.grid.shape
        self.passes = self.hessian_products = 0
        self._last: SoftmaxSums | None = None

    def evaluate(self, scale: np.ndarray, bias: np.ndarray, active: np.ndarray, *,
                 dense: int = 0, store: bool = False, with_scale: bool = True) -> SoftmaxSums:
        self.passes += 1
        row, square = softmax_sums(self.grid, self.labels, self.weights, scale, bias, active)
        self._last = SoftmaxSums(row, square)
        return self._last

    def hessian_vector(self, direction_scale: np.ndarray, direction_bias: np.ndarray, *,
                       with_scale: bool) -> tuple[np.ndarray, np.ndarray]:
        self.hessian_products += 1
        return _dense_product(self._last.square, self._last, direction_scale, direction_bias)

    def stored_square(self, level: int) -> np.ndarray:
        return self._last.square

    def subsample(self) -> None:
        return None


def _dense_product(square: np.ndarray, sums: SoftmaxSums, direction_scale: np.ndarray,
                   direction_bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The full Hessian times ``(direction_scale, direction_bias)`` from the dense sums."""
    a, b, c = square
    bias = (sums.block(M_PROBABILITY) * direction_bias - a @ direction_bias
            + sums.block(M_PROBABILITY_LOGIT) * direction_scale - b.T @ direction_scale)
    scale = (sums.block(M_PROBABILITY_LOGIT) * direction_bias - b @ direction_bias
             + sums.block(M_PROBABILITY_LOGIT2) * direction_scale - c @ direction_scale)
    return bias, scale


class Parameters:
    """A method's free parameters and their map to the full ``(scale, bias)``.

    Classes outside ``active`` (no weight among the labels) have probability 0: their
    shift is ``-inf`` and they hold no parameter. ``fixed_scale`` makes ``"shift"`` fit
    the biases at that common scale (the profile of the temperature).
    """

    def __init__(self, method: str, active: np.ndarray, fixed_scale: float = 1.0) -> None:
        self.method, self.active = method, np.asarray(active, dtype=bool)
        self.n_classes = self.active.shape[0]
        self.index = np.flatnonzero(self.active)
        self.fixed_scale = fixed_scale
        n = self.index.shape[0]
        self.n_active = n
        self.has_bias = method != "temperature"
        self.shared_scale = method in ("temperature", "bias_temperature")
        self.n_scale = {"shift": 0, "temperature": 1, "bias_temperature": 1, "vector": n}[method]
        self.n_free = self.n_scale + (n if self.has_bias else 0)
        #: the Hessian's null direction (a constant added to every bias), normalised
        self.gauge: np.ndarray | None = None
        if self.has_bias:
            self.gauge = np.zeros(self.n_free)
            self.gauge[self.n_scale:] = 1.0 / math.sqrt(n)
        #: which K × K sums the dense Hessian needs
        self.square_level = {"shift": 1, "temperature": 0, "bias_temperature": 1,
                             "vector": 2}[method]

    def full(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, bias)`` over all K classes (0 for a class outside ``active``)."""
        scale = np.full(self.n_classes, self.fixed_scale)
        bias = np.zeros(self.n_classes)
        if self.shared_scale:
            scale[:] = free[0]
        elif self.method == "vector":
            scale[self.index] = free[:self.n_scale]
        if self.has_bias:
            bias[self.index] = free[self.n_scale:]
        return scale, bias

    def start(self, observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Scale 1 and the biases ``log(O_k / E_k)``, centred: exact for constant logits."""
        free = np.ones(self.n_free)
        if self.method == "shift" and self.fixed_scale != 1.0:
            free = np.zeros(self.n_free)
        if self.has_bias:
            with np.errstate(divide="ignore"):
                bias = np.log(observed[self.index]) - np.log(expected[self.index])
            bias = np.where(np.isfinite(bias), bias, 0.0)
            free[self.n_scale:] = bias - bias.mean()
        return free

    def gradient(self, sums: SoftmaxSums) -> np.ndarray:
        gradient_bias = sums.block(M_GRADIENT_BIAS)[self.index]
        gradient_scale = sums.block(M_GRADIENT_SCALE)
        parts = []
        if self.shared_scale:
            parts.append([gradient_scale.sum()])
        elif self.method == "vector":
            parts.append(gradient_scale[self.index])
        if self.has_bias:
            parts.append(gradient_bias)
        return np.concatenate(parts)

    def _shared_scale_terms(self, sums: SoftmaxSums) -> tuple[float, np.ndarray]:
        """``∂²/∂β²`` and ``∂²/∂β ∂bias`` of a shared scale, from O(K) sums."""
        scale_scale = (sums.block(M_PROBABILITY_LOGIT2).sum() - sums.row[M_SCALE_SQUARE])
        scale_bias = (sums.block(M_PROBABILITY_LOGIT) - sums.block(M_CROSS))[self.index]
        return float(scale_scale), scale_bias

    def hessian(self, sums: SoftmaxSums) -> np.ndarray:
        """The Hessian in the free parameters, from a pass that formed ``square_level``."""
        index = self.index
        if self.method == "temperature":
            return np.array([[self._shared_scale_terms(sums)[0]]])
        grid = np.ix_(index, index)
        bias_bias = np.diag(sums.block(M_PROBABILITY)[index]) - sums.square[0][grid]
        if self.method == "shift":
            return bias_bias
        if self.method == "bias_temperature":
            scale_scale, scale_bias = self._shared_scale_terms(sums)
            return np.block([[np.array([[scale_scale]]), scale_bias[None, :]],
                             [scale_bias[:, None], bias_bias]])
        scale_scale = (np.diag(sums.block(M_PROBABILITY_LOGIT2)[index])
                       - sums.square[2][grid])
        scale_bias = np.diag(sums.block(M_PROBABILITY_LOGIT)[index]) - sums.square[1][grid]
        return np.block([[scale_scale, scale_bias], [scale_bias.T, bias_bias]])

    def diagonal(self, sums: SoftmaxSums) -> np.ndarray:
        """The Hessian's diagonal (the preconditioner of conjugate gradients)."""
        index = self.index
        parts = []
        if self.shared_scale:
            parts.append([self._shared_scale_terms(sums)[0]])
        elif self.method == "vector":
            parts.append((sums.block(M_PROBABILITY_LOGIT2)
                          - sums.block(M_PROBABILITY2_LOGIT2))[index])
        if self.has_bias:
            parts.append((sums.block(M_PROBABILITY) - sums.block(M_PROBABILITY2))[index])
        return np.concatenate(parts)

    def product(self, rows: SoftmaxPass, sums: SoftmaxSums, direction: np.ndarray,
                extra: SoftmaxPass | None) -> np.ndarray:
        """The Hessian at the last pass times ``direction`` (free parameters): one
        Hessian-vector product over the rows for the biases (and vector scales); a shared
        scale's row and column come from the pass's O(K) sums."""
        index, k = self.index, self.n_classes
        direction_scale, direction_bias = np.zeros(k), np.zeros(k)
        if self.method == "vector":
            direction_scale[index] = direction[:self.n_scale]
        if self.has_bias:
            direction_bias[index] = direction[self.n_scale:]
        with_scale = self.method == "vector"
        hv_bias, hv_scale = rows.hessian_vector(direction_scale, direction_bias,
                                                with_scale=with_scale)
        if extra is not None:
            more_bias, more_scale = extra.hessian_vector(direction_scale, direction_bias,
                                                         with_scale=with_scale)
            hv_bias, hv_scale = hv_bias + more_bias, hv_scale + more_scale
        out = np.zeros(self.n_free)
        if self.method == "vector":
            out[:self.n_scale] = hv_scale[index]
        if self.has_bias:
            out[self.n_scale:] = hv_bias[index]
        if self.shared_scale:
            scale_scale, scale_bias = self._shared_scale_terms(sums)
            out[0] = scale_scale * direction[0] + scale_bias @ direction[1:]
            out[1:] += scale_bias * direction[0]
        return out


# -- Newton ------------------------------------------------------------------------------

@dataclass
class NewtonState:
    """Where Newton stopped: the parameters (with the last step, below ``tol``, applied),
    the sums of the last pass (one step before) and the gradient there."""

    free: np.ndarray
    sums: SoftmaxSums
    gradient: np.ndarray
    iterations: int
    converged: bool
    last_step: float


def _with_pseudo(sums: SoftmaxSums, pseudo: ReferencePass | None, scale: np.ndarray,
                 bias: np.ndarray, active: np.ndarray) -> SoftmaxSums:
    if pseudo is None:
        return sums
    more = pseudo.evaluate(scale, bias, active)
    if sums.square is None:
        return SoftmaxSums(sums.row + more.row)
    return sums + more


def _conjugate_gradients(product: Any, gradient: np.ndarray, diagonal: np.ndarray,
                         tolerance: float, max_iter: int) -> np.ndarray:
    """Preconditioned conjugate gradients for ``H step = -gradient``."""
    step = np.zeros_like(gradient)
    residual = -gradient
    preconditioner = np.where(diagonal > 0, 1.0 / np.where(diagonal > 0, diagonal, 1.0), 1.0)
    z = preconditioner * residual
    direction = z.copy()
    rz = residual @ z
    target = tolerance * np.linalg.norm(gradient)
    for _ in range(max_iter):
        hd = product(direction)
        curvature = direction @ hd
        if not curvature > 0:
            break
        alpha = rz / curvature
        step += alpha * direction
        residual -= alpha * hd
        if np.linalg.norm(residual) <= target:
            break
        z = preconditioner * residual
        rz_next = residual @ z
        direction = z + (rz_next / rz) * direction
        rz = rz_next
    return step


def newton(rows: SoftmaxPass, parameters: Parameters, free: np.ndarray, *,
           tol: float = DEFAULT_TOL, max_iter: int = 100, conjugate: bool = False,
           pseudo: ReferencePass | None = None, first: SoftmaxSums | None = None
           ) -> NewtonState:
    """Damped Newton on the convex loss from ``free``: the exact Hessian (formed, or by
    products with conjugate gradients where ``conjugate``), a backtracking line search on
    the loss, and a stop once a step is below ``tol · max(1, max |free|)``. ``first``: the
    sums at ``free`` where a pass already made them."""
    level = 0 if conjugate else parameters.square_level
    active = parameters.active

    def evaluate(point: np.ndarray) -> SoftmaxSums:
        scale, bias = parameters.full(point)
        sums = rows.evaluate(scale, bias, active, dense=level, store=conjugate,
                             with_scale=parameters.n_scale > 0)
        return _with_pseudo(sums, pseudo, scale, bias, active)

    sums = first if first is not None else evaluate(free)
    if not math.isfinite(sums.loss):
        raise InputError("the loss is infinite at the start: a row gives its own class "
                         "probability 0", argument="logits")
    gradient = parameters.gradient(sums)
    for iteration in range(1, max_iter + 1):
        gradient = parameters.gradient(sums)
        step = _newton_step(rows, parameters, sums, gradient, conjugate, pseudo)
        size = float(np.max(np.abs(step))) / max(1.0, float(np.max(np.abs(free))))
        if not np.isfinite(size):
            return NewtonState(free, sums, gradient, iteration, False, math.inf)
        if size <= tol:
            return NewtonState(free + step, sums, gradient, iteration, True, size)
        decrease = float(gradient @ step)
        slack = _SLACK * abs(sums.loss) + 1e-300
        t = 1.0
        while True:
            trial = evaluate(free + t * step)
            if trial.loss <= sums.loss + 1e-4 * t * decrease + slack:
                break
            t *= 0.5
            if t < 2.0 ** -40:
                # No decrease along a descent direction: rounding has the last word.
                return NewtonState(free, sums, gradient, iteration, size <= 1e3 * tol,
                                   size)
        free = free + t * step
        sums = trial
    return NewtonState(free, sums, parameters.gradient(sums), max_iter, False, math.nan)


def _gauge_weight(diagonal: np.ndarray) -> float:
    """The weight of the null direction added to the Hessian: its largest diagonal entry, so
    that weights scaled by a power of two scale every number of the solve exactly."""
    largest = float(np.max(diagonal))
    return largest if largest > 0 else 1.0


def _newton_step(rows: SoftmaxPass, parameters: Parameters, sums: SoftmaxSums,
                 gradient: np.ndarray, conjugate: bool, pseudo: ReferencePass | None
                 ) -> np.ndarray:
    gauge = parameters.gauge
    if not conjugate:
        hessian = parameters.hessian(sums)
        if gauge is not None:  # the biases' common constant: fixed by the step's orthogonality
            hessian = hessian + _gauge_weight(np.diag(hessian)) * np.outer(gauge, gauge)
        try:
            return np.linalg.solve(hessian, -gradient)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(hessian, -gradient, rcond=None)[0]
    diagonal = parameters.diagonal(sums)
    weight = _gauge_weight(diagonal)

    def product(direction: np.ndarray) -> np.ndarray:
        out = parameters.product(rows, sums, direction, pseudo)
        if gauge is not None:
            out += weight * gauge * (gauge @ direction)
        return out

    if gauge is not None:
        diagonal = diagonal + weight * gauge * gauge
    relative = min(0.1, math.sqrt(float(np.linalg.norm(gradient)) / max(sums.weight_sum, 1e-300)))
    return _conjugate_gradients(product, gradient, diagonal, max(relative, 1e-12),
                                max(50, 2 * parameters.n_free))


# -- results ------------------------------------------------------------------------------

class MulticlassLRTest(NamedTuple):
    """Likelihood-ratio test of no recalibration (scale 1, biases 0) against the fit:
    ``statistic = 2 (loss at the start - loss at the fit)`` (total loss), chi-square with
    ``df`` identifiable parameters."""

    statistic: float
    df: int
    pvalue: float


class ClassObservedExpected(NamedTuple):
    """Per class, observed over expected with the logits as they are: ``observed = Σ w y_k``,
    ``expected = Σ w softmax(F)_k``, and the ratio's interval ``ratio · exp(±z se)`` with
    ``se = sqrt((1 - observed / Σ w) / observed)``, as :class:`ObservedExpected` gives the
    binary one."""

    ratio: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


@dataclass(frozen=True, repr=False)
class MulticlassFit:
    """A multiclass recalibration and what goes with it.

    The recalibrated logits are ``η_k = scale_k · G_k + shift_k``, ``G`` the logits (for
    ``method="vector"``, each row's log-softmax of them, so that a constant added to a row
    changes nothing), and the probabilities ``softmax(η)``.

    Attributes
    ----------
    method : str
        ``"shift"``, ``"temperature"``, ``"bias_temperature"`` or ``"vector"``.
    classes : list
        The classes, in the order of the logits' columns.
    shift : ndarray, shape (K,)
        The biases, normalised to mean zero over the classes that have weight (the loss
        depends on them only up to a common constant); ``-inf`` for a class without weight;
        zeros for ``"temperature"``.
    scale : float or ndarray of shape (K,)
        β: one float for ``"temperature"`` and ``"bias_temperature"`` (``temperature =
        1 / scale``), one per class for ``"vector"`` (NaN for a class without weight), 1.0
        for ``"shift"``.
    status : str
        ``"converged"``; ``"closed_form"`` (no logits: ``shift = log m_k``, centred);
        ``"anti_informative"`` (converged with a scale ≤ 0: the scores rank the classes the
        wrong way); ``"degenerate"`` (converged, but a class has no weight among the labels:
        its shift is ``-inf``); ``"max_iter"`` (stopped without converging: the values are
        the last iterate, and ``converged`` is False).
    converged : bool
    iterations : int
        Newton steps on the full rows (after the start on a subsample).
    passes : int
        Passes over all rows (the validating pass at the start included).
    hessian_products : int
        Hessian-vector products over all rows (Newton-CG, above :data:`DENSE_MAX` classes).
    gradient_norm : float
        ``max |∂ loss / ∂ parameter| / Σ w`` at the last pass.
    n_rows, weight_sum : int, float
    loss, loss_at_start : float
        Weighted mean cross-entropy (nats) at the fit and with the logits unchanged.
    observed, expected : ndarray, shape (K,)
        ``Σ w y_k`` and ``Σ w softmax(F)_k`` with the logits unchanged.
    pseudo_count : float
        Each class's pseudo-row weight (0 for none): a row of each class at the weighted
        mean logits, which makes every shift finite.
    logits_is : str
        What ``predict_logits`` and ``predict_proba`` take, as the fit did.
    """

    method: str
    classes: list
    shift: np.ndarray
    scale: Any
    status: str
    converged: bool
    iterations: int
    passes: int
    hessian_products: int
    gradient_norm: float
    n_rows: int
    weight_sum: float
    loss: float
    loss_at_start: float
    observed: np.ndarray
    expected: np.ndarray
    pseudo_count: float = 0.0
    logits_is: str = "logit"
    normalised: bool = False
    _rows: Any = field(default=None, compare=False)
    _parameters: Parameters | None = field(default=None, compare=False)
    _free: np.ndarray | None = field(default=None, compare=False)
    _sums: SoftmaxSums | None = field(default=None, compare=False)
    _pseudo: ReferencePass | None = field(default=None, compare=False)
    _total_loss: float = field(default=math.nan, compare=False)
    _total_loss_at_start: float = field(default=math.nan, compare=False)
    _cache: dict = field(default_factory=dict, compare=False)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def temperature(self) -> float:
        """``1 / scale`` for ``"temperature"`` and ``"bias_temperature"`` (1 for
        ``"shift"``); for ``"vector"``, NaN (each class has its own scale)."""
        if self.method == "vector":
            return math.nan
        return 1.0 / self.scale if self.scale != 0 else math.inf

    # -- prediction ------------------------------------------------------------------------

    def predict_logits(self, logits: Any) -> np.ndarray:
        """The recalibrated logits ``scale ∘ G + shift`` (n × K, float64) of new rows, read
        as the fit read its logits (``logits_is``)."""
        from .._core.class_input import as_logits

        values = as_logits(logits, "logits", self.logits_is)
        if values.shape[1] != self.n_classes:
            raise InputError(f"logits has {values.shape[1]} columns, the fit has "
                             f"{self.n_classes} classes", argument="logits")
        bad = np.isnan(values) | (values == np.inf)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"logits[{row}, {column}] = {values[row, column]} must be finite "
                             "or -inf", argument="logits", index=row,
                             value=float(values[row, column]))
        return self._recalibrate(values)

    def _recalibrate(self, values: np.ndarray) -> np.ndarray:
        """``scale ∘ G + shift`` of logits already read (n × K, in logit space)."""
        grid = log_softmax(values) if self.normalised else values.astype(np.float64)
        scale = np.broadcast_to(np.asarray(self.scale, dtype=np.float64), (self.n_classes,))
        # A scale left unidentified (every label in one class) moves no probability.
        scale = np.where(np.isnan(scale), 1.0, scale)
        active = np.isfinite(self.shift)
        with np.errstate(invalid="ignore"):
            eta = np.where(np.isfinite(grid) & active, np.where(active, scale, 1.0) * grid
                           + np.where(active, self.shift, 0.0), -np.inf)
        return eta

    def predict_proba(self, logits: Any) -> np.ndarray:
        """The recalibrated probabilities ``softmax(predict_logits(logits))``, n × K."""
        return np.exp(log_softmax(self.predict_logits(logits)))

    # -- inference ---------------------------------------------------------------------------

    def _hessian(self) -> np.ndarray:
        """The total loss's Hessian in the free parameters at the fit."""
        if "hessian" not in self._cache:
            parameters, rows = self._parameters, self._rows
            sums = self._sums
            if sums.square is None and parameters.square_level:
                scale, bias = parameters.full(self._free)
                if parameters.n_active <= 4 * DENSE_MAX:
                    sums = rows.evaluate(scale, bias, parameters.active,
                                         dense=parameters.square_level)
                else:  # one pass keeps the probabilities; the K × K sums by matrix products
                    sums = rows.evaluate(scale, bias, parameters.active, store=True)
                    sums = SoftmaxSums(sums.row, rows.stored_square(parameters.square_level))
                sums = _with_pseudo(sums, self._pseudo, scale, bias, parameters.active)
            self._cache["hessian"] = parameters.hessian(sums)
        return self._cache["hessian"]

    @property
    def covariance(self) -> np.ndarray:
        """The covariance of the free parameters (``parameter_names``) on the identifiable
        subspace: the inverse of the observed information, where the biases' common constant
        is fixed by their normalisation (the Moore-Penrose inverse, ``(H + λ u uᵀ)⁻¹ -
        u uᵀ / λ`` for the null direction ``u``)."""
        if "covariance" not in self._cache:
            hessian = self._hessian()
            gauge = self._parameters.gauge
            try:
                if gauge is None:
                    covariance = np.linalg.inv(hessian)
                else:
                    weight = _gauge_weight(np.diag(hessian))
                    covariance = (np.linalg.inv(hessian + weight * np.outer(gauge, gauge))
                                  - np.outer(gauge, gauge) / weight)
            except np.linalg.LinAlgError:
                # No information on some direction (every label in one class leaves the
                # scale free): its variance is unbounded.
                covariance = np.full_like(hessian, math.nan)
            self._cache["covariance"] = covariance
        return self._cache["covariance"]

    @property
    def parameter_names(self) -> list[str]:
        """Names of the free parameters, in the order of ``covariance``."""
        index = self._parameters.index.tolist()
        names = []
        if self._parameters.shared_scale:
            names.append("scale")
        elif self.method == "vector":
            names += [f"scale[{k}]" for k in index]
        if self._parameters.has_bias:
            names += [f"shift[{k}]" for k in index]
        return names

    def _standard_errors(self) -> np.ndarray:
        return np.sqrt(np.maximum(np.diag(self.covariance), 0.0))

    @property
    def shift_se(self) -> np.ndarray:
        """Standard errors of the (normalised) shifts; NaN for a class without weight, 0 for
        ``"temperature"`` (no shift is fitted)."""
        se = np.full(self.n_classes, math.nan if self._parameters.has_bias else 0.0)
        if self._parameters.has_bias:
            se[self._parameters.index] = self._standard_errors()[self._parameters.n_scale:]
        return se

    @property
    def scale_se(self) -> Any:
        """Standard error of the scale (a float, or one per class for ``"vector"``; 0 for
        ``"shift"``)."""
        parameters = self._parameters
        if parameters.n_scale == 0:
            return 0.0
        se = self._standard_errors()[:parameters.n_scale]
        if parameters.shared_scale:
            return float(se[0])
        out = np.full(self.n_classes, math.nan)
        out[parameters.index] = se
        return out

    def contrast(self, reference: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """The shifts relative to class ``reference`` (a column index; the last by default,
        as R's ``VGAM::multinomial``) and their standard errors: ``shift_k - shift_ref``,
        with ``sqrt(Var_k + Var_ref - 2 Cov)``. Invariant to the normalisation."""
        parameters = self._parameters
        if not parameters.has_bias:
            raise InputError("method = 'temperature' fits no shifts", argument="method",
                             value=self.method)
        reference = range(self.n_classes)[reference]
        covariance = np.full((self.n_classes, self.n_classes), math.nan)
        block = self.covariance[parameters.n_scale:, parameters.n_scale:]
        covariance[np.ix_(parameters.index, parameters.index)] = block
        variance = np.diag(covariance)
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.maximum(variance + variance[reference]
                                    - 2 * covariance[:, reference], 0.0))
        return self.shift - self.shift[reference], se

    def lr_test(self) -> MulticlassLRTest:
        """Likelihood-ratio test of no recalibration (scale 1, shifts 0)."""
        statistic = max(0.0, 2.0 * (self._total_loss_at_start - self._total_loss))
        df = self._parameters.n_free - (1 if self._parameters.gauge is not None else 0)
        return MulticlassLRTest(statistic, df, chi2_sf(statistic, df))

    def observed_expected(self, level: float = 0.95) -> ClassObservedExpected:
        """Per class, observed over expected with the logits unchanged, with intervals."""
        z = normal_quantile(level)
        observed, expected = self.observed, self.expected
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(expected > 0, observed / expected, math.inf)
            spread = z * np.sqrt(np.maximum(0.0, 1.0 - observed / self.weight_sum) / observed)
            low = np.where(observed > 0, ratio * np.exp(-spread), 0.0)
            high = np.where(observed > 0, ratio * np.exp(np.minimum(spread, 700.0)), math.inf)
        return ClassObservedExpected(ratio, observed, expected, low, high, level)

    def confint(self, level: float = 0.95) -> tuple[Any, Any]:
        """A confidence interval.

        ``"temperature"`` and ``"bias_temperature"``: the profile-likelihood interval of
        the temperature ``T = 1 / scale`` (the scales where twice the rise of the total
        loss, minimised over the shifts, reaches the chi-square(1) quantile), as
        ``(low, high)`` floats, ``1 / `` the ends of :meth:`scale_confint`; ``(-inf, inf)``
        where the scale's interval holds 0. ``"shift"`` and ``"vector"``: Wald intervals of the normalised shifts,
        ``shift ± z · shift_se``, as two arrays.
        """
        if not self._parameters.shared_scale:
            z = normal_quantile(level)
            se = self.shift_se
            return self.shift - z * se, self.shift + z * se
        key = ("confint", float(level))
        if key not in self._cache:
            low_scale, high_scale = self.scale_confint(level)
            if math.isnan(low_scale):
                self._cache[key] = (math.nan, math.nan)
            elif low_scale > 0 or high_scale < 0:
                self._cache[key] = (1.0 / high_scale, 1.0 / low_scale)
            else:  # the scale's interval holds 0: the temperature is unbounded either way
                self._cache[key] = (-math.inf, math.inf)
        return self._cache[key]

    def scale_confint(self, level: float = 0.95) -> tuple[float, float]:
        """The profile-likelihood interval of the scale β (``"temperature"`` and
        ``"bias_temperature"``)."""
        if not self._parameters.shared_scale:
            raise InputError(f"method = {self.method!r} has no single scale",
                             argument="method", value=self.method)
        z = normal_quantile(level)
        key = ("scale_confint", float(level))
        if math.isnan(self.scale):  # every label in one class: no scale is identified
            return (math.nan, math.nan)
        if key not in self._cache:  # a dozen or more passes: kept
            self._cache[key] = (_profile_end(self, -1, z), _profile_end(self, 1, z))
        return self._cache[key]

    def to_dict(self, level: float = 0.95, *, json_safe: bool = False) -> dict[str, Any]:
        """The result as plain Python values (lists for the per-class numbers), with the
        standard errors, the likelihood-ratio test, the per-class O/E with intervals, and,
        for the temperature methods, the temperature's profile interval. ``json_safe``:
        as :meth:`ShiftFit.to_dict`."""
        test = self.lr_test()
        oe = self.observed_expected(level)
        scale = self.scale.tolist() if isinstance(self.scale, np.ndarray) else self.scale
        scale_se = self.scale_se
        record = {
            "method": self.method, "classes": list(self.classes),
            "shift": self.shift.tolist(), "shift_se": self.shift_se.tolist(),
            "scale": scale,
            "scale_se": scale_se.tolist() if isinstance(scale_se, np.ndarray) else scale_se,
            "temperature": self.temperature,
            "status": self.status, "converged": self.converged, "iterations": self.iterations,
            "passes": self.passes, "hessian_products": self.hessian_products,
            "gradient_norm": self.gradient_norm, "n_rows": self.n_rows,
            "weight_sum": self.weight_sum, "loss": self.loss,
            "loss_at_start": self.loss_at_start, "pseudo_count": self.pseudo_count,
            "lr_statistic": test.statistic, "lr_df": test.df, "lr_pvalue": test.pvalue,
            "level": level, "observed": oe.observed.tolist(), "expected": oe.expected.tolist(),
            "observed_expected": oe.ratio.tolist(), "observed_expected_low": oe.low.tolist(),
            "observed_expected_high": oe.high.tolist(),
        }
        if self._parameters.shared_scale:
            low, high = self.confint(level)
            record["temperature_low"], record["temperature_high"] = low, high
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        if isinstance(self.scale, np.ndarray):
            scale = np.array2string(self.scale, precision=4, threshold=8)
        else:
            scale = f"{self.scale:.6g}"
        shift = np.array2string(self.shift, precision=4, threshold=8)
        return (f"MulticlassFit(method={self.method!r}, classes={self.n_classes}, "
                f"scale={scale}, shift={shift}, status={self.status!r}, "
                f"iterations={self.iterations}, passes={self.passes}, "
                f"gradient_norm={self.gradient_norm:.3g}, n_rows={self.n_rows}, "
                f"weight_sum={self.weight_sum:.10g}, loss={self.loss:.6g}, "
                f"loss_at_start={self.loss_at_start:.6g})")


def _profile_value(fit: MulticlassFit, scale: float) -> tuple[float, float]:
    """The total loss minimised over the shifts at a given scale, and its derivative in the
    scale (by the envelope theorem, the partial derivative at the inner minimum)."""
    parameters, rows = fit._parameters, fit._rows
    if fit.method == "temperature":
        free = np.array([scale])
        full_scale, bias = parameters.full(free)
        sums = _with_pseudo(rows.evaluate(full_scale, bias, parameters.active), fit._pseudo,
                            full_scale, bias, parameters.active)
        return sums.loss, float(sums.block(M_GRADIENT_SCALE).sum())
    inner = Parameters("shift", parameters.active, fixed_scale=scale)
    start = fit._cache.get("profile_start", fit._free[1:])
    conjugate = parameters.n_active > DENSE_MAX
    state = newton(rows, inner, start, conjugate=conjugate, pseudo=fit._pseudo)
    fit._cache["profile_start"] = state.free
    return state.sums.loss, float(state.sums.block(M_GRADIENT_SCALE).sum())


def _profile_end(fit: MulticlassFit, direction: int, z: float) -> float:
    """The scale on side ``direction`` where the profile loss rises by ``z² / 2``: bracketed
    by doubling, then Newton on the convex rise with bisection where a step leaves the
    bracket."""
    centre = float(fit._free[0])
    target = fit._total_loss + 0.5 * z * z
    se = fit.scale_se
    width = 1.5 * z * se if math.isfinite(se) and se > 0 else 0.1 * max(1.0, abs(centre))
    fit._cache.pop("profile_start", None)
    inner, outer = centre, centre + direction * width
    for _ in range(200):
        value, _ = _profile_value(fit, outer)
        if value >= target:
            break
        inner, outer = outer, centre + 2.0 * (outer - centre)
    else:
        return direction * math.inf
    point = outer
    for _ in range(100):
        value, slope = _profile_value(fit, point)
        excess = value - target
        if excess > 0:
            outer = point
        else:
            inner = point
        if abs(excess) <= 1e-12 * max(1.0, abs(target)):
            return point
        guess = point - excess / slope if slope != 0 else math.nan
        low, high = min(inner, outer), max(inner, outer)
        if not low < guess < high:
            guess = 0.5 * (inner + outer)
        if abs(guess - point) <= 1e-13 * max(1.0, abs(point)):
            return guess
        point = guess
    return point


# -- the estimator -----------------------------------------------------------------------

def check_multiclass_options(method: Any, pseudo_count: Any, tol: Any, max_iter: Any,
                             solver: Any = "auto") -> dict[str, Any]:
    """The options of :func:`fit_softmax`, checked before any pass."""
    if method not in METHODS:
        raise InputError(f"method = {method!r} must be one of {', '.join(map(repr, METHODS))}",
                         argument="method", value=method)
    if solver not in ("auto", "dense", "cg"):
        raise InputError(f"solver = {solver!r} must be 'auto', 'dense' or 'cg'",
                         argument="solver", value=solver)
    try:
        count = float(pseudo_count)
    except (TypeError, ValueError):
        count = math.nan
    if isinstance(pseudo_count, (bool, str)) or not (math.isfinite(count) and count >= 0):
        raise InputError(f"pseudo_count = {pseudo_count!r} must be finite and non-negative",
                         argument="pseudo_count", value=pseudo_count)
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
            raise InputError(f"tol = {tol!r} must be between 0 and 1", argument="tol",
                             value=tol)
    as_positive_int(max_iter, "max_iter")
    return {"method": method, "pseudo_count": count, "tol": tol, "max_iter": int(max_iter),
            "solver": solver}


def fit_softmax(rows: SoftmaxPass, *, method: str = "shift", pseudo_count: float = 0.0,
                tol: float | None = None, max_iter: int = 100, solver: str = "auto",
                classes: list | None = None, logits_is: str = "logit") -> MulticlassFit:
    """Fit ``method`` on the rows of ``rows`` (see the module's table), and its statistics.

    The first pass, at scale 1 and shifts 0, validates the rows and gives the loss at the
    start and the per-class totals; Newton then starts from the fit on a strided subsample
    (where ``rows.subsample()`` gives one) or from ``log(O_k / E_k)``. See
    :func:`logitshift.fit_multiclass` for the rest.
    """
    tol = DEFAULT_TOL if tol is None else tol
    k = rows.n_classes
    every = np.ones(k, dtype=bool)
    start = rows.evaluate(np.ones(k), np.zeros(k), every,
                          with_scale=method != "shift" or pseudo_count > 0)
    observed, expected = start.block(M_OBSERVED).copy(), start.block(M_PROBABILITY).copy()
    weight_sum = start.weight_sum
    if not weight_sum > 0:
        raise InputError("weight is zero on every row", argument="weight")
    pseudo = None
    if pseudo_count > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = start.block(M_LOGIT_SUM) / start.block(M_LOGIT_WEIGHT)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        pseudo = ReferencePass(np.tile(mean, (k, 1)), np.eye(k), np.full(k, pseudo_count))
    active = every if (method == "temperature" or pseudo is not None) else observed > 0
    degenerate = not active.all()
    if degenerate:
        missing = [classes[j] if classes else j for j in np.flatnonzero(~active)]
        warn(f"{len(missing)} class(es) without weight among the labels ({missing[:5]!r}"
             f"{'...' if len(missing) > 5 else ''}): their shift is -inf; pseudo_count > 0 "
             "makes it finite")
    parameters = Parameters(method, active)
    loss_at_start = start.loss
    start_total = _with_pseudo(SoftmaxSums(start.row), pseudo, np.ones(k), np.zeros(k), every)
    if parameters.n_active == 1:  # every label in one class: the others at -inf, loss 0
        return _finish(rows, parameters, np.array([1.0] * parameters.n_scale + [0.0]),
                       None, 0, True, "degenerate", start, start_total, loss_at_start,
                       observed, expected, pseudo, pseudo_count, classes, logits_is)
    conjugate = solver == "cg" or (solver == "auto" and parameters.square_level > 0
                                   and parameters.n_active > DENSE_MAX)
    pseudo_observed = observed + (pseudo_count if pseudo is not None else 0.0)
    pseudo_expected = start_total.block(M_PROBABILITY)
    free = parameters.start(pseudo_observed, pseudo_expected)
    # Newton's first steps, from log(O/E) and scale 1, are taken on a subsample where it has
    # rows enough for the parameters (measured: 10 rows a class start 1000 shifts worse
    # than log(O/E) does).
    sample = rows.subsample()
    if sample is not None and sample.n_rows < 100 * parameters.n_free:
        sample = None
    if sample is not None:
        # A light pseudo-row of each class keeps every shift finite where a class the full
        # rows have is missing from the subsample: this is only where Newton starts.
        floor = ReferencePass(np.zeros((k, k)), np.eye(k), np.full(k, 1e-3 * weight_sum
                                                                   / rows.n_rows))
        rough = newton(sample, parameters, free, tol=1e-5, max_iter=min(max_iter, 50),
                       conjugate=conjugate, pseudo=floor)
        if np.all(np.isfinite(rough.free)):
            free = rough.free
    state = newton(rows, parameters, free, tol=tol, max_iter=max_iter, conjugate=conjugate,
                   pseudo=pseudo)
    if not state.converged:
        warn(f"multiclass Newton did not converge after {state.iterations} iterations; last "
             f"step {state.last_step:.3g}, gradient {np.max(np.abs(state.gradient)):.3g}")
        status = "max_iter"
    else:
        scale = parameters.full(state.free)[0][parameters.index]
        status = ("anti_informative" if parameters.n_scale and np.any(scale <= 0)
                  else "degenerate" if degenerate else "converged")
    return _finish(rows, parameters, state.free, state, state.iterations, state.converged,
                   status, start, start_total, loss_at_start, observed, expected, pseudo,
                   pseudo_count, classes, logits_is)


def _finish(rows: SoftmaxPass, parameters: Parameters, free: np.ndarray,
            state: NewtonState | None, iterations: int, converged: bool, status: str,
            start: SoftmaxSums, start_total: SoftmaxSums, loss_at_start: float,
            observed: np.ndarray, expected: np.ndarray, pseudo: ReferencePass | None,
            pseudo_count: float, classes: list | None, logits_is: str) -> MulticlassFit:
    k = rows.n_classes
    scale, bias = parameters.full(free)
    shift = np.where(parameters.active, bias, -np.inf)
    if parameters.has_bias:
        shift[parameters.active] -= shift[parameters.active].mean()
    if state is None:  # one class: the loss is 0 and nothing is left to fit
        sums = SoftmaxSums(start.row, None)
        gradient_norm, total_loss, data_loss = 0.0, 0.0, 0.0
    else:
        sums = state.sums
        gradient_norm = float(np.max(np.abs(state.gradient))) / start.weight_sum
        total_loss = sums.loss
        data_loss = sums.loss - (0.0 if pseudo is None else _pseudo_loss(pseudo, scale, bias,
                                                                         parameters.active))
    one_class = state is None  # the loss is 0 at every scale: none is identified
    if parameters.shared_scale:
        scale_value: Any = math.nan if one_class and parameters.has_bias else float(scale[0])
    elif parameters.method == "vector":
        scale_value = np.where(parameters.active & (not one_class), scale, np.nan)
    else:
        scale_value = 1.0
    weight_sum = start.weight_sum
    return MulticlassFit(
        method=parameters.method, classes=list(classes) if classes else list(range(k)),
        shift=shift if parameters.has_bias else np.zeros(k), scale=scale_value,
        status=status, converged=converged, iterations=iterations, passes=rows.passes,
        hessian_products=rows.hessian_products, gradient_norm=gradient_norm,
        n_rows=rows.n_rows, weight_sum=weight_sum, loss=data_loss / weight_sum,
        loss_at_start=loss_at_start / weight_sum, observed=observed, expected=expected,
        pseudo_count=pseudo_count, logits_is=logits_is,
        normalised=bool(getattr(rows, "normalised", False)), _rows=rows,
        _parameters=parameters, _free=free, _sums=sums, _pseudo=pseudo,
        _total_loss=total_loss, _total_loss_at_start=start_total.loss)


def _pseudo_loss(pseudo: ReferencePass, scale: np.ndarray, bias: np.ndarray,
                 active: np.ndarray) -> float:
    row, _ = softmax_sums(pseudo.grid, pseudo.labels, pseudo.weights, scale, bias, active)
    return float(row[M_LOSS])


# -- metrics ------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class MulticlassMetrics:
    """Calibration metrics of multiclass probabilities (see
    :func:`logitshift.multiclass_metrics`).

    Attributes
    ----------
    log_loss : float
        ``-Σ w Σ_k y_k log p_k / Σ w`` (nats).
    brier : float
        ``Σ w Σ_k (p_k - y_k)² / Σ w`` (between 0 and 2).
    top_label_ece, classwise_ece : float
        Expected calibration errors over ``bins`` equal-width bins of [0, 1], each bin
        counted by its weight: of each row's largest probability against its label's weight
        on that class (Guo et al. 2017), and the mean over classes of each class's
        probability against its label (Kull et al. 2019).
    one_vs_rest : list of ShiftFit
        Each class's calibration in the large: :func:`logitshift.fit` of ``y_k`` on the
        offset ``logit(p_k)``; its ``shift`` is 0 for a class whose mean probability is
        right, and its ``observed_expected`` is that class's O/E.
    """

    log_loss: float
    brier: float
    top_label_ece: float
    classwise_ece: float
    bins: int
    one_vs_rest: list
    classes: list
    n_rows: int
    weight_sum: float

    def to_dict(self, *, json_safe: bool = False) -> dict[str, Any]:
        """Plain Python values, each class's one-vs-rest fit as its ``to_dict()``."""
        record = {"log_loss": self.log_loss, "brier": self.brier,
                  "top_label_ece": self.top_label_ece, "classwise_ece": self.classwise_ece,
                  "bins": self.bins, "classes": list(self.classes), "n_rows": self.n_rows,
                  "weight_sum": self.weight_sum,
                  "one_vs_rest": [fit.to_dict() for fit in self.one_vs_rest]}
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        shifts = np.array2string(np.array([fit.shift for fit in self.one_vs_rest]),
                                 precision=4, threshold=8)
        return (f"MulticlassMetrics(log_loss={self.log_loss:.6g}, brier={self.brier:.6g}, "
                f"top_label_ece={self.top_label_ece:.4g}, "
                f"classwise_ece={self.classwise_ece:.4g}, bins={self.bins}, "
                f"one_vs_rest_shift={shifts}, n_rows={self.n_rows})")
