"""Input checks whose messages name the argument, the first bad row and its value.

Every check reads the caller's arrays and never writes to them; conversions make new arrays
only when the input is not already a numeric numpy array.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = [
    "InputError", "as_labels", "as_numeric", "as_offset", "as_weight", "as_nonnegative_float",
    "as_positive_int", "as_shift", "check_infinite_offsets", "check_columns", "column_roles",
    "naming_columns", "prefixing", "rows", "warn", "as_raw_scores", "check_offset_is",
    "OFFSET_KINDS", "as_bool", "check_se_type", "SE_TYPES", "as_array",
]


class InputError(ValueError):
    """Bad input to a logitshift function.

    Attributes
    ----------
    argument : str or None
        The argument at fault (``"y"``, ``"offset"``, ``"weight"``, ...).
    index : int or None
        The first bad row, where the fault is in one row.
    value : object
        The bad value, where there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        argument: str | None = None,
        index: int | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.argument = argument
        self.index = index
        self.value = value


#: The folder of the whole package, its subpackages included.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(sys.modules[__name__.partition(".")[0]].__file__))


def warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """``warnings.warn`` pointed at the first frame outside logitshift: the user's line,
    however deep in the package the warning is raised, and whichever front end led there."""
    frame, level = sys._getframe(1), 2  # level 2 is the frame that called this function
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIR + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def library_of(values: Any) -> str:
    """The top-level package that defines the type of ``values`` ("" for builtins)."""
    module = type(values).__module__ or ""
    return "" if module == "builtins" else module.partition(".")[0]


def _first_missing(values: Any, library: str) -> int | None:
    """The first missing (null) entry of a pandas, polars or pyarrow column, if any."""
    if library == "pandas":
        # A numpy dtype has no missing values but NaN, which the value checks name.
        if isinstance(getattr(values, "dtype", None), np.dtype) or not hasattr(values, "isna"):
            return None
        missing = np.asarray(values.isna(), dtype=bool)
    elif library == "polars" and hasattr(values, "is_null"):
        if not values.null_count():
            return None
        missing = values.is_null().to_numpy()
    elif library == "pyarrow" and hasattr(values, "is_null"):
        if not values.null_count:
            return None
        missing = np.asarray(values.is_null(), dtype=bool)
    else:
        return None
    return _first(missing) if missing.any() else None


def _to_numpy(values: Any, name: str) -> np.ndarray:
    """An ndarray of an array-like: numpy, lists, pandas / polars Series, pyarrow (chunked)
    arrays, CPU torch tensors or anything with ``__array__``. Without copies where the
    source holds a plain numeric buffer; nulls are named, never turned into NaN."""
    library = library_of(values)
    if library == "torch":
        if values.device.type != "cpu":
            raise InputError(f"{name} is a tensor on {values.device}: move it to the CPU "
                             f"first ({name}.cpu())", argument=name)
        values = values.detach()  # reading needs no autograd graph
        if str(values.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            values = values.float()
        return values.numpy()
    missing = _first_missing(values, library)
    if missing is not None:
        raise InputError(f"{name}[{missing}] is missing", argument=name, index=missing)
    if library == "pyarrow" and getattr(values, "num_chunks", 0) == 1:
        values = values.chunk(0)  # a single chunk converts without a copy
    return np.asarray(values)


def as_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a numpy array (itself when it is one; see `_to_numpy`), or an
    :class:`InputError` naming ``name`` where it cannot be read as one.

    A numpy masked array's masked entries are missing values, named by their row as a
    column's nulls are; one without any is read as its data (the kernels take no mask)."""
    if isinstance(values, np.ma.MaskedArray):
        masked = np.ma.getmaskarray(values)
        if masked.any():
            i = _first(masked.reshape(masked.shape[0], -1).any(axis=1) if masked.ndim
                       else masked.ravel())
            raise InputError(f"{name}[{i}] is missing (masked)", argument=name, index=i)
        values = np.ma.getdata(values)
    try:
        return values if isinstance(values, np.ndarray) else _to_numpy(values, name)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} cannot be read as an array: {exc}", argument=name) from exc


