"""The sketch keyed by group: for each group, the two Taylor tables of `Sketch` and its totals.

Rows are keyed by ``(group, cell)``: each group's cells are those its own offsets occupy, so
the sketch holds one row of ``2 * order`` moments per occupied ``(group, cell)`` pair, never
``groups × window``. It fills in one pass over the data (two reads of a chunk in memory:
the groups' offset ranges, then the tables), merges with ``+`` and serialises with a version
and a checksum, like :class:`~logitshift.Sketch`. Each group's loss, gradient and Hessian at
any shift are `kernels.sketch_terms` on that group's slice of the tables.
"""

from __future__ import annotations

import decimal
import json
import math
import numbers
import re
import reprlib
import struct
import zlib
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from .._core import kernels as _kernels
from .._core.units import ORDINARY_EXPONENT, TINY, LogPart, weight_exponent
from .._core.validate import InputError, as_positive_int, as_shift, library_of, rows
from .._estimators.groups import (GroupIntegrals, GroupShiftFit, GroupTerms, GroupTotals,
                                  UnknownGroup, check_group_options, fit_group_curves)
from .._estimators.solve import CurveTotals, Terms, with_log_parts
from .passes import (Prepared, ScanTotals, in_threads, log_parts_from_states,
                     max_threads, row_ranges, terms_from_sums)
from .sketch import (_COEFFICIENTS, _FACTORIALS, _NO_CELLS, DEFAULT_ORDER, DEFAULT_WIDTH,
                     MAX_ORDER, Sketch, _combine, _weighted_offset, fill_reference,
                     scan_arrays)

__all__ = ["GroupSketch", "GroupCodes", "group_codes", "GROUP_FORMAT_VERSION"]

#: σ's derivatives to the fourth beyond the tables' order: `kernels.group_integrals`
#: differentiates each group's loss four times.
_INTEGRAL_COEFFICIENTS = _kernels.derivative_coefficients(MAX_ORDER + 3)

#: Integer group labels within this many of each other (or of 4 per row) are their own
#: codes: no factorisation, the kernels read them in place.
_DIRECT_SPAN = 1 << 20

#: A group whose offsets span more cells than ``_WINDOW_ROWS`` per row (and more than
#: ``_WINDOW_CELLS``) is filled by the sparse path, so that a few far-apart rows cannot make
#: the fill's windows larger than the data.
_WINDOW_ROWS = 2
_WINDOW_CELLS = 256
#: The widest window (±2048 logits at the default width): a thread's scratch, 8 MB.
_MAX_WINDOW = 1 << 16

#: With ``keep_rows``, a group of at most this many rows per cell of its offsets' span is
#: kept as its rows. Measured with the vectorised row kernels (`kernels._row_sums`), 3e6
#: rows in groups of N(0, σ) offsets, all groups as rows against all as cells: 3.2 rows a
#: cell of span, rows 2.3-3.0× faster; 4.8, 1.7-2.6× faster; 9.6, about even (0.9-1.1×);
#: 26, 1.6× slower. Rows are smaller too (9 to 17 bytes against 136 a cell).
_ROWS_PER_CELL = 8

_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class GroupCodes:
    """Groups as integer codes the kernels read in place: row ``i`` is in group
    ``codes[i] - base``, whose key is ``levels[codes[i] - base]``."""

    codes: np.ndarray
    base: int
    levels: np.ndarray

    @property
    def n_codes(self) -> int:
        return len(self.levels)


def _missing(index: int, name: str, problem: str = "missing") -> InputError:
    reason = "every level must be a label" if name == "levels" else "every row needs a group"
    return InputError(f"{name}[{index}] is {problem}: {reason}", argument=name, index=index,
                      value=math.nan if problem == "nan" else None)


def _first_null(array: Any) -> int:
    import pyarrow as pa

    mask = np.asarray(array.is_null()) if not isinstance(array, pa.ChunkedArray) else \
        np.concatenate([np.asarray(c.is_null()) for c in array.chunks])
    return int(np.flatnonzero(mask)[0])


def _from_arrow(array: Any, n_rows: int, name: str, first_row: int = 0) -> GroupCodes:
    """Codes of a pyarrow Array or ChunkedArray: its dictionary's indices, or (for any other
    type) those of its dictionary encoding, a hash pass."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(array) != n_rows:
        raise InputError(f"{name} has {rows(len(array))}, y has {n_rows}", argument=name)
    if array.null_count:
        raise _missing(first_row + _first_null(array), name)
    kind = array.type
    if pa.types.is_nested(kind):
        raise InputError(f"{name} holds values of type {kind}: a group label is one value "
                         "(a number, string, bool, date), not a list or a record",
                         argument=name)
    given = pa.types.is_dictionary(kind)
    if not given:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            values = array.to_numpy() if isinstance(array, pa.ChunkedArray) else \
                array.to_numpy(zero_copy_only=False)
            return _from_numpy(np.asarray(values), n_rows, name, first_row)
        try:
            array = pc.dictionary_encode(array)
        except pa.ArrowNotImplementedError:  # types Arrow cannot hash: Python's hash can
            return _from_objects(np.asarray(array.to_pylist() + [None], dtype=object)[:-1],
                                 name, first_row)
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 0:
            return GroupCodes(np.empty(0, np.int64), 0, np.empty(0, object))
        if any(chunk.dictionary.null_count for chunk in array.chunks):
            # Arrow cannot unify dictionaries with nulls: the values themselves, where a
            # null entry is a null row.
            return _from_arrow(array.cast(kind.value_type), n_rows, name, first_row)
        array = array.unify_dictionaries()
        dictionary = array.chunk(0).dictionary
        indices = np.concatenate([np.asarray(c.indices) for c in array.chunks])
    else:
        dictionary, indices = array.dictionary, np.asarray(array.indices)
    if not given:  # Arrow's own encoding: each value once
        return GroupCodes(indices, 0, np.asarray(dictionary.to_pylist() + [None],
                                                 dtype=object)[:-1])
    return _from_dictionary(dictionary, indices, name, first_row)


def _from_dictionary(dictionary: Any, indices: np.ndarray, name: str,
                     first_row: int) -> GroupCodes:
    """Codes of a dictionary column given to us: its entries in use, factorised as a column
    of their own, so that an entry written twice is one group and a null or NaN entry in use
    is a missing group."""
    import pyarrow as pa
    import pyarrow.compute as pc

    used = np.zeros(len(dictionary), dtype=bool)
    used[indices] = True
    entries = np.flatnonzero(used)
    compact = np.full(len(dictionary), -1, dtype=np.int64)
    compact[entries] = np.arange(entries.size)
    rows_entry = compact[indices]
    values = dictionary.take(pa.array(entries))
    null = np.asarray(pc.is_null(values, nan_is_null=True), dtype=bool)
    if null.any():
        raise _missing(first_row + int(np.flatnonzero(null[rows_entry])[0]), name)
    inner = _from_arrow(values, entries.size, name)
    return GroupCodes(np.asarray(inner.codes)[rows_entry], inner.base, inner.levels)


def _sorted_codes(values: np.ndarray) -> GroupCodes:
    """Codes of a 1-D array whose values sort together, by sorting (``np.unique``)."""
    levels, inverse = np.unique(values, return_inverse=True)
    return GroupCodes(inverse.ravel(), 0, levels)


def _hashed_codes(items: list[Any]) -> GroupCodes:
    """Codes of hashable labels in order of first appearance: equal labels (Python's ``==``)
    are one group, whether or not the labels sort together."""
    seen: dict[Any, int] = {}
    codes = np.fromiter((seen.setdefault(value, len(seen)) for value in items),
                        dtype=np.int64, count=len(items))
    levels = np.empty(len(seen), dtype=object)
    levels[:] = list(seen) if seen else []
    return GroupCodes(codes, 0, levels)


#: Types whose values are never missing and always hashable: the check of an object column
#: looks at the others only.
_PLAIN_TYPES = frozenset({str, int, bool, bytes})
_FLOAT_TYPES = frozenset({float, np.float64, np.float32, np.float16})


def _is_missing(value: Any) -> bool:
    """None, pandas' NA and NaT, and any value unequal to itself: float, numpy and decimal
    NaN, numpy's NaT."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, decimal.Decimal):
        return value.is_nan()
    try:
        unequal = value != value
    except (TypeError, ValueError, ArithmeticError):  # no comparison, so no NaN
        return False
    return isinstance(unequal, (bool, np.bool_)) and bool(unequal)


def _family(kind: type) -> str:
    """Which labels sort and compare with which: bools, real numbers, text, bytes, other."""
    if issubclass(kind, (bool, np.bool_)):
        return "bool"
    if issubclass(kind, (numbers.Real, decimal.Decimal)):
        return "real"
    if issubclass(kind, str):
        return "str"
    if issubclass(kind, bytes):
        return "bytes"
    return "other"


def _describe(value: Any) -> str:
    """A label as the user wrote it, cut short."""
    return reprlib.repr(value.item() if isinstance(value, np.generic) else value)


def _from_objects(values: np.ndarray, name: str, first_row: int) -> GroupCodes:
    """Codes of a 1-D object column: each label checked (missing, unhashable), then a column
    of one type by that type's path, real numbers by sorting (Python's exact comparisons),
    anything else by hashing."""
    items = values.tolist()
    if not items:
        return GroupCodes(np.empty(0, np.int64), 0, np.empty(0, dtype=object))
    kinds = set(map(type, items))
    if kinds <= _PLAIN_TYPES | {float}:
        if float in kinds and any(value != value for value in items):  # only NaN
            raise _missing(first_row + next(i for i, v in enumerate(items) if v != v), name)
    else:
        for index, value in enumerate(items):
            if type(value) in _PLAIN_TYPES:
                continue
            if _is_missing(value):
                raise _missing(first_row + index, name)
            try:
                hash(value)
            except TypeError:
                raise InputError(
                    f"{name}[{first_row + index}] = {_describe(value)} is a "
                    f"{type(value).__name__}, which is not hashable: a group label must be "
                    "a number, string, bool or other hashable value", argument=name,
                    index=first_row + index, value=value) from None
    family = {kind: _family(kind) for kind in kinds}
    families = set(family.values())
    if {"bool", "real"} <= families:
        # Python counts True as 1 and False as 0: they would be one group, silently.
        firsts = {}
        for index, value in enumerate(items):
            firsts.setdefault(family[type(value)] == "bool", index)
            if len(firsts) == 2:
                break
        earlier, later = sorted(firsts.values())
        raise InputError(
            f"{name}[{first_row + later}] = {items[later]!r} and {name}[{first_row + earlier}]"
            f" = {items[earlier]!r} mix bools and numbers, which Python counts as equal "
            "(True as 1, False as 0): give the labels one type, such as str",
            argument=name, index=first_row + later, value=items[later])
    if families == {"bool"}:
        return _from_numpy(np.array(items, dtype=bool), len(items), name, first_row)
    if families == {"str"} or families == {"bytes"}:
        import pyarrow as pa

        return _from_arrow(pa.array(items), len(items), name, first_row)
    if families == {"real"}:
        if all(issubclass(kind, (int, np.integer)) for kind in kinds):
            for dtype in (np.int64, np.uint64):
                try:
                    return _from_numpy(np.array(items, dtype=dtype), len(items), name,
                                       first_row)
                except OverflowError:
                    continue
        elif kinds <= _FLOAT_TYPES:  # each exact as a double
            return _from_numpy(np.array(items, dtype=np.float64), len(items), name, first_row)
        return _sorted_codes(values)
    return _hashed_codes(items)


def _from_numpy(values: np.ndarray, n_rows: int, name: str, first_row: int = 0) -> GroupCodes:
    if values.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {values.shape}: one group per row",
                         argument=name)
    if values.shape[0] != n_rows:
        raise InputError(f"{name} has {rows(values.shape[0])}, y has {n_rows}", argument=name)
    kind = values.dtype.kind
    if kind == "b":
        return GroupCodes(values.view(np.uint8), 0, np.array([False, True]))
    if kind in "iu":
        if n_rows == 0:
            return GroupCodes(values, 0, values[:0])
        low, high = int(values.min()), int(values.max())
        if high - low < max(_DIRECT_SPAN, 4 * n_rows):
            return GroupCodes(values, low, np.arange(low, high + 1, dtype=values.dtype))
        return _sorted_codes(values)
    if kind in "fcMm":
        missing = np.isnat(values) if kind in "Mm" else np.isnan(values)
        if missing.any():
            raise _missing(first_row + int(np.flatnonzero(missing)[0]), name,
                           "missing" if kind in "Mm" else "nan")
        return _sorted_codes(values)
    if kind in "US":
        import pyarrow as pa

        return _from_arrow(pa.array(values), n_rows, name, first_row)
    if kind == "O":
        return _from_objects(values, name, first_row)
    raise InputError(f"{name} has dtype {values.dtype}, which cannot hold group labels",
                     argument=name)


