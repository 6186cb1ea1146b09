"""Plain values that strict JSON accepts: one rule for every result's ``to_dict`` and the
command line's ``--json``."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """``value`` with every float that JSON cannot hold as a string: ``inf``, ``-inf`` and
    ``nan`` become ``"inf"``, ``"-inf"`` and ``"nan"`` (Python's ``float()`` reads them
    back), never the bare ``Infinity`` / ``NaN`` that ``json.dumps`` writes by default and
    strict parsers refuse. numpy scalars become Python numbers, arrays and tuples lists,
    mappings dicts (their keys strings), recursively; dates and times their ISO text, and
    any other value (a group key of bytes, say) its ``str``. A new object: the input is left
    as it is.
    ``json.dumps(json_safe(value), allow_nan=False)`` then succeeds for every result's
    ``to_dict()``."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_safe(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)  # a group key of another kind (bytes, a decimal): as Python prints it