def as_numeric(values: Any, name: str, *, one_dimensional: bool = True) -> np.ndarray:
    """Return a numeric ndarray view of ``values`` (no copy when it already is one; masked
    entries refused as `as_array` refuses them)."""
    array = as_array(values, name)
    if array.dtype.kind not in "biuf":
        if array.dtype.kind == "O" and array.size:
            # Show the first entry that is not a plain real number.
            for i, item in enumerate(array.ravel()):
                if not isinstance(item, (numbers.Real, np.bool_)):
                    raise InputError(
                        f"{name} must be numeric; {name}[{i}] = {item!r}",
                        argument=name, index=i, value=item,
                    )
            array = array.astype(np.float64)
        else:
            raise InputError(
                f"{name} must be numeric, got dtype {array.dtype}", argument=name
            )
    if one_dimensional and array.ndim != 1:
        raise InputError(
            f"{name} must be 1-D, got shape {array.shape}"
            + ("; pass a flat array (e.g. .ravel())" if array.ndim == 2 else ""),
            argument=name,
        )
    return array


def _check_no_nan(array: np.ndarray, name: str) -> None:
    if array.dtype.kind == "f":
        nan = np.isnan(array).ravel()
        if nan.any():
            i = _first(nan)
            raise InputError(f"{name}[{i}] is nan", argument=name, index=i, value=float("nan"))


def as_labels(y: Any, name: str = "y", *, one_dimensional: bool = True,
              check_values: bool = True, allow_empty: bool = False) -> np.ndarray:
    """Labels as a numeric array with every value in [0, 1]; non-empty and 1-D by default.

    ``check_values=False`` checks only type and shape, for callers whose kernels check the
    values on their way through the data.
    """
    labels = as_numeric(y, name, one_dimensional=one_dimensional)
    if one_dimensional and labels.size == 0 and not allow_empty:
        raise InputError(f"{name} is empty", argument=name)
    if not check_values:
        return labels
    _check_no_nan(labels, name)
    if labels.dtype.kind != "b":
        outside = ((labels < 0) | (labels > 1)).ravel()
        if outside.any():
            i = _first(outside)
            value = labels.ravel()[i].item()
            raise InputError(
                f"label {name}[{i}] = {value!r} is outside [0, 1]",
                argument=name, index=i, value=value,
            )
    return labels


def rows(count: int) -> str:
    """``"1 row"``, ``"2 rows"``: a count of rows for a message."""
    return f"{count} row" if count == 1 else f"{count} rows"


def _check_length(array: np.ndarray, name: str, n_rows: int) -> None:
    if array.shape[0] != n_rows:
        raise InputError(
            f"{name} has {rows(array.shape[0])}, y has {n_rows}", argument=name
        )