def _as_column(values: Any, name: str) -> np.ndarray:
    """A list or tuple as a 1-D object array, element by element (numpy would make
    ``[1, "1"]`` two strings and a list of pairs 2-D); anything else by ``np.asarray``."""
    if isinstance(values, (list, tuple)):
        kinds = set(map(type, values))
        if len(kinds) == 1 and kinds <= {int, float, bool, str}:
            return np.asarray(values)  # one type: numpy merges nothing
        column = np.empty(len(values), dtype=object)
        for index, value in enumerate(values):
            column[index] = value
        return column
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} cannot be read as an array: {exc}", argument=name) from None


def _level_keys(levels: Any) -> np.ndarray:
    """``levels`` as a 1-D array of distinct labels, checked as a group column is."""
    keys = _as_column(levels, "levels")
    if keys.ndim != 1:
        raise InputError(f"levels must be 1-D, got shape {keys.shape}", argument="levels")
    codes = np.asarray(_from_numpy(keys, keys.size, "levels").codes)
    _, first = np.unique(codes, return_index=True)
    if first.size != keys.size:
        repeat = int(np.flatnonzero(~np.isin(np.arange(keys.size), first))[0])
        original = int(np.flatnonzero(codes == codes[repeat])[0])
        raise InputError(f"levels[{repeat}] = {_describe(keys[repeat])} repeats "
                         f"levels[{original}]: levels must be distinct", argument="levels",
                         index=repeat, value=keys[repeat])
    return keys


def group_codes(group: Any, n_rows: int, levels: Any = None, name: str = "group",
                first_row: int = 0) -> GroupCodes:
    """The :class:`GroupCodes` of a column of group labels with ``n_rows`` rows.

    Integer labels are their own codes; a pandas, polars or pyarrow categorical
    (dictionary) column gives its codes and categories (an entry written twice is one
    group); anything else is factorised once: by sorting where the labels sort together
    (numbers, text), by hashing where they do not (equal labels are one group). With
    ``levels``, ``group`` holds integer codes into them. Raises :class:`InputError` naming
    the row (numbered from ``first_row``) for a missing label (None, NaN, NaT, pandas' NA, a
    null, a dictionary entry that is null), an unhashable one, or bools beside numbers; and
    for a 2-D column, one of nested values, or a length other than ``n_rows``.
    """
    if levels is not None:
        keys = _level_keys(levels)
        codes = np.asarray(group)
        if codes.dtype.kind not in "iu":
            raise InputError(f"with levels, {name} must hold integer codes, got dtype "
                             f"{codes.dtype}", argument=name)
        checked = _from_numpy(codes, n_rows, name, first_row)
        return GroupCodes(checked.codes, 0, keys)
    library = library_of(group)
    if library == "pandas":
        if hasattr(group, "cat") or hasattr(group, "categories"):
            categorical = group.cat if hasattr(group, "cat") else group
            codes = np.asarray(categorical.codes)
            if codes.ndim == 1 and codes.shape[0] == n_rows and (codes < 0).any():
                raise _missing(first_row + int(np.flatnonzero(codes < 0)[0]), name)
            if codes.ndim == 1 and codes.shape[0] == n_rows:
                return GroupCodes(codes, 0, np.asarray(categorical.categories, dtype=object))
        if hasattr(group, "isna") and getattr(group, "ndim", 1) == 1:
            missing = np.asarray(group.isna(), dtype=bool)
            if missing.any():
                raise _missing(first_row + int(np.flatnonzero(missing)[0]), name)
        return _from_numpy(np.asarray(group), n_rows, name, first_row)
    if library == "polars" and hasattr(group, "to_arrow"):
        return _from_arrow(group.to_arrow(), n_rows, name, first_row)
    if library == "pyarrow" and hasattr(group, "null_count"):
        return _from_arrow(group, n_rows, name, first_row)
    return _from_numpy(_as_column(group, name), n_rows, name, first_row)


@dataclass(frozen=True)
class _KeptRows:
    """The groups kept as their rows: group ``g``'s rows (finite offsets, positive weights)
    are ``first[g]:first[g] + counts[g]`` of the columns (none for a group kept as cells),
    its weights in its units; ``totals[g]``: their ``Σ w (1 - y)``, ``Σ w y`` and ``Σ w f``.
    ``every_row``: the columns hold every tabled row of the sketch, those of the groups kept
    as cells too (the fill's grouped copy, kept whole rather than copied again)."""

    first: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    has_weights: bool
    totals: np.ndarray
    every_row: bool

    @property
    def stop(self) -> np.ndarray:
        return self.first + self.counts

    def arguments(self, low: int, high: int) -> tuple:
        """The exact kernels' leading arguments for rows ``[low, high)``."""
        return (self.offsets[low:high], True, 0.0, self.labels[low:high],
                self.weights[low:high] if self.has_weights else self.weights, self.has_weights)


class _GroupCurve:
    """One group of a :class:`GroupSketch` as a curve: its totals and its sums at any shift,
    `kernels.sketch_terms` on its own cells, with the logarithms of a part that falls below
    `TINY` (as :meth:`Sketch.evaluate` gives them), so that ``fit_of`` solves a group whose
    labels are separated by a gap wider than the doubles' σ as `fit` on its rows does."""

    passes = 1

    def __init__(self, centres: np.ndarray, tables: np.ndarray, width: float,
                 totals: CurveTotals) -> None:
        self._centres, self._tables, self._width = centres, tables, width
        self.totals = totals

    def evaluate(self, shift: float) -> Terms:
        shift = as_shift(shift)
        terms = terms_from_sums(_kernels.sketch_terms(
            self._centres, self._tables, self._width, shift, _COEFFICIENTS, _FACTORIALS,
            _NO_CELLS))
        return with_log_parts(terms, shift, self.totals.weight_sum, self._log_parts)

    def _log_parts(self, shift: float, scale: float, exponent: int
                   ) -> tuple[LogPart | None, LogPart | None]:
        state = np.zeros(_kernels.N_LOG)
        _kernels.sketch_log_parts(self._centres, self._tables, self._width, shift,
                                  _COEFFICIENTS, _FACTORIALS, scale, state)
        return log_parts_from_states(state, exponent)


