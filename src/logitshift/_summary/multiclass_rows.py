"""Rows of a multiclass fit in memory: n × K logits, labels and weights, seen through the
softmax passes of :class:`~logitshift._estimators.multiclass.SoftmaxPass`.

Each pass runs `kernels.multiclass_pass` over one range of rows per thread and adds the
ranges' sums, so a source that streams batches can make the same pass by adding the sums of
its batches. The first pass validates every row (the kernel finds the first bad one, and
`class_input.raise_for_class_row` says what is wrong with it).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .._core import kernels as _kernels
from .._core.class_input import check_weight_units, raise_for_class_row
from .._core.kernels import M_BLOCKS, M_FIRST_BAD, M_HEAD
from .._estimators.multiclass import SoftmaxSums
from .passes import in_threads, max_threads

__all__ = ["ClassRows", "SUBSAMPLE_CELLS"]

#: Newton starts from a fit on a strided subsample of about this many cells (rows × classes,
#: and at least 10 rows per class), where the rows hold at least four times as many.
SUBSAMPLE_CELLS = 1 << 18

#: Fewer cells than this per thread are not worth a thread.
_CELLS_PER_THREAD = 1 << 18

_STORED_CHUNK = 1 << 14  # rows per block when the K × K sums are formed from the stored rows


class ClassRows:
    """Logits (n × K, float32 or float64, read in place where C-contiguous), labels (class
    indices, soft rows, or none for unlabelled rows) and weights, as a softmax pass.

    ``normalise``: the passes read each row's log-softmax ``G = F - log Σ exp F`` (computed
    once, a float64 per row), so that vector scaling does not depend on a constant added to
    a row. Only vector scaling needs it: for the other methods a row's constant cancels in
    the softmax.
    """

    def __init__(self, logits: np.ndarray, label_index: np.ndarray | None,
                 label_rows: np.ndarray | None, weights: np.ndarray | None, *,
                 normalise: bool = False, subsample: bool = True,
                 classes: list | None = None, binary: bool = False) -> None:
        self.logits = np.ascontiguousarray(logits)
        #: the names of the classes, and whether the logits came as one column of log-odds
        self.classes, self.binary = classes, binary
        self.n_rows, self.n_classes = self.logits.shape
        k = self.n_classes
        self.hard = label_index is not None
        self.label_index = (np.ascontiguousarray(label_index, dtype=np.int64) if self.hard
                            else np.zeros(0, dtype=np.int64))
        self.label_rows = (np.ascontiguousarray(label_rows, dtype=np.float64)
                           if label_rows is not None else np.zeros((0, k)))
        self.weights = (None if weights is None
                        else np.ascontiguousarray(weights, dtype=np.float64))
        check_weight_units(self.weights)
        self.normalised = normalise
        self.passes = 0
        self.hessian_products = 0
        self.may_subsample = subsample
        self._row_shift: np.ndarray | None = None
        self._stored: np.ndarray | None = None
        # One range of rows per thread, by cells: a row of 1000 classes is 1000 cells of work.
        threads = max(1, min(max_threads(), self.n_rows * k // _CELLS_PER_THREAD, self.n_rows))
        chunk = -(-self.n_rows // threads)
        self._ranges = [(t * chunk, min(self.n_rows, (t + 1) * chunk)) for t in range(threads)]

    # -- the arrays the kernels read --------------------------------------------------------

    def _shift_arguments(self) -> tuple[np.ndarray, bool]:
        if not self.normalised:
            return np.zeros(0), False
        if self._row_shift is None:
            # One pass of exponentials; rows it cannot normalise (NaN, +inf) are named by
            # the pass that validates.
            shift = np.empty(self.n_rows)
            in_threads([partial(_kernels.log_sum_exp_rows, self.logits, start, stop, shift)
                        for start, stop in self._ranges])
            self._row_shift = np.where(np.isfinite(shift), shift, 0.0)
            self.passes += 1
        return self._row_shift, True

    def _weight_arguments(self) -> tuple[np.ndarray, bool]:
        return (np.zeros(0), False) if self.weights is None else (self.weights, True)

    # -- the pass ---------------------------------------------------------------------------

    def evaluate(self, scale: np.ndarray, bias: np.ndarray, active: np.ndarray, *,
                 dense: int = 0, store: bool = False, with_scale: bool = True) -> SoftmaxSums:
        """One pass at ``(scale, bias)``; see `kernels.multiclass_pass`."""
        k = self.n_classes
        row_shift, has_shift = self._shift_arguments()
        weights, has_weights = self._weight_arguments()
        ranges = self._ranges
        out = np.zeros((len(ranges), M_HEAD + M_BLOCKS * k))
        square = np.zeros((len(ranges), 3 if dense else 0, k if dense else 0, k if dense else 0))
        if store:
            if self._stored is None:
                self._stored = np.empty((self.n_rows, k), dtype=np.float32)
            stored = self._stored
        else:
            stored = np.zeros((0, k), dtype=np.float32)
        scale = np.ascontiguousarray(scale, dtype=np.float64)
        bias = np.ascontiguousarray(bias, dtype=np.float64)
        active = np.ascontiguousarray(active, dtype=np.bool_)
        in_threads([partial(_kernels.multiclass_pass, self.logits, row_shift, has_shift,
                            self.label_index, self.label_rows, self.hard, weights, has_weights,
                            scale, bias, active, bool(with_scale), int(dense), bool(store),
                            start, stop, out[t],
                            square[t], stored)
                    for t, (start, stop) in enumerate(ranges)])
        self.passes += 1
        first_bad = out[:, M_FIRST_BAD]
        if (first_bad >= 0).any():
            raise_for_class_row(self.logits, self.label_index if self.hard else None,
                                self.label_rows, self.weights,
                                int(first_bad[first_bad >= 0].min()))
        row = out.sum(axis=0)
        row[M_FIRST_BAD] = -1
        if not dense:
            return SoftmaxSums(row, None)
        total = square.sum(axis=0)
        for symmetric in (0, 2):  # the kernel fills the upper triangles
            upper = np.triu(total[symmetric])
            total[symmetric] = upper + np.triu(upper, 1).T
        return SoftmaxSums(row, total)

    def hessian_vector(self, direction_scale: np.ndarray, direction_bias: np.ndarray, *,
                       with_scale: bool) -> tuple[np.ndarray, np.ndarray]:
        """The Hessian at the last pass that stored its probabilities times a direction."""
        k = self.n_classes
        row_shift, has_shift = self._shift_arguments()
        weights, has_weights = self._weight_arguments()
        out = np.zeros((len(self._ranges), 2 * k))
        in_threads([partial(_kernels.multiclass_hessian_vector, self.logits, row_shift,
                            has_shift, weights, has_weights, self._stored, bool(with_scale),
                            np.ascontiguousarray(direction_scale, dtype=np.float64),
                            np.ascontiguousarray(direction_bias, dtype=np.float64), start,
                            stop, out[t])
                    for t, (start, stop) in enumerate(self._ranges)])
        self.hessian_products += 1
        total = out.sum(axis=0)
        return total[:k], total[k:]

    def stored_square(self, level: int) -> np.ndarray:
        """``Σ w p pᵀ`` (and, with ``level`` 2, ``Σ w (p∘G) pᵀ``, ``Σ w (p∘G)(p∘G)ᵀ``) from
        the stored probabilities (float32: relative accuracy about 1e-7), by matrix
        products over blocks of rows."""
        k = self.n_classes
        square = np.zeros((3, k, k))
        row_shift, has_shift = self._shift_arguments()
        for start in range(0, self.n_rows, _STORED_CHUNK):
            stop = min(self.n_rows, start + _STORED_CHUNK)
            prob = self._stored[start:stop].astype(np.float64)
            weighted = prob if self.weights is None else prob * self.weights[start:stop, None]
            square[0] += weighted.T @ prob
            if level >= 2:
                grid = self.logits[start:stop].astype(np.float64)
                if has_shift:
                    grid = grid - row_shift[start:stop, None]
                grid = np.where(prob > 0, grid, 0.0)
                square[1] += (weighted * grid).T @ prob
                square[2] += (weighted * grid).T @ (prob * grid)
        return square

    def subsample(self) -> ClassRows | None:
        """Every ``s``-th row (about ``SUBSAMPLE_CELLS`` cells, at least 10 rows per class),
        or None where the rows are fewer than four times that."""
        rows = max(SUBSAMPLE_CELLS // self.n_classes, 10 * self.n_classes)
        if not self.may_subsample or self.n_rows < 4 * rows:
            return None
        take = slice(None, None, self.n_rows // rows)
        sample = ClassRows(self.logits[take], self.label_index[take] if self.hard else None,
                           self.label_rows[take] if self.label_rows.shape[0] else None,
                           None if self.weights is None else self.weights[take],
                           normalise=self.normalised, subsample=False)
        if self.normalised:
            row_shift, _ = self._shift_arguments()
            sample._row_shift = np.ascontiguousarray(row_shift[take])
        return sample