def _check_not_text_or_bool(value: Any, name: str, what: str) -> None:
    """Refuse a string or a bool where a number is meant: ``float("1.0")`` and
    ``float(True)`` would read them as numbers silently."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or (
            isinstance(value, np.ndarray) and value.dtype.kind in "bUSO" and value.ndim == 0):
        raise InputError(f"{name} must be {what}, got {value!r}", argument=name, value=value)


def as_offset(offset: Any, n_rows: int, name: str = "offset", *,
              check_values: bool = True) -> np.ndarray | float:
    """Offsets as a finite float scalar or a 1-D numeric array of ``n_rows`` without NaN.

    Infinite offsets in an array pass here; whether they agree with their labels is
    :func:`check_infinite_offsets`' question.
    """
    if offset is None:
        return 0.0
    if np.ndim(offset) == 0:
        _check_not_text_or_bool(offset, name, "a number")
        value = as_shift(offset, name)  # a number, not NaN
        if np.isinf(value):
            raise InputError(f"{name} = {value} leaves no shift to fit", argument=name,
                             value=value)
        return value
    offsets = as_numeric(offset, name)
    if offsets.dtype.kind == "b":
        raise InputError(f"{name} is boolean: offsets are raw scores (log-odds), not a mask",
                         argument=name)
    _check_length(offsets, name, n_rows)
    if check_values:
        _check_no_nan(offsets, name)
    return offsets


def as_weight(weight: Any, n_rows: int | None, name: str = "weight", *,
              check_values: bool = True) -> np.ndarray | None:
    """Weights as ``None`` or an array of finite, non-negative numbers.

    With ``n_rows`` the array must be 1-D of that length and not zero everywhere; with
    ``None`` any shape passes (per-row functions broadcast it).
    """
    if weight is None:
        return None
    # Not np.ndim: it would convert (or dispatch) an array-like before as_numeric does.
    if n_rows is not None and isinstance(weight, (numbers.Number, str, bytes, np.generic)):
        _check_not_text_or_bool(weight, name, "an array of one weight per row")
        raise InputError(f"{name} = {weight!r} must be an array with one weight per row",
                         argument=name, value=weight)
    weights = as_numeric(weight, name, one_dimensional=n_rows is not None)
    if n_rows is not None:
        _check_length(weights, name, n_rows)
    if not check_values:
        return weights
    _check_no_nan(weights, name)
    bad = (weights < 0) | ~np.isfinite(weights) if weights.dtype.kind == "f" else weights < 0
    bad = np.ravel(bad)
    if bad.any():
        i = _first(bad)
        value = np.ravel(weights)[i].item()
        raise InputError(
            f"{name}[{i}] = {value!r} must be finite and non-negative",
            argument=name, index=i, value=value,
        )
    if n_rows is not None and not weights.any():
        raise InputError(f"{name} is zero on every row", argument=name)
    return weights


OFFSET_KINDS = ("logit", "probability")


def check_offset_is(offset_is: Any) -> str:
    """``offset_is=`` names what the offsets are: ``"logit"`` (raw scores) or
    ``"probability"``."""
    if not isinstance(offset_is, str) or offset_is not in OFFSET_KINDS:
        raise InputError(f"offset_is = {offset_is!r} must be 'logit' or 'probability'",
                         argument="offset_is", value=offset_is)
    return offset_is


def as_raw_scores(offset: Any, offset_is: str, name: str = "offset", *,
                  first_row: int = 0) -> Any:
    """Raw scores from ``offset``: as they are for ``offset_is="logit"`` (and for None); for
    ``"probability"``, probabilities in [0, 1] turned into log-odds (a new float64 array, or
    a float for a scalar; 0 and 1 become ``-inf`` and ``+inf``, which the pass that follows
    checks against the labels). A stream converts each batch, its rows numbered from
    ``first_row`` in messages."""
    if check_offset_is(offset_is) == "logit" or offset is None:
        return offset
    scalar = np.ndim(offset) == 0 and isinstance(offset, (numbers.Real, np.generic))
    if scalar:
        _check_not_text_or_bool(offset, name, "a probability")
        probability = np.array([offset], dtype=np.float64)
    else:
        values = as_numeric(offset, name)
        if values.dtype.kind == "b":
            raise InputError(f"{name} is boolean: probabilities are numbers in [0, 1], not a "
                             "mask", argument=name)
        probability = values.astype(np.float64)
    nan = np.isnan(probability)
    bad = nan | (probability < 0) | (probability > 1)
    if bad.any():
        i = _first(bad)
        where = name if scalar else f"{name}[{i + first_row}]"
        value = float(probability[i])
        raise InputError(f"{where} is nan" if nan[i] else
                         f"probability {where} = {value!r} is outside [0, 1]",
                         argument=name, index=None if scalar else i + first_row, value=value)
    with np.errstate(divide="ignore"):
        scores = np.log(probability) - np.log1p(-probability)
    return float(scores[0]) if scalar else scores


def as_nonnegative_float(value: Any, name: str) -> float:
    """A finite, non-negative scalar option."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a number, got {value!r}", argument=name,
                         value=value) from exc
    if not (np.isfinite(number) and number >= 0):
        raise InputError(f"{name} = {number!r} must be finite and non-negative",
                         argument=name, value=number)
    return number


def as_shift(value: Any, name: str = "shift") -> float:
    """A shift to evaluate at: any float but NaN, ``±inf`` included."""
    try:
        shift = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a number, got {value!r}", argument=name,
                         value=value) from exc
    if math.isnan(shift):
        raise InputError(f"{name} is nan", argument=name, value=shift)
    return shift


def as_positive_int(value: Any, name: str) -> int:
    """A positive integer option (numpy integers too, but not bools or floats)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} = {value!r} must be a positive integer", argument=name,
                         value=value)
    return int(value)


def as_bool(value: Any, name: str) -> bool:
    """A yes-or-no option: a bool (numpy's too), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} = {value!r} must be True or False", argument=name,
                         value=value)
    return bool(value)