class GroupSketch:
    """A mergeable one-pass summary of ``(y, group, offset, weight)``: for each group, the
    Taylor tables of :class:`~logitshift.Sketch` and its totals.

    Parameters
    ----------
    width : float, default 2**-4
        Grid width of the offsets, a power of two.
    order : int, default 8
        Taylor terms per cell.

    Notes
    -----
    Memory is ``8 + 16 * order`` bytes per occupied ``(group, cell)`` pair plus five numbers
    per group. ``update`` reads a chunk twice in memory (numba, a thread per core): once to
    validate it and find each group's offset range, once to fill each group's window of
    cells, threads owning disjoint ranges of groups; then the empty cells are dropped.
    Sketches of disjoint rows merge (``a + b``, ``sum(sketches)``) into the sketch of all
    of them, where their group labels are of one type; ``to_bytes`` / ``from_bytes`` move
    one between processes; ``solve`` gives what :func:`logitshift.fit_groups` gives on the
    same rows. Group keys are kept sorted (in order of first appearance where they do not
    sort together).

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> sketch = logitshift.GroupSketch()
    >>> for labels, group, offsets in [
    ...         (np.array([0, 1, 1, 0]), np.array(["a", "a", "b", "b"]),
    ...          np.array([0.2, 1.5, -0.3, 0.4])),
    ...         (np.array([1, 0, 1]), np.array(["b", "a", "b"]), np.array([0.1, -2.0, 0.3]))]:
    ...     _ = sketch.update(labels, group, offsets)
    >>> moved = logitshift.GroupSketch.from_bytes(sketch.to_bytes())
    >>> moved.solve().groups.tolist()
    ['a', 'b']
    """

    def __init__(self, width: float = DEFAULT_WIDTH, order: int = DEFAULT_ORDER) -> None:
        grid = Sketch(width, order)  # checks them
        self.width, self.order = grid.width, grid.order
        self._keys = np.empty(0, dtype=object)
        self._start = np.zeros(1, dtype=np.int64)
        self._centres = np.empty(0)
        self._tables = np.empty((0, 2, self.order))
        self._n_rows = np.zeros(0, dtype=np.int64)
        self._sums = np.zeros((0, 2))  # Σ w, Σ w y
        self._range = np.zeros((0, 2))  # least and greatest finite offset
        #: Each group's sums and tables are in units of ``2**_exponent[g]`` of the weights
        #: (0 but for a group whose weights sum beyond [2**-500, 2**500]): as `Sketch` keeps
        #: its sums, a group at a time, so that no group's scale costs another its digits.
        self._exponent = np.zeros(0, dtype=np.int64)
        #: Groups kept as their rows (``update(keep_rows=True)``), which have no cells; and
        #: the sketch with them as cells, made when first asked for.
        self._kept: _KeptRows | None = None
        self._cell_view: GroupSketch | None = None

    # -- building ----------------------------------------------------------------------------

    def update(self, y: Any, group: Any, offset: Any = None, weight: Any = None, *,
               levels: Any = None, first_row: int = 0, threads: int | None = None,
               keep_rows: bool = False) -> GroupSketch:
        """Add rows: labels ``y``, their groups, offsets (array, scalar or None) and optional
        weights, checked as :func:`logitshift.fit_groups` checks them (rows numbered from
        ``first_row``). ``levels``: ``group`` holds integer codes into them. Returns the
        sketch itself.

        ``keep_rows``: into an empty sketch, keep each group with at most 8 rows per cell
        of its offsets' span as its rows, whose sums are then exact, not Taylor series
        (what :func:`logitshift.fit_groups` does on arrays). Such a sketch solves faster
        where groups are small; merging it or writing it turns those rows into cells, as
        a sketch filled without ``keep_rows`` holds them."""
        data = Prepared.of(y, offset, weight, allow_empty=True, first_row=first_row)
        if threads is not None:
            threads = as_positive_int(threads, "threads")
        codes = group_codes(group, data.n_rows, levels, first_row=first_row)
        if data.n_rows == 0:
            return self
        chunk = _filled(data, codes, self.width, self.order, threads,
                        bool(keep_rows) and not self.n_groups)
        merged = self.merge(chunk) if self.n_groups else chunk
        self.__dict__.update(merged.__dict__)
        return self

    def merge(self, other: GroupSketch) -> GroupSketch:
        """A new sketch of both sketches' rows.

        Raises :class:`InputError` for anything but a group sketch of the same width and
        order, and for one whose group labels are of another type (bool beside int, int
        beside float, str beside bytes, ...): a label is one group only where both types
        agree on it, so ``True`` never joins the group ``1``. Integers of any width and
        sign are one type, merged exactly.
        """
        if not isinstance(other, GroupSketch):
            raise InputError(f"cannot merge a {type(other).__name__} into a group sketch: "
                             "only another GroupSketch", argument="other")
        if (other.width, other.order) != (self.width, self.order):
            raise InputError(
                f"cannot merge a group sketch of width {other.width} and order {other.order} "
                f"into one of width {self.width} and order {self.order}", argument="other")
        if self._kept is not None or other._kept is not None:
            return self._cells_only().merge(other._cells_only())
        if self.n_groups and other.n_groups:
            mine, theirs = _key_kind(self._keys), _key_kind(other._keys)
            if mine != theirs:
                raise InputError(
                    f"cannot merge a group sketch whose labels are {theirs} into one whose "
                    f"labels are {mine}: a group column must hold labels of one type in "
                    "every chunk and file", argument="other", value=(mine, theirs))
        left, right = _as_object(self._keys), _as_object(other._keys)
        if left.dtype != right.dtype:  # (uint64 beside int64 would become float64)
            left, right = left.astype(object), right.astype(object)
        keys = np.concatenate([left, right])
        try:
            unique, inverse = _distinct_keys(keys)
        except TypeError:  # mixed labels, as a fill keeps them: in order of appearance
            unique, inverse = _first_appearance(keys)
        merged = GroupSketch(self.width, self.order)
        merged._keys = _compact_keys(unique)
        n = unique.size
        mine, theirs = inverse[:self.n_groups], inverse[self.n_groups:]
        # A group's rows from both sides add in the larger of their units (`ScanTotals`'
        # rule), so that nothing overflows.
        exponent = _common_exponents(n, (mine, self), (theirs, other))
        my_sums, my_tables = self._in_units(exponent[mine])
        their_sums, their_tables = other._in_units(exponent[theirs])
        merged._exponent = exponent
        merged._n_rows = np.zeros(n, dtype=np.int64)
        np.add.at(merged._n_rows, inverse, np.concatenate([self._n_rows, other._n_rows]))
        merged._sums = np.zeros((n, 2))
        with np.errstate(over="ignore"):  # _finite refuses the sums that overflow
            np.add.at(merged._sums, inverse, np.concatenate([my_sums, their_sums]))
        ranges = np.concatenate([self._range, other._range])
        merged._range = np.column_stack([np.full(n, math.inf), np.full(n, -math.inf)])
        np.minimum.at(merged._range[:, 0], inverse, ranges[:, 0])
        np.maximum.at(merged._range[:, 1], inverse, ranges[:, 1])
        # Keys that sort together are kept sorted and distinct (fills and from_bytes see to
        # it), so both maps into the merged keys increase; should one not, the general sort
        # stands in.
        if not (np.all(mine[1:] > mine[:-1]) and np.all(theirs[1:] > theirs[:-1])):
            group = np.concatenate([np.repeat(mine, np.diff(self._start)),
                                    np.repeat(theirs, np.diff(other._start))])
            merged._set_cells(group, np.concatenate([self._centres, other._centres]),
                              np.concatenate([my_tables, their_tables]), n)
            return _finite(merged)
        # Both sketches' cells are sorted by (group, centre) and the keys' map keeps the
        # groups' order: one merge of the two runs, with no copy of either.
        runs = []
        for sketch, groups, tables in ((self, mine, my_tables), (other, theirs, their_tables)):
            runs += [np.repeat(groups, np.diff(sketch._start)), sketch._centres,
                     tables.reshape(sketch.n_cells, 2 * self.order)]
        n_cells = _kernels.merge_cells(*runs, np.empty(0, dtype=np.int64), np.empty(0),
                                       np.empty((0, 2 * self.order)))
        group = np.empty(n_cells, dtype=np.int64)
        merged._centres = np.empty(n_cells)
        tables = np.empty((n_cells, 2 * self.order))
        _kernels.merge_cells(*runs, group, merged._centres, tables)
        merged._tables = tables.reshape(n_cells, 2, self.order)
        merged._start = np.searchsorted(group, np.arange(n + 1)).astype(np.int64)
        return _finite(merged)

    __add__ = merge

    def relabelled(self, keys: Any) -> GroupSketch:
        """A new sketch of the same rows with group ``i`` (its place in :attr:`keys`) keyed
        ``keys[i]``, the groups sorted by their new keys. The new keys must be distinct: no
        two groups become one. (A CSV's integer labels become the text they were read from,
        when a later cell shows the column is text.)"""
        new = np.empty(self.n_groups, dtype=object)
        values = list(keys)
        if len(values) != self.n_groups:
            raise InputError(f"keys has {len(values)} labels, the sketch {self.n_groups} "
                             "groups", argument="keys")
        new[:] = values
        for index, value in enumerate(values):
            try:
                hash(value)
            except TypeError:
                raise InputError(f"keys[{index}] = {reprlib.repr(value)} is a "
                                 f"{type(value).__name__}, which is not hashable: a group "
                                 "label must be a number, string, bool or other hashable value",
                                 argument="keys", index=index, value=value) from None
            if _is_missing(value):
                raise InputError(f"keys[{index}] is missing: every group needs a label",
                                 argument="keys", index=index, value=value)
        if len(set(values)) != len(values):
            raise InputError("keys must be distinct: relabelling would merge groups",
                             argument="keys")
        copy = GroupSketch(self.width, self.order)
        copy.__dict__.update(self._cells_only().__dict__)
        copy._keys = new
        # Merging sorts the keys and carries every group's cells with its key.
        return copy.merge(GroupSketch(self.width, self.order))

    def __radd__(self, other: Any) -> GroupSketch:
        """``0 + sketch``: a copy, so that ``sum(sketches)`` merges them."""
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self.merge(GroupSketch(self.width, self.order))
        raise InputError(f"cannot merge a group sketch into a {type(other).__name__}: only "
                         "into another GroupSketch (or the 0 that sum() starts from)",
                         argument="other")

    def _in_units(self, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sums and tables with group ``g`` in units of ``2**exponent[g]`` (exact, but
        for what falls below the doubles' range): themselves where nothing changes."""
        change = (self._exponent - exponent).astype(np.intc)
        if not change.any():
            return self._sums, self._tables
        per_cell = np.repeat(change, np.diff(self._start))
        return (np.ldexp(self._sums, change[:, None]),
                np.ldexp(self._tables, per_cell[:, None, None]))

    def _set_cells(self, group: np.ndarray, centres: np.ndarray, tables: np.ndarray,
                   n_groups: int) -> None:
        """Cells of any order, their equal ``(group, centre)`` pairs added, sorted."""
        if group.size and not np.all(group[1:] >= group[:-1]):
            # A fill's cells come group by group: a stable sort of the groups (a merge of
            # runs) orders them; a merge's interleave needs the full sort below.
            order = np.argsort(group, kind="stable")
            group, centres, tables = group[order], centres[order], tables[order]
        same = group[1:] == group[:-1]
        if group.size and (same & (centres[1:] <= centres[:-1])).any():
            order = np.lexsort((centres, group))
            group, centres, tables = group[order], centres[order], tables[order]
            same = group[1:] == group[:-1]
            new = np.ones(group.size, dtype=bool)
            new[1:] = ~same | (centres[1:] != centres[:-1])
            if not new.all():
                first = np.flatnonzero(new)
                tables = np.add.reduceat(tables, first, axis=0)
                group, centres = group[first], centres[first]
        self._centres, self._tables = centres, tables
        self._start = np.searchsorted(group, np.arange(n_groups + 1)).astype(np.int64)

    # -- what it holds ---------------------------------------------------------------------

    @property
    def keys(self) -> np.ndarray:
        """The groups' labels, sorted."""
        return self._keys.copy()

    @property
    def n_groups(self) -> int:
        return self._keys.size

    @property
    def n_cells(self) -> int:
        """Occupied ``(group, cell)`` pairs: the size of the sketch (as written by
        :meth:`to_bytes`, groups kept as rows counted as the cells they would occupy)."""
        return self._cells_only()._centres.size

    def _cells_only(self) -> GroupSketch:
        """This sketch with every group as cells: itself where no group is kept as rows;
        else a sketch made once, whose rows' cells are filled as `_filled_once` fills
        them, so that it is the sketch a fill without ``keep_rows`` gives, to the bit."""
        if self._kept is None:
            return self
        if self._cell_view is None:
            self._cell_view = _rows_as_cells(self)
        return self._cell_view

    @property
    def n_rows(self) -> int:
        return int(self._n_rows.sum())

    def index_of(self, key: Any) -> int:
        """The position of a group's key in :attr:`keys`; an unseen one raises
        :class:`~logitshift.InputError` naming a few of the groups, which is also a
        ``KeyError``."""
        for index in np.flatnonzero(_equal_keys(self._keys, key)):
            return int(index)
        shown = ", ".join(reprlib.repr(group) for group in self._keys[:5].tolist())
        more = f", ... ({self.n_groups} groups)" if self.n_groups > 5 else ""
        raise UnknownGroup(f"no group {reprlib.repr(key)}: the groups are {shown or 'none'}"
                           f"{more}", argument="key", value=key)

    @property
    def group_totals(self) -> GroupTotals:
        """Each group's totals, as arrays in the order of :attr:`keys`."""
        n = self.n_groups
        t = self._tables
        # (In each group's units; offsets near the top of the double range may still
        # overflow the weighted offset, whose mean then falls back on the range's midpoint.)
        with np.errstate(over="ignore", invalid="ignore"):
            parts = np.column_stack([t[:, 0, 0], t[:, 1, 0],
                                     self._centres * (t[:, 0, 0] + t[:, 1, 0]) + t[:, 0, 1]
                                     + t[:, 1, 1]]) if t.size else np.zeros((0, 3))
            sums = np.zeros((n, 3))
            occupied = np.flatnonzero(np.diff(self._start) > 0)
            if occupied.size:
                sums[occupied] = np.add.reduceat(parts, self._start[occupied], axis=0)
            if self._kept is not None:  # (a group has cells or rows, never both)
                sums += self._kept.totals
            # (A first fill's sums may overflow before the group is put in its units.)
            active = sums[:, 0] + sums[:, 1]
        low, high = self._range[:, 0], self._range[:, 1]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            mean = sums[:, 2] / active
            # `mean_within`, group by group: inside the range, the midpoint if not finite.
            mean = np.where(np.isfinite(mean), np.minimum(np.maximum(mean, low), high),
                            0.5 * low + 0.5 * high)
        mean = np.where(active > 0, mean, math.nan)
        return GroupTotals(n_rows=self._n_rows.copy(), weight_sum=self._sums[:, 0].copy(),
                           positives=self._sums[:, 1].copy(), active_negatives=sums[:, 0],
                           active_positives=sums[:, 1], offset_min=self._range[:, 0].copy(),
                           offset_max=self._range[:, 1].copy(), offset_mean=mean,
                           scale_exponent=self._exponent.copy())

    def _scan_totals(self, index: int, centres: np.ndarray | None = None,
                     tables: np.ndarray | None = None) -> ScanTotals:
        """Group ``index``'s totals, the label parts and weighted offset from its cells
        (``centres`` and ``tables`` where given, else those the sketch holds)."""
        if centres is None:
            low, high = self._start[index], self._start[index + 1]
            centres, tables = self._centres[low:high], self._tables[low:high]
        active = [float(np.sum(tables[:, 0, 0])), float(np.sum(tables[:, 1, 0])),
                  _weighted_offset(centres, tables)]
        return ScanTotals(
            n_rows=int(self._n_rows[index]), weight_sum=float(self._sums[index, 0]),
            positives=float(self._sums[index, 1]),
            active_negatives=active[0], active_positives=active[1],
            weighted_offset=active[2],
            offset_min=float(self._range[index, 0]), offset_max=float(self._range[index, 1]),
            scale_exponent=int(self._exponent[index]))

    def curve(self, index: int) -> _GroupCurve:
        """Group ``index`` (its place in :attr:`keys`) as a curve: the shift estimator solves
        it as it solves a :class:`~logitshift.Sketch` of the group's rows, to the bit. A
        group kept as rows is filled into its cells here, as `_cells_only` would fill it
        (so that ``fit_of`` is `logitshift.fit` on the rows, whatever the group's size)."""
        kept = self._kept
        if kept is not None and kept.counts[index]:
            _, centres, tables = _cells_of_rows(
                kept.offsets, kept.labels, kept.weights, kept.has_weights,
                kept.first[index:index + 1], kept.stop[index:index + 1],
                self._range[index:index + 1, 0], self._range[index:index + 1, 1],
                np.ones(1, dtype=bool), self.width, self.order, 1)
        else:
            low, high = self._start[index], self._start[index + 1]
            centres, tables = self._centres[low:high], self._tables[low:high]
        return _GroupCurve(centres, tables, self.width,
                           self._scan_totals(index, centres, tables).curve_totals())

    def sketch_of(self, key: Any) -> Sketch:
        """The :class:`~logitshift.Sketch` of one group's rows."""
        index = self.index_of(key)
        self = self._cells_only()
        low, high = self._start[index], self._start[index + 1]
        return _sketch_of(self.width, self.order, self._scan_totals(index),
                          self._centres[low:high].copy(), self._tables[low:high].copy())

    def pooled(self) -> Sketch:
        """The :class:`~logitshift.Sketch` of every row, the groups ignored, in the units
        of its heaviest group. Raises :class:`InputError` where a label's every row is in
        groups more than 2**1074 lighter than the heaviest, as `logitshift.fit` does on the
        rows: their total vanishes beside it."""
        kept = self._kept
        if kept is not None and self._exponent.any():
            return self._cells_only().pooled()
        exponent = int(_common_exponents(1, (np.zeros(self.n_groups, dtype=np.int64),
                                             self))[0])
        if kept is not None and exponent:
            return self._cells_only().pooled()
        sums, tables = self._in_units(np.full(self.n_groups, exponent))
        centres = self._centres
        if kept is not None:
            # The rows in units of 1, filled as `logitshift.fit` fills them (threads over
            # rows): all the tabled rows where the columns hold them, else the kept ones
            # beside the other groups' cells.
            rows = Prepared(kept.labels, kept.offsets,
                            kept.weights if kept.has_weights else None)
            _, row_centres, row_tables = scan_arrays(rows, self.width, self.order)
            if kept.every_row:
                centres, tables = row_centres, row_tables
            else:
                centres = np.concatenate([centres, row_centres])
                tables = np.concatenate([tables, row_tables])
        centres, tables = _combine(centres, tables, self.width)
        totals = ScanTotals(
            n_rows=int(self._n_rows.sum()), weight_sum=float(sums[:, 0].sum()),
            positives=float(sums[:, 1].sum()),
            active_negatives=float(np.sum(tables[:, 0, 0])),
            active_positives=float(np.sum(tables[:, 1, 0])),
            weighted_offset=_weighted_offset(centres, tables),
            offset_min=float(self._range[:, 0].min(initial=math.inf)),
            offset_max=float(self._range[:, 1].max(initial=-math.inf)),
            scale_exponent=exponent)
        if self._exponent.any():
            for side, label in ((0, "0"), (1, "1")):
                present = self._tables[:, side, 0].sum() > 0
                if present and not tables[:, side, 0].sum() > 0:
                    raise InputError(
                        f"weight spans more than the range of doubles: every row labelled "
                        f"{label} is in groups whose weights are less than 2**-1074 of the "
                        f"heaviest group's, so their total vanishes in the pooled fit",
                        argument="weight")
        return _sketch_of(self.width, self.order, totals, centres, tables)

    def evaluate_groups(self, shifts: np.ndarray, wanted: np.ndarray | None = None,
                        threads: int | None = None, *, loss: bool = True) -> GroupTerms:
        """Every group's sums at its own shift (``shifts[g]``), for the groups ``wanted``
        (the others' are 0): `kernels.sketch_terms` on each group's cells, or
        `kernels.exact_terms` on its rows for a group kept as rows, on every core. Without
        ``loss``, a group kept as rows may leave its loss NaN (a Newton step needs only the
        other sums, at less than half the cost a row)."""
        n = self.n_groups
        shifts = np.ascontiguousarray(shifts, dtype=np.float64)
        wanted = np.ones(n, dtype=bool) if wanted is None else np.ascontiguousarray(wanted)
        out = np.zeros((n, _kernels.N_TERMS))
        tasks = []
        kept = self._kept
        if kept is not None:
            # Each group is written by one kernel only: cells' and rows' groups apart.
            counts = kept.counts
            rows_wanted = wanted & (counts > 0)
            wanted = wanted & (counts == 0)
            kernel = _kernels.group_row_terms if loss else _kernels.group_row_newton
            tasks += [partial(kernel, kept.first, kept.stop, kept.offsets, kept.labels,
                              kept.weights, kept.has_weights, shifts, rows_wanted, low, high,
                              out)
                      for low, high in _balanced(np.cumsum(counts * rows_wanted), threads)]
        cells = np.diff(self._start) * wanted
        if cells.any() or not tasks:
            tasks += [partial(_kernels.group_terms, self._start, self._centres, self._tables,
                              self.width, shifts, wanted, _COEFFICIENTS, _FACTORIALS, low,
                              high, out) for low, high in _balanced(np.cumsum(cells), threads)]
        in_threads(tasks)
        return GroupTerms(negative=out[:, 0], positive=out[:, 1], gradient=out[:, 2] + out[:, 3],
                          negative_curvature=out[:, 4], positive_curvature=out[:, 5],
                          loss=out[:, 6])

    def group_integrals(self, mean: float, tau: float, start: np.ndarray,
                        negatives: np.ndarray, positives: np.ndarray, nodes: np.ndarray,
                        weights: np.ndarray, wanted: np.ndarray) -> GroupIntegrals:
        """Each group's integral over its random intercept (``N(0, τ²)``) at mean ``μ``, with
        its exact gradient and Hessian in ``(μ, log τ)`` and its mode (a
        :class:`GroupIntegrals`): `kernels.group_integrals` on each group's cells, on every
        core, in the user's units (each group's sums times ``2**exponent``). ``start``: each
        group's first guess of the mode ``û``; ``negatives``, ``positives``: its label
        weights in the user's units; ``nodes``, ``weights``: the Gauss-Hermite rule
        (weights summing to 1). Rows of groups not ``wanted`` are 0. Groups kept as rows are
        integrated on their cells (`_cells_only`)."""
        self = self._cells_only()
        wanted = np.ascontiguousarray(wanted)
        out = np.zeros((self.n_groups, _kernels.N_INTEGRAL))
        # Work per group: its cells times the points it is evaluated at.
        bounds = _balanced(np.cumsum(np.diff(self._start) * wanted), None)
        arrays = [np.ascontiguousarray(a, dtype=np.float64)
                  for a in (start, negatives, positives, nodes, weights)]
        in_threads([partial(_kernels.group_integrals, self._start, self._centres, self._tables,
                            self._exponent, float(mean), float(tau), *arrays[:3],
                            *arrays[3:], wanted, _INTEGRAL_COEFFICIENTS, _FACTORIALS, low,
                            high, out) for low, high in bounds])
        k = _kernels
        return GroupIntegrals(
            value=out[:, k.I_VALUE], gradient=out[:, k.I_MEAN:k.I_THETA + 1],
            hessian=out[:, k.I_MEAN_MEAN:k.I_THETA_THETA + 1], shift=out[:, k.I_SHIFT],
            curvature=out[:, k.I_CURVATURE],
            shift_gradient=out[:, k.I_SHIFT_MEAN:k.I_SHIFT_THETA + 1],
            shift_hessian=out[:, k.I_SHIFT_MEAN_MEAN:k.I_SHIFT_THETA_THETA + 1],
            iterations=out[:, k.I_ITERATIONS])

    # -- the estimator -----------------------------------------------------------------------

    def solve(self, *, shrinkage: str | None = None, nagq: int = 1, pseudo_count: float = 0.0,
              tol: float | None = None, max_iter: int = 100, l2: float = 0.0
              ) -> GroupShiftFit:
        """The :class:`~logitshift.GroupShiftFit` of the rows seen so far: what
        :func:`logitshift.fit_groups` gives on the same rows, with its options (``shrinkage``,
        ``nagq``, ``pseudo_count``, ``tol``, ``max_iter``, ``l2``), from the tables alone.

        Raises :class:`InputError` for an option out of range, a sketch with no rows, or
        rows that weigh nothing; warns as :func:`logitshift.fit_groups` does.
        """
        options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2)
        if self.n_groups == 0:
            raise InputError("y is empty: the group sketch has no rows yet", argument="y")
        return fit_group_curves(self, **options)

    # -- moving it ---------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        key_type = _key_type(self._keys)
        header = {"width": self.width, "order": self.order, "n_groups": self.n_groups,
                  "n_cells": self.n_cells, "key_type": key_type,
                  "keys": _written_keys(self._keys, key_type)}
        if self._exponent.any():
            header[_UNITS_FIELD] = self._exponent.tolist()
        return header

    def _body(self) -> bytes:
        header = self._header()
        text = json.dumps(header, separators=(",", ":")).encode()
        arrays = [np.diff(self._start).astype("<i8"), self._n_rows.astype("<i8"),
                  self._sums.astype("<f8"), self._range.astype("<f8"),
                  self._centres.astype("<f8"), self._tables.astype("<f8")]
        # The oldest version that holds the key type and the units: readers of version 2
        # read every other blob.
        version = max(_KEY_TYPES[header["key_type"]][1], 3 if self._exponent.any() else 2)
        return (_MAGIC + struct.pack("<II", version, len(text)) + text
                + b"".join(array.tobytes() for array in arrays))

    def to_bytes(self) -> bytes:
        """A compact binary form, read by :meth:`from_bytes`.

        ``b"LSGS"``, the format version and the header's length (two little-endian uint32),
        the header (JSON: grid, counts, the keys and their type), then per group its number
        of cells, rows, ``Σ w``, ``Σ w y`` and offset range, the cells' centres and tables
        (little-endian int64 and float64), and the CRC-32 of everything before it (uint32).

        Keys read back exactly, in the same array type: bools, int64, uint64, Python
        integers beyond both, float64 (``-0.0`` and infinities too), strings and, where all
        of a sketch's keys are bytes, bytes (as hexadecimal; version 3, as are uint64 keys;
        every other sketch is written as version 2). Raises :class:`InputError` for a key of
        any other type.
        """
        body = self._cells_only()._body()
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, blob: bytes) -> GroupSketch:
        """The group sketch of a :meth:`to_bytes` blob.

        Raises :class:`InputError` for every other blob: ``"not a logitshift group
        sketch"``, ``"group sketch is corrupted: checksum mismatch"`` (a flipped bit, a
        truncation), ``"written by format version N"`` (newer than this reads), and, since a
        checksum proves only that the bytes are as written, for any field that no group
        sketch holds: a header not as :meth:`to_bytes` writes it, a key not of its type,
        keys unsorted or repeated, a count, total or offset range that does not agree with
        the group's cells, a NaN or infinity where none can be, cells off the grid or out of
        order, moments beyond what a cell's width allows.
        """
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise InputError(f"blob must be bytes, got {type(blob).__name__}", argument="blob")
        blob = bytes(blob)
        if len(blob) < 16 or blob[:4] != _MAGIC:
            raise InputError("not a logitshift group sketch: it does not start with b'LSGS'",
                             argument="blob")
        version, length = struct.unpack("<II", blob[4:12])
        if version > GROUP_FORMAT_VERSION or version < 2:
            raise InputError(f"group sketch written by format version {version}; this reads "
                             f"versions 2 to {GROUP_FORMAT_VERSION}", argument="blob",
                             value=version)
        (checksum,) = struct.unpack("<I", blob[-4:])
        if zlib.crc32(memoryview(blob)[:-4]) != checksum:
            raise InputError("group sketch is corrupted: checksum mismatch", argument="blob")
        if 12 + length > len(blob) - 4:
            raise _corrupted(f"its header's length {length} runs past its {len(blob)} bytes")
        header = _parse_header(blob[12:12 + length])
        width = header["width"]
        if isinstance(width, bool) or not isinstance(width, float):
            raise _corrupted(f"width = {width!r} is not a number")
        order = _size_field(header, "order", 2, MAX_ORDER)
        n_groups = _size_field(header, "n_groups", 0, len(blob))
        n_cells = _size_field(header, "n_cells", 0, len(blob))
        try:
            sketch = cls(width, order)
        except InputError as exc:
            raise _corrupted(str(exc)) from None
        keys = _keys_of(header["key_type"], header["keys"], version)
        if keys.size != n_groups:
            raise _corrupted(f"it has {keys.size} keys, where n_groups = {n_groups}")
        try:
            exponents = _exponents_of(header.get(_UNITS_FIELD), n_groups)
        except ValueError as exc:
            raise _corrupted(str(exc)) from None
        if exponents.any() and version < 3:
            raise _corrupted(f"version {version} cannot hold units other than 1")
        expected = 12 + length + 8 * (6 * n_groups + n_cells * (1 + 2 * order)) + 4
        if len(blob) != expected:
            raise _corrupted(f"{len(blob)} bytes, where its header says {expected}")
        at = 12 + length

        def take(count: int, dtype: str) -> np.ndarray:
            nonlocal at
            array = np.frombuffer(blob, dtype=dtype, count=count, offset=at)
            at += 8 * count
            return array.astype(np.int64 if dtype == "<i8" else np.float64)

        counts, n_rows = take(n_groups, "<i8"), take(n_groups, "<i8")
        sums = take(2 * n_groups, "<f8").reshape(n_groups, 2)
        ranges = take(2 * n_groups, "<f8").reshape(n_groups, 2)
        centres = take(n_cells, "<f8")
        tables = take(n_cells * 2 * order, "<f8").reshape(n_cells, 2, order)
        return sketch._with_cells(keys, counts, n_rows, sums, ranges, centres, tables,
                                  exponents)

    @classmethod
    def _from_cells(cls, keys: np.ndarray, counts: np.ndarray, n_rows: np.ndarray,
                    sums: np.ndarray, ranges: np.ndarray, centres: np.ndarray,
                    tables: np.ndarray, *, width: float = DEFAULT_WIDTH,
                    order: int = DEFAULT_ORDER, argument: str = "rows") -> GroupSketch:
        """The group sketch of per-group arrays gathered elsewhere (an SQL engine's sums):
        keys sorted and distinct, each group's number of cells, rows, ``(Σ w, Σ w y)`` and
        offset range, and the cells' centres and tables sorted by (group, centre), every
        group in units of 1. Checked as :meth:`from_bytes` checks a blob, so that a wrong
        result is refused as a corrupted blob is (``argument`` names its origin)."""
        sketch = cls(width, order)
        try:
            return sketch._with_cells(
                _compact_keys(keys), np.asarray(counts, dtype=np.int64),
                np.asarray(n_rows, dtype=np.int64), np.asarray(sums, dtype=np.float64),
                np.asarray(ranges, dtype=np.float64), np.asarray(centres, dtype=np.float64),
                np.asarray(tables, dtype=np.float64), np.zeros(len(keys), dtype=np.int64))
        except InputError as exc:
            raise InputError(str(exc), argument=argument) from None

    def _with_cells(self, keys: np.ndarray, counts: np.ndarray, n_rows: np.ndarray,
                    sums: np.ndarray, ranges: np.ndarray, centres: np.ndarray,
                    tables: np.ndarray, exponents: np.ndarray) -> GroupSketch:
        """This (empty) sketch holding these arrays, once they pass every check."""
        # Merges rely on the order: keys sorted and distinct, each group's cells increasing.
        if _key_order(keys) is not None or _has_duplicates(keys):
            raise _corrupted("its keys are not sorted and distinct")
        n_groups = keys.size
        shapes = {"counts": (counts, (n_groups,)), "n_rows": (n_rows, (n_groups,)),
                  "sums": (sums, (n_groups, 2)), "ranges": (ranges, (n_groups, 2)),
                  "centres": (centres, (centres.size,)),
                  "tables": (tables, (centres.size, 2, self.order))}
        for name, (array, shape) in shapes.items():
            if array.shape != shape:
                raise _corrupted(f"{name} has shape {array.shape}, where {shape} is needed")
        _check_cells(keys, counts, n_rows, sums, ranges, centres, tables, self.width)
        self._keys, self._n_rows, self._exponent = keys, n_rows, exponents
        self._sums, self._range = sums, ranges
        self._centres, self._tables = centres, tables
        self._start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return self

    def __repr__(self) -> str:
        kept = "" if self._kept is None else (
            f", rows kept={int(self._kept.counts.sum())} in "
            f"{np.count_nonzero(self._kept.counts)} groups")
        return (f"GroupSketch(groups={self.n_groups}, n_rows={self.n_rows}, "
                f"cells={self._centres.size}{kept}, width={self.width}, order={self.order})")


_MAGIC = b"LSGS"
#: The newest format of :meth:`GroupSketch.to_bytes`: the version-2 design of the sketch's
#: (magic, version, header length, JSON header, arrays, CRC-32), with its own magic. Version
#: 3 adds the key types ``uint`` and ``bytes`` and the header's ``scale_exponents`` (each
#: group's units, where any is not 1); a blob without them is written as version 2.
GROUP_FORMAT_VERSION = 3

#: Units beyond these cannot come from weights that are doubles (sums of up to 2**63 rows).
_EXPONENT_LIMIT = 1200


def _exponents_of(values: Any, n_groups: int) -> np.ndarray:
    """The header's ``scale_exponents`` (absent: every group in units of 1)."""
    if values is None:
        return np.zeros(n_groups, dtype=np.int64)
    if not (isinstance(values, list) and len(values) == n_groups
            and all(type(v) is int and abs(v) <= _EXPONENT_LIMIT for v in values)):
        raise ValueError("scale_exponents is not a list of small integers, one a group")
    return np.array(values, dtype=np.int64)


def _common_exponents(n: int, *parts: tuple[np.ndarray, GroupSketch]) -> np.ndarray:
    """The units of ``n`` groups made of the groups of ``parts`` (``(index, sketch)``:
    sketch's group ``i`` goes into group ``index[i]``): the largest of those with weight,
    so that no sum overflows; 0 where none has weight."""
    floor = np.iinfo(np.int64).min
    common = np.full(n, floor, dtype=np.int64)
    for index, sketch in parts:
        np.maximum.at(common, index, np.where(sketch._sums[:, 0] != 0, sketch._exponent,
                                              floor))
    return np.where(common == floor, 0, common)