#: Standard errors from the observed information (``"model"``) or the sandwich (HC0).
SE_TYPES = ("model", "robust")


def check_se_type(se_type: Any) -> str:
    """``se_type``, checked: ``"model"`` or ``"robust"``."""
    if se_type not in SE_TYPES:
        raise InputError(f"se_type = {se_type!r} must be 'model' or 'robust'",
                         argument="se_type", value=se_type)
    return se_type


def check_infinite_offsets(labels: np.ndarray, offsets: np.ndarray | float,
                           weights: np.ndarray | None) -> None:
    """An offset of ``+inf`` fits only label 1 and ``-inf`` only label 0; any other row of
    positive weight has infinite loss at every shift."""
    if np.ndim(offsets) == 0 or np.isfinite(offsets).all():
        return
    wrong = np.where(offsets > 0, labels < 1, labels > 0) & ~np.isfinite(offsets)
    if weights is not None:
        wrong &= weights > 0
    if wrong.any():
        i = _first(wrong)
        raise InputError(
            f"offset[{i}] = {offsets[i]} with label y[{i}] = {labels[i].item()!r} has "
            "infinite loss at every shift: no shift can fit it",
            argument="offset", index=i, value=float(offsets[i]),
        )


def column_roles(label: Any, offset: Any = None, weight: Any = None, *, group: Any = None
                 ) -> tuple[dict[str, Any], list[Any]]:
    """The columns that fill :func:`logitshift.fit`'s ``y``, ``offset`` and ``weight``, each
    checked to be a name (a string or an integer; ``offset`` and ``weight`` may be None),
    and the distinct columns to read, in that order. With ``group`` (for
    :func:`logitshift.fit_groups`), the roles are ``y``, ``group``, ``offset``, ``weight``."""
    roles = ({"y": label, "offset": offset, "weight": weight} if group is None
             else {"y": label, "group": group, "offset": offset, "weight": weight})
    for role, name in roles.items():
        if name is None and role != "y":
            continue
        if isinstance(name, bool) or not isinstance(name, (str, numbers.Integral)):
            what = "label" if role == "y" else role
            raise InputError(f"{what} must name a column, got {name!r}", argument=what,
                             value=name)
    return roles, [name for name in dict.fromkeys(roles.values()) if name is not None]


def check_columns(columns: Sequence[Any], available: Sequence[Any], where: str) -> None:
    """Raise for the first of ``columns`` that is not in ``available`` (listing those), or
    that ``available`` holds more than once: which of them is meant is not for us to guess."""
    available = list(available)
    for name in columns:
        count = sum(1 for other in available if other == name)
        if not count:
            raise InputError(
                f"no column {name!r} in {where}; it has "
                f"{', '.join(map(repr, dict.fromkeys(available)))}",
                argument=name, value=name,
            )
        if count > 1:
            raise InputError(
                f"column {name!r} appears {count} times in {where}: the name is ambiguous; "
                "rename the columns so that each name is used once",
                argument=name, value=name,
            )


@contextmanager
def prefixing(text: str) -> Iterator[None]:
    """Put ``text`` before the message of any :class:`InputError` raised inside (a file's
    name, a partition's number): ``'a.csv': label y[7] = 2.0 is outside [0, 1]``."""
    try:
        yield
    except InputError as exc:
        raise InputError(f"{text}: {exc}", argument=exc.argument, index=exc.index,
                         value=exc.value) from None


@contextmanager
def naming_columns(roles: Mapping[str, str | None]) -> Iterator[None]:
    """Put the column's name on errors about the arrays it fills.

    ``roles`` maps an argument of :func:`logitshift.fit` (``"y"``, ``"offset"``,
    ``"weight"``) to the column it was read from, so that ``label y[7] = 2.0 is outside
    [0, 1]`` reads ``column 'target': label y[7] = 2.0 is outside [0, 1]``.
    """
    try:
        yield
    except InputError as exc:
        column = roles.get(exc.argument or "")
        if column is None:
            raise
        raise InputError(f"column {column!r}: {exc}", argument=column, index=exc.index,
                         value=exc.value) from None