def _sketch_of(width: float, order: int, totals: ScanTotals, centres: np.ndarray,
               tables: np.ndarray) -> Sketch:
    sketch = Sketch(width, order, max_cells=max(centres.size, 1))
    sketch._scanned, sketch._centres, sketch._tables = totals, centres, tables
    return sketch


def _balanced(cumulative: np.ndarray, threads: int | None) -> list[tuple[int, int]]:
    """Contiguous ranges of groups with about equal work, ``cumulative`` its running sum."""
    n = cumulative.size
    total = int(cumulative[-1]) if n else 0
    parts = max(1, min(max_threads() if threads is None else threads, total // 4096 or 1))
    cuts = [0] + [int(np.searchsorted(cumulative, total * k / parts, side="left")) + 1
                  for k in range(1, parts)] + [n]
    cuts = sorted(set(min(max(c, 0), n) for c in cuts))
    return [(low, high) for low, high in zip(cuts[:-1], cuts[1:]) if high > low] or [(0, n)]


def _filled(data: Prepared, codes: GroupCodes, width: float, order: int,
            threads: int | None, keep_rows: bool = False) -> GroupSketch:
    """The group sketch of one chunk in memory, each group in the units of its own weights.

    As `passes.rescaled_pass` does for `Sketch`, group by group: where a group's weights sum
    beyond ``[2**-500, 2**500]`` (see `units.weight_exponent`), the chunk is filled again
    with that group's weights divided by the power of two that brings their sum near 1, so
    that a group of weights 5e-324 keeps its digits beside one of weights 1, and one of
    1e300 does not overflow. The common case makes one fill and no copy.
    """
    sketch, position = _filled_once(data, codes, width, order, threads, keep_rows)
    if data.weights is None:
        return _finite(sketch)
    exponent = _group_exponents(sketch, data, codes, position)
    if not exponent.any():
        return _finite(sketch)
    values = np.asarray(codes.codes).astype(np.int64) - codes.base
    rescaled = replace(data, weights=np.ldexp(data.weights.astype(np.float64),
                                              -exponent[position[values]].astype(np.intc)))
    again, _ = _filled_once(rescaled, codes, width, order, threads, keep_rows)
    before, after = sketch.group_totals, again.group_totals
    for name, label in (("active_negatives", "0"), ("active_positives", "1")):
        vanished = np.flatnonzero((getattr(before, name) > 0) & (getattr(after, name) == 0))
        if vanished.size:
            raise InputError(
                f"weight spans more than the range of doubles within group "
                f"{_plain(sketch._keys[vanished[0]])!r}: every row labelled {label} weighs "
                f"less than 2**-1074 of the group's heaviest row, so their total vanishes "
                f"beside it", argument="weight")
    again._exponent = exponent
    return _finite(again)


def _group_exponents(sketch: GroupSketch, data: Prepared, codes: GroupCodes,
                     position: np.ndarray) -> np.ndarray:
    """Each group's units: `units.weight_exponent` of its totals (0 where they are
    ordinary, which is nearly always)."""
    weight = sketch._sums[:, 0]
    limit = 2.0 ** ORDINARY_EXPONENT
    exponent = np.zeros(weight.size, dtype=np.int64)
    # `weight_exponent`'s cases beyond the ordinary, found for all groups at once; the label
    # totals matter only below a weight of 1/2 (the tables' sums, made only then).
    odd = ~((weight == 0) | ((1.0 / limit <= weight) & (weight <= limit)))
    if not (odd.any() or (weight < 0.5).any()):
        return exponent
    totals = sketch.group_totals
    odd |= (weight < 0.5) & ((totals.positives < TINY) | (totals.active_positives < TINY)
                             | (totals.active_negatives < TINY))
    largest = None
    for g in np.flatnonzero(odd).tolist():
        if not math.isfinite(weight[g]) and largest is None:
            # The heaviest row of each group (a pass, only for sums beyond the doubles).
            by_code = np.zeros(position.size)
            np.maximum.at(by_code, np.asarray(codes.codes).astype(np.int64) - codes.base,
                          data.weights.astype(np.float64))
            largest = np.zeros(weight.size)
            largest[position[position >= 0]] = by_code[position >= 0]
        exponent[g] = weight_exponent(
            float(weight[g]), (float(totals.positives[g]), float(totals.active_positives[g]),
                               float(totals.active_negatives[g])),
            lambda g=g: float(largest[g]))
    return exponent


def _filled_once(data: Prepared, codes: GroupCodes, width: float, order: int,
                 threads: int | None, keep_rows: bool = False
                 ) -> tuple[GroupSketch, np.ndarray]:
    """The group sketch of one chunk in memory, its sums in the weights' own units, and
    where each code's group went in it (-1: a code without rows). With ``keep_rows``, the
    groups of at most `_ROWS_PER_CELL` rows per cell of their span keep their grouped rows
    instead of cells.

    Four kernels: `group_scan` validates the rows and totals each group per thread (for
    integer labels, offsets and no weights, `group_count` only counts, and
    `group_row_bounds` totals the grouped rows);
    `group_scatter` copies the tabled rows grouped (a counting sort, threads over rows);
    `group_cell_counts` and `group_fill` (threads over ranges of groups) count each
    group's occupied cells, then fill its window in cache and copy those cells out. Memory
    beyond the output: the grouped copy (16 bytes a row, 24 with weights) and a window per
    thread.
    """
    arguments = data.kernel_arguments
    values, base = codes.codes, codes.base
    if values.dtype.kind not in "iu" or not values.dtype.isnative:
        values = values.astype(np.int64)
    if base > _INT64_MAX:
        # uint64 labels past int64 are their own codes less a base that int64 cannot hold,
        # and numba, having compiled the kernels for an int64 base, would refuse it
        # (OverflowError): subtract it here.
        values, base = (values - np.uint64(base)).astype(np.int64), 0
    n_codes = codes.n_codes
    ranges = row_ranges(data.n_rows, threads)
    t = len(ranges)
    count = np.zeros((t, n_codes), dtype=np.int64)
    first_bad = np.full(t, -1, dtype=np.int64)
    # Integer labels, an offset per row, no weights: count alone, and take the rest from
    # the grouped rows, unless a row is bad or has an infinite offset.
    counted = (arguments[1] and not arguments[5] and arguments[3].dtype.kind in "biu")
    if counted:
        in_threads([partial(_kernels.group_count, values, base, n_codes, arguments[0],
                            arguments[3], start, stop, count[k], first_bad[k:k + 1])
                    for k, (start, stop) in enumerate(ranges)])
        counted = not (first_bad >= 0).any()
    if counted:
        tabled = count
    else:
        count[:] = 0
        first_bad[:] = -1
        tabled = np.zeros((t, n_codes), dtype=np.int64)
        sums = np.zeros((t, 2, n_codes))
        low = np.full((t, n_codes), math.inf)
        high = np.full((t, n_codes), -math.inf)
        in_threads([partial(_kernels.group_scan, values, base, n_codes, *arguments, start,
                            stop, count[k], tabled[k], sums[k, 0], sums[k, 1], low[k],
                            high[k], first_bad[k:k + 1])
                    for k, (start, stop) in enumerate(ranges)])
    if (first_bad >= 0).any():
        row = int(first_bad[first_bad >= 0].min())
        code = int(values[row]) - base
        if not 0 <= code < n_codes:
            index = row + data.first_row
            raise InputError(f"group[{index}] = {int(values[row])} is not a code of the "
                             f"{n_codes} levels", argument="group", index=index,
                             value=int(values[row]))
        data.raise_for_values(row)
    # Each thread's rows of group g go after those of the threads before it.
    flat = tabled.T.ravel()  # group-major
    cursor = (np.cumsum(flat) - flat).reshape(n_codes, t).T.copy()
    rows_of = tabled.sum(axis=0)
    row_start = np.zeros(n_codes + 1, dtype=np.int64)
    np.cumsum(rows_of, out=row_start[1:])
    n_tabled = int(row_start[-1])
    sorted_offsets = np.empty(n_tabled)
    # Integer labels (0 or 1, the scan checked) travel as one byte, not eight.
    sorted_labels = np.empty(n_tabled, dtype=np.int8 if arguments[3].dtype.kind in "biu"
                             else np.float64)
    has_weights = data.weights is not None
    sorted_weights = np.empty(n_tabled if has_weights else 0)
    in_threads([partial(_kernels.group_scatter, values, base, *arguments, start, stop,
                        cursor[k], sorted_offsets, sorted_labels, sorted_weights)
                for k, (start, stop) in enumerate(ranges)])
    count = count.sum(axis=0)
    if counted:
        sums = np.empty((2, n_codes))
        sums[0] = count
        low, high = np.empty(n_codes), np.empty(n_codes)
        in_threads([partial(_kernels.group_row_bounds, sorted_offsets, sorted_labels,
                            row_start, first, stop, sums[1], low, high)
                    for first, stop in _balanced(row_start[1:], threads)])
    else:
        sums = sums.sum(axis=0)
        low, high = low.min(axis=0), high.max(axis=0)
    present = np.flatnonzero(count > 0)

    _, _, span = _spans(low, high, width)
    kept = (keep_rows & (rows_of > 0) & (rows_of <= _ROWS_PER_CELL * span) if keep_rows
            else np.zeros(n_codes, dtype=bool))
    cell_code, centres, tables = _cells_of_rows(
        sorted_offsets, sorted_labels, sorted_weights, has_weights, row_start[:-1],
        row_start[1:], low, high, ~kept, width, order, threads)

    # Only the groups with rows; then in the order of their keys.
    position = np.full(n_codes, -1, dtype=np.int64)
    position[present] = np.arange(present.size)
    keys = codes.levels[present]
    order_of_keys = _key_order(keys)
    if order_of_keys is not None:
        rank = np.empty(present.size, dtype=np.int64)
        rank[order_of_keys] = np.arange(present.size)
        position[present] = rank
        present = present[order_of_keys]
        keys = keys[order_of_keys]
    sketch = GroupSketch(width, order)
    sketch._keys = _compact_keys(keys)
    sketch._n_rows = count[present]
    sketch._sums = sums[:, present].T.copy()
    sketch._range = np.column_stack([low[present], high[present]])
    sketch._set_cells(position[cell_code], centres, tables, present.size)
    sketch._exponent = np.zeros(present.size, dtype=np.int64)
    if kept.any():
        sketch._kept = _kept_rows(sorted_offsets, sorted_labels, sorted_weights, has_weights,
                                  row_start[present], np.where(kept, rows_of, 0)[present])
    return sketch, position


def _kept_rows(offsets: np.ndarray, labels: np.ndarray, weights: np.ndarray,
               has_weights: bool, first: np.ndarray, counts: np.ndarray) -> _KeptRows:
    """The kept rows of each group in key order: ``counts[g]`` rows from ``first[g]`` of
    the grouped columns. Where most rows are kept, the columns themselves (no copy: a
    gather of 1e7 rows costs more than the fill); else a copy of the kept rows alone, so
    that the sketch holds no more rows than it keeps."""
    if 2 * int(counts.sum()) < offsets.size:
        start = np.zeros(counts.size + 1, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        rows = np.repeat(first - start[:-1], counts) + np.arange(start[-1])
        offsets, labels = offsets[rows], labels[rows]
        weights = weights[rows] if has_weights else weights
        first, every_row = start[:-1], False
    else:
        first, every_row = np.ascontiguousarray(first), True
    totals = np.zeros((counts.size, 3))
    _kernels.group_row_totals(first, first + counts, offsets, labels, weights, has_weights,
                              totals)
    return _KeptRows(first, counts, offsets, labels, weights, has_weights, totals, every_row)


def _spans(low: np.ndarray, high: np.ndarray, width: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which groups have a finite offset, the cell of the least, and how many cells their
    offsets span (0 for the others; inf where beyond the doubles)."""
    inv_width = 1.0 / width
    finite = high >= low
    with np.errstate(over="ignore", invalid="ignore"):
        cell_low = np.where(finite, np.floor(low * inv_width), 0.0)
        span = np.where(finite, np.floor(high * inv_width) - cell_low + 1.0, 0.0)
    return finite, cell_low, span


def _cells_of_rows(offsets: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                   has_weights: bool, row_first: np.ndarray, row_stop: np.ndarray,
                   low: np.ndarray, high: np.ndarray, which: np.ndarray, width: float,
                   order: int, threads: int | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells of the groups ``which`` from their grouped rows (group ``g``'s rows
    ``row_first[g]:row_stop[g]``, its least and greatest offset ``low[g]``,
    ``high[g]``): each group's code, centres and tables, a group's cells in increasing
    offset.

    `group_cell_counts` and `group_fill` (threads over ranges of groups) count each group's
    occupied cells, then fill its window in cache and copy those cells out; a group whose
    offsets span more cells than a window allows goes to `_fill_sparse`.
    """
    n_codes = row_first.size
    rows_of = row_stop - row_first
    inv_width = 1.0 / width
    finite, cell_low, span = _spans(low, high, width)
    finite &= which
    dense = finite & (span <= np.maximum(_WINDOW_CELLS, np.minimum(_WINDOW_ROWS * rows_of,
                                                                   _MAX_WINDOW)))
    spans = np.where(dense, span, 0.0).astype(np.int64)
    bounds = _balanced(np.cumsum(np.where(dense, rows_of, 0)), threads)
    widest = int(spans.max(initial=0))
    cells = np.zeros(n_codes, dtype=np.int64)
    in_threads([partial(_kernels.group_cell_counts, offsets, row_first, row_stop, cell_low,
                        spans, first, stop, inv_width, np.zeros(widest, dtype=np.bool_),
                        cells) for first, stop in bounds])
    cell_start = np.zeros(n_codes + 1, dtype=np.int64)
    np.cumsum(cells, out=cell_start[1:])
    centres = np.empty(int(cell_start[-1]))
    tables = np.empty((centres.size, 2 * order))
    if order == 8 and not has_weights and labels.dtype.kind in "biu":
        tasks = [partial(_kernels.group_fill_unweighted, offsets, labels, row_first,
                         row_stop, cell_low, spans, cell_start, first, stop, inv_width, width,
                         np.zeros(widest * 2 * order), centres, tables)
                 for first, stop in bounds]
        _kernels.compile_vectorized(_kernels.group_fill_unweighted, tasks[0].args)
    else:
        tasks = [partial(_kernels.group_fill, offsets, labels, weights, has_weights,
                         row_first, row_stop, cell_low, spans, cell_start, first, stop,
                         inv_width, width, order, np.zeros(widest * 2 * order), centres,
                         tables) for first, stop in bounds]
    in_threads(tasks)
    tables = tables.reshape(centres.size, 2, order)
    cell_code = np.repeat(np.arange(n_codes), cells)
    sparse = np.flatnonzero(finite & ~dense)
    if sparse.size:
        sparse_code, sparse_centres, sparse_tables = _fill_sparse(
            offsets, labels, weights if has_weights else None, row_first, row_stop, sparse,
            width, order)
        cell_code = np.concatenate([cell_code, sparse_code])
        centres = np.concatenate([centres, sparse_centres])
        tables = np.concatenate([tables, sparse_tables])
    return cell_code, centres, tables


def _rows_as_cells(sketch: GroupSketch) -> GroupSketch:
    """A new sketch of the same rows with the groups kept as rows turned into cells."""
    kept = sketch._kept
    n = sketch.n_groups
    code, centres, tables = _cells_of_rows(
        kept.offsets, kept.labels, kept.weights, kept.has_weights, kept.first, kept.stop,
        sketch._range[:, 0], sketch._range[:, 1], kept.counts > 0, sketch.width,
        sketch.order, None)
    view = GroupSketch(sketch.width, sketch.order)
    view._keys, view._n_rows, view._sums = sketch._keys, sketch._n_rows, sketch._sums
    view._range, view._exponent = sketch._range, sketch._exponent
    view._set_cells(np.concatenate([np.repeat(np.arange(n), np.diff(sketch._start)), code]),
                    np.concatenate([sketch._centres, centres]),
                    np.concatenate([sketch._tables, tables]), n)
    return view


def _finite(sketch: GroupSketch) -> GroupSketch:
    """The sketch, whose sums are all finite; else :class:`InputError` naming the first group
    whose weights overflow the double range (no estimate could use its sums)."""
    bad = ~np.isfinite(sketch._sums).all(axis=1)
    if not bad.any():
        cells = ~np.isfinite(sketch._tables).all(axis=(1, 2))
        if not cells.any():
            return sketch
        bad[np.searchsorted(sketch._start, np.flatnonzero(cells)[0], side="right") - 1] = True
    index = int(np.flatnonzero(bad)[0])
    raise InputError(f"the weights of {_group_named(sketch._keys, index)} sum beyond the largest "
                     "float, beyond [2**-500, 2**500], where fit_groups would lose its sums' "
                     "precision; divide every weight by the same power of two (the shifts do "
                     "not change)", argument="weight", value=float(sketch._sums[index, 0]))


def _fill_sparse(offsets: np.ndarray, labels: np.ndarray, weights: np.ndarray | None,
                 row_first: np.ndarray, row_stop: np.ndarray, sparse: np.ndarray,
                 width: float, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of groups too spread for a window, by numpy (`Sketch`'s reference fill):
    their codes, centres and tables, sorted by (code, centre)."""
    codes, centres, tables = [], [], []
    for code in sparse.tolist():
        rows = slice(row_first[code], row_stop[code])
        c, t = fill_reference(labels[rows], offsets[rows],
                              None if weights is None else weights[rows], width, order)
        codes.append(np.full(c.size, code, dtype=np.int64))
        centres.append(c)
        tables.append(t)
    return np.concatenate(codes), np.concatenate(centres), np.concatenate(tables)


def _key_order(keys: np.ndarray) -> np.ndarray | None:
    """The permutation that sorts the keys, None where they are sorted already or do not
    sort together."""
    try:
        order = np.argsort(keys, kind="stable")
    except TypeError:
        return None
    if np.array_equal(order, np.arange(keys.size)):
        return None
    return order


def _distinct_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys and each key's place among them: sorted where the keys share a total
    order; by equality, in order of first appearance, where they are all of kinds that do not
    (frozensets, whose ``<`` is the subset order, would otherwise be sorted into repeats).
    Raises ``TypeError`` for keys of two families (bools beside numbers, text beside
    numbers)."""
    if keys.dtype == object and keys.size:
        families = {_family(kind) for kind in set(map(type, keys.tolist()))}
        if len(families) > 1:
            raise TypeError("mixed types")
        if families == {"other"}:
            codes = _hashed_codes(keys.tolist())
            return codes.levels, codes.codes
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, inverse.ravel()


def _first_appearance(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys in order of first appearance and each key's place among them, for
    keys that do not sort together. Labels of different types stay apart (``True`` and
    ``1``, ``1`` and ``1.0``), as they do between sketches."""
    seen: dict[tuple[str, Any], int] = {}
    values = keys.tolist()
    inverse = np.fromiter((seen.setdefault((_label_type(value), value), len(seen))
                           for value in values), dtype=np.int64, count=len(values))
    unique = np.empty(len(seen), dtype=object)
    for index, (_, value) in enumerate(seen):  # element by element: tuples stay elements
        unique[index] = value
    return unique, inverse


def _has_duplicates(keys: np.ndarray) -> bool:
    try:
        return np.unique(_as_object(keys)).size != keys.size
    except TypeError:  # keys that do not sort together: a set finds the equal ones
        return len(set(keys.tolist())) != keys.size


def _as_object(keys: np.ndarray) -> np.ndarray:
    return keys.astype(object) if keys.dtype.kind in "US" else keys


def _compact_keys(keys: np.ndarray) -> np.ndarray:
    """Keys in the one array type their values give, whatever their history (a fill of
    int32 codes, a merge, a blob): bools; integers as int64, as uint64 where some exceed
    int64 and none is negative, else as Python ints; floats as float64; anything else
    (strings, bytes, mixed types) as objects."""
    kind = keys.dtype.kind
    if kind in "US":
        return keys.astype(object)
    if kind == "f":
        return keys.astype(np.float64)
    if kind == "i":
        return keys.astype(np.int64)
    if kind == "u":
        return keys.astype(np.uint64 if keys.size and keys.max() > _INT64_MAX else np.int64)
    if kind != "O" or keys.size == 0:
        return keys
    values = keys.tolist()
    if all(isinstance(value, bool) for value in values):
        return np.array(values, dtype=np.bool_)
    if all(isinstance(value, numbers.Integral) and not isinstance(value, bool)
           for value in values):
        values = [int(value) for value in values]
        low, high = min(values), max(values)
        if low >= -_INT64_MAX - 1 and high <= _INT64_MAX:
            return np.array(values, dtype=np.int64)
        if low >= 0 and high <= _UINT64_MAX:
            return np.array(values, dtype=np.uint64)
        return keys
    if all(isinstance(value, (float, np.floating)) for value in values):
        return np.array(values, dtype=np.float64)
    return keys


def _label_type(value: Any) -> str:
    """The name of one group label's type, as :func:`_key_kind` names it."""
    return _type_name(type(value))


def _type_name(kind: type) -> str:
    if issubclass(kind, (bool, np.bool_)):
        return "bool"
    if issubclass(kind, numbers.Integral):
        return "int"
    if issubclass(kind, (float, np.floating)):
        return "float"
    if issubclass(kind, str):
        return "str"
    if issubclass(kind, bytes):
        return "bytes"
    return kind.__name__


def _key_kind(keys: np.ndarray) -> str:
    """The type of a sketch's group labels in words (``"int"``, ``"str"``, ``"int and
    str"`` for mixed labels): two sketches merge only where it is the same. Integers of
    every width and sign are one type, ``int``."""
    kind = keys.dtype.kind
    named = {"b": "bool", "i": "int", "u": "int", "f": "float", "U": "str", "S": "bytes"}
    if kind in named:
        return named[kind]
    if kind != "O":
        return str(keys.dtype)
    return " and ".join(sorted({_type_name(label) for label in set(map(type, keys.tolist()))}))


def _equal_keys(keys: np.ndarray, key: Any) -> np.ndarray:
    try:
        equal = keys == key
    except (TypeError, ValueError):
        return np.array([k == key for k in keys.tolist()], dtype=bool)
    return np.asarray(equal, dtype=bool).reshape(keys.shape) if np.ndim(equal) else \
        np.zeros(keys.shape, dtype=bool)


def _plain(key: Any) -> Any:
    if isinstance(key, (bool, str)):
        return key
    if isinstance(key, numbers.Integral):
        return int(key)
    if isinstance(key, (float, np.floating)):
        return float(key)
    raise InputError(f"group label {key!r} ({type(key).__name__}) cannot be written: "
                     "only integers, floats, strings, bools and (all of one sketch) bytes can",
                     argument="group", value=key)


def _key_type(keys: np.ndarray) -> str:
    """The ``key_type`` of the header: how its list of keys reads back."""
    kind = keys.dtype.kind
    if kind == "O" and keys.size and all(isinstance(key, bytes) for key in keys.tolist()):
        return "bytes"
    return {"b": "bool", "i": "int", "u": "uint", "f": "float", "S": "bytes"}.get(kind,
                                                                                  "object")


def _written_keys(keys: np.ndarray, key_type: str) -> list[Any]:
    if key_type == "bytes":
        return [bytes(key).hex() for key in keys.tolist()]
    return [_plain(key) for key in keys.tolist()]


#: Each ``key_type`` of the header: the JSON values its keys may be, and the first format
#: version that writes it (older readers refuse the blob by its version, not as corrupted).
_KEY_TYPES: dict[str, tuple[str, int]] = {
    "bool": ("a bool", 2),
    "int": ("an integer of int64", 2),
    "float": ("a float other than NaN", 2),
    "object": ("a string, an integer, a float other than NaN or a bool", 2),
    "uint": ("an integer of uint64", 3),
    "bytes": ("lower-case hexadecimal text", 3),
}


def _is_key(value: Any, key_type: str) -> bool:
    """Whether a JSON value of the header is a key of ``key_type`` as `to_bytes` writes it."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    number = integer or (isinstance(value, float) and not math.isnan(value))
    if key_type == "bool":
        return isinstance(value, bool)
    if key_type == "int":
        return integer and -_INT64_MAX - 1 <= value <= _INT64_MAX
    if key_type == "uint":
        return integer and 0 <= value <= _UINT64_MAX
    if key_type == "float":
        return isinstance(value, float) and not math.isnan(value)
    if key_type == "bytes":
        return isinstance(value, str) and _HEX.fullmatch(value) is not None
    return isinstance(value, (str, bool)) or number


_HEX = re.compile("(?:[0-9a-f]{2})*")
#: The JSON types each ``key_type``'s keys may have (`_is_key` says which values).
_JSON_TYPES = {"bool": {bool}, "int": {int}, "uint": {int}, "float": {float}, "bytes": {str},
               "object": {str, int, float, bool}}


def _all_keys(values: list[Any], key_type: str) -> bool:
    """Whether every value is a key of ``key_type``: `_is_key` of each, by whole lists."""
    if not set(map(type, values)) <= _JSON_TYPES[key_type]:
        return False
    if key_type in ("int", "uint") and values:
        low = -_INT64_MAX - 1 if key_type == "int" else 0
        high = _INT64_MAX if key_type == "int" else _UINT64_MAX
        return low <= min(values) and max(values) <= high
    if key_type in ("float", "object"):
        return all(value == value for value in values)  # no NaN
    if key_type == "bytes":
        return all(_HEX.fullmatch(value) is not None for value in values)
    return True


def _keys_of(key_type: Any, values: Any, version: int) -> np.ndarray:
    """The keys of a header, each checked to be of its ``key_type``."""
    if key_type not in _KEY_TYPES or _KEY_TYPES[key_type][1] > version:
        raise _corrupted(f"key_type = {key_type!r} is not a key type of format version "
                         f"{version}")
    if not isinstance(values, list):
        raise _corrupted(f"keys is a {type(values).__name__}, not a list")
    if not _all_keys(values, key_type):
        index = next(i for i, value in enumerate(values) if not _is_key(value, key_type))
        raise _corrupted(f"keys[{index}] = {values[index]!r} is not a group label of "
                         f"key_type {key_type!r} ({_KEY_TYPES[key_type][0]})")
    if key_type == "bytes":
        return np.array([bytes.fromhex(value) for value in values] + [None],
                        dtype=object)[:-1]
    dtype = {"bool": np.bool_, "int": np.int64, "uint": np.uint64, "float": np.float64}
    if key_type in dtype:
        return np.array(values, dtype=dtype[key_type])
    return _compact_keys(np.array(values + [None], dtype=object)[:-1])


def _corrupted(message: str) -> InputError:
    return InputError(f"group sketch is corrupted: {message}", argument="blob")


def _size_field(header: dict[str, Any], name: str, low: int, high: int) -> int:
    value = header[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _corrupted(f"{name} = {value!r} must be an integer between {low} and {high}")
    return value


#: The header's fields, in the order `to_bytes` writes them.
_HEADER_FIELDS = ("width", "order", "n_groups", "n_cells", "key_type", "keys")
#: The header's last field where some group's units are not 1 (version 3).
_UNITS_FIELD = "scale_exponents"


def _parse_header(text: bytes) -> dict[str, Any]:
    """The header's fields, from JSON exactly as `to_bytes` wrote it (no other spelling)."""
    try:
        header = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        raise _corrupted(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _corrupted("its header is not a JSON object")
    if tuple(header) not in (_HEADER_FIELDS, _HEADER_FIELDS + (_UNITS_FIELD,)):
        raise _corrupted(f"its header has the fields {list(header)}, where "
                         f"{list(_HEADER_FIELDS)} (and {_UNITS_FIELD!r}) are written")
    if json.dumps(header, separators=(",", ":")).encode() != text:
        raise _corrupted("its header is not as GroupSketch.to_bytes writes it")
    return header


def _group_named(keys: np.ndarray, index: int) -> str:
    key = keys[index]
    return f"group {key.item() if isinstance(key, np.generic) else key!r}"


def _check_cells(keys: np.ndarray, counts: np.ndarray, n_rows: np.ndarray,
                 sums: np.ndarray, ranges: np.ndarray, centres: np.ndarray,
                 tables: np.ndarray, width: float) -> None:
    """What holds of every group sketch's arrays, to rounding: each group's counts, totals
    and offset range against its own cells, the cells on the grid and in order, and their
    moments within what a cell's width allows (`Sketch.from_bytes` checks the same of one
    group)."""
    n_cells = centres.size

    def first(bad: np.ndarray) -> str:
        return _group_named(keys, int(np.flatnonzero(bad)[0]))

    if (counts < 0).any() or (counts > n_cells).any() or int(counts.sum()) != n_cells:
        raise _corrupted(f"its groups' cell counts do not add up to n_cells = {n_cells}")
    if (n_rows < 1).any():
        raise _corrupted(f"{first(n_rows < 1)} has no rows, where every group has some")
    if (counts > n_rows).any():
        raise _corrupted(f"{first(counts > n_rows)} has more cells than rows")
    if sum(n_rows.tolist()) > _INT64_MAX:
        raise _corrupted("its groups' rows add up to more than 2**63 - 1")
    weight_sum, positives = sums[:, 0], sums[:, 1]
    for name, values in (("weight_sum", weight_sum), ("positives", positives)):
        bad = ~((values >= 0) & (values < math.inf))
        if bad.any():
            raise _corrupted(f"{first(bad)} has {name} = {float(values[bad][0])!r}, which "
                             "must be finite and non-negative")
    if (positives > weight_sum * (1 + 1e-8)).any():
        raise _corrupted(f"{first(positives > weight_sum * (1 + 1e-8))} has positives "
                         "greater than its weight_sum")
    if not (np.isfinite(centres).all() and np.isfinite(tables).all()):
        raise _corrupted("its tables hold a number that is not finite")
    group = np.repeat(np.arange(keys.size), counts)
    same_group = group[1:] == group[:-1]
    if (same_group & ~(centres[1:] > centres[:-1])).any():
        raise _corrupted("a group's cells are not in order")
    on_grid = np.abs(centres) < 2.0 ** 52 * width  # beyond, a row is its own centre
    if not np.all((centres[on_grid] / width - 0.5) % 1 == 0):
        raise _corrupted("a cell's centre is not on the grid")
    weights = tables[:, :, 0]
    if (weights < 0).any():
        raise _corrupted("a cell has a negative weight")
    # Remainders lie within half a cell of the centre: |Σ w d^j| <= (width / 2)^j Σ w. (In
    # blocks of cells whose temporaries stay in cache: 20x faster than the whole at once.)
    bound = (0.5 * width) ** np.arange(tables.shape[2]) * (1 + 1e-9)
    for low in range(0, n_cells, 8192):
        block = tables[low:low + 8192]
        if (np.abs(block) > block[:, :, :1] * bound + 1e-300).any():
            raise _corrupted("a cell's moments exceed what its width allows")
    active = np.zeros((keys.size, 2))
    occupied = np.flatnonzero(counts > 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    with np.errstate(over="ignore", invalid="ignore"):
        if occupied.size:
            active[occupied] = np.add.reduceat(weights, starts[occupied], axis=0)
        # Σ w over every row, Σ w y and Σ w (1 - y) are at least their cells' (the tabled
        # rows'); Σ w (1 - y) is Σ w - Σ w y, to rounding of Σ w.
        agree = ((weight_sum >= active.sum(axis=1) * (1 - 1e-8) - 1e-300)
                 & (positives >= active[:, 1] * (1 - 1e-8) - 1e-300)
                 & (weight_sum - positives >= active[:, 0] - 1e-8 * weight_sum - 1e-300))
    if not agree.all():
        raise _corrupted(f"{first(~agree)} has totals (weight_sum, positives) less than the "
                         "weights of its cells")
    low, high = ranges[:, 0], ranges[:, 1]
    empty = counts == 0
    if not ((low[empty] == math.inf) & (high[empty] == -math.inf)).all():
        bad = empty & ~((low == math.inf) & (high == -math.inf))
        raise _corrupted(f"{first(bad)} has an offset range but no cells")
    if occupied.size:
        lowest = centres[starts[occupied]]
        highest = centres[starts[occupied] + counts[occupied] - 1]
        with np.errstate(invalid="ignore"):
            inside = ((low[occupied] <= high[occupied])
                      & (np.abs(low[occupied] - lowest) <= 0.5 * width)
                      & (np.abs(high[occupied] - highest) <= 0.5 * width))
        if not inside.all():
            index = int(occupied[np.flatnonzero(~inside)[0]])
            raise _corrupted(f"{_group_named(keys, index)} has the offset range "
                             f"[{float(low[index])!r}, {float(high[index])!r}], which does not "
                             "hold its cells")
