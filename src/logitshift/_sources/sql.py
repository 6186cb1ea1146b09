"""The SQL source: the sketch as one ``GROUP BY`` query, run by the engine where the rows lie.

A sketch's tables are sums grouped by cell: a row of offset ``f`` falls in the cell of centre
``c = (floor(f / width) + 1/2) · width`` with remainder ``d = f - c``, and the cell holds
``Σ w (1 - y) d^j`` and ``Σ w y d^j``. So the whole sketch is one query, grouped by (group,)
cell, that any SQL engine runs over a table, a view or a subquery; a billion rows come back
as a few thousand. The query also classifies every row as the kernels do (a label outside
[0, 1], a NULL, a NaN, a negative weight, an infinite offset against its label), and counts
each kind, so that a bad row is refused by name, never summed. With ``histogram`` it adds
the fine histogram's sub-bins (``UNION ALL``), with ``robust`` the ``w²`` tables.

The query is written once, in DuckDB's dialect, and sqlglot transpiles it to every other
(PostgreSQL, Spark SQL, BigQuery, Snowflake, ...). :func:`sketch_of_rows` reads its result
rows into a :class:`~logitshift.Sketch` or :class:`~logitshift.GroupSketch` through the
summaries' own constructors, which check every field as ``from_bytes`` checks a blob.

Exactness: each cell's moments are the products the numba fill forms (the cell index, the
centre and the remainder to the bit; the powers of ``d`` by multiplication), summed in the
engine's order: equal to the kernels' tables to rounding (about 1e-16 of each sum).

What the kernels do in units of a power of two (weights whose sum leaves ``[2**-500,
2**500]``) is done here too: the query runs again with every weight multiplied by that power
of two, exactly. Per-group fits refuse such a group by name instead.
"""

from __future__ import annotations

import datetime
import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core.units import ldexp, weight_exponent
from .._core.validate import InputError, check_columns, check_offset_is, naming_columns
from .._summary.chunks import (Needs, empty, fill_batches, named_columns, refuse_passes,
                               require_scores)
from .._summary.group_sketch import GroupSketch
from .._summary.sketch import (DEFAULT_MAX_CELLS, DEFAULT_ORDER, DEFAULT_WIDTH,
                               HISTOGRAM_WIDTH, CellBudgetExceeded, Sketch)

__all__ = ["SqlSource", "SqlTable", "sketch_query", "sketch_of_rows", "DIALECTS"]

#: The dialects the query is tested in; any other that sqlglot writes may work too.
DIALECTS = ("duckdb", "postgres", "spark", "bigquery", "snowflake")

#: The row kinds the query counts: rows in a cell, rows of infinite offset that agree with
#: their label (certain: no loss at any shift), rows of no weight, and the histogram's
#: sub-bins.
CELL, CERTAIN, WEIGHTLESS, BIN = 0, 1, 2, 3
#: The kinds of bad row, in the order the query tests them: the role at fault and what is
#: wrong with it.
BAD = {
    10: ("y", "is NULL"),
    11: ("y", "is outside [0, 1] (or NaN)"),
    12: ("weight", "is NULL"),
    13: ("weight", "is negative, infinite or NaN"),
    14: ("offset", "is NULL"),
    15: ("offset", "is NaN"),
    16: ("offset", "is a probability outside [0, 1] (or NaN)"),
    17: ("offset", "is infinite against its label (+inf needs y = 1, -inf needs y = 0)"),
    18: ("group", "is NULL: every row needs a group"),
}
#: Offsets beyond this are their own cell's centre (as in the kernels, where ``+ 1/2``
#: vanishes in the rounding), and are never multiplied by ``1 / width``: an engine that
#: raises on overflow (PostgreSQL) must not see ``1e308 * 16``.
_GRID_LIMIT = 2.0 ** 60
#: The placeholder the transpiled query's source replaces.
_SOURCE = "__logitshift_source__"
#: Result rows fetched at a time.
_FETCH = 8192
_INF = "CAST('inf' AS DOUBLE)"


def _name(column: Any) -> str:
    """A column's name as a quoted identifier of the canonical dialect."""
    import sqlglot.expressions as exp

    return exp.to_identifier(str(column), quoted=True).sql(dialect="duckdb")


def _number(value: float) -> str:
    """A double as a literal that every dialect reads back to the same double."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _as_source(source: str, dialect: str = "duckdb") -> str:
    """A query as it is; a table, a view or DuckDB's ``'files/*.parquet'`` as ``SELECT *``:
    the text that goes between the parentheses of ``(...) AS rows_in``.

    The text is read as ``dialect``'s tokens (strings, quoted names and comments apart), and
    refused where it would not stay between those parentheses: a ``)`` it did not open, or a
    second statement after a ``;``. Either would run whatever follows, on the caller's
    connection (``events) t; DROP TABLE events; SELECT * FROM (events``). Comments before
    the query and ``;`` after it are dropped; a line comment at its end is closed by the
    line break the caller puts before ``)``."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(source)
    except ValueError as exc:  # an unknown dialect
        raise InputError(f"dialect = {dialect!r} is not a dialect sqlglot writes ({exc})",
                         argument="dialect", value=dialect) from None
    except Exception as exc:  # noqa: BLE001 - sqlglot's TokenError: an unclosed string
        raise InputError(f"source {source!r} cannot be read as a query: {exc}",
                         argument="source", value=source) from None
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
    if not tokens:
        raise InputError(f"source {source!r} holds no query", argument="source", value=source)
    depth = 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            raise InputError(f"source {source!r} holds more than one statement: give one "
                             "query (or a table's name)", argument="source", value=source)
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        if depth < 0:
            raise InputError(f"source {source!r} closes a parenthesis it did not open: give "
                             "one query (or a table's name)", argument="source", value=source)
    text = source[tokens[0].start:tokens[-1].end + 1]
    if tokens[0].token_type in (TokenType.SELECT, TokenType.WITH, TokenType.FROM,
                                TokenType.VALUES, TokenType.TABLE, TokenType.L_PAREN):
        return text + "\n"
    return f"SELECT * FROM {text}\n"


def _powers(order: int) -> list[str]:
    """CTEs that add the columns ``d2 .. d{order-1}`` (``d1`` is ``d``), each a product of
    two earlier powers, in layers of doubling: what the kernels form by multiplying."""
    layers, have, previous = [], 1, "ls_terms"
    while have < order - 1:
        new = []
        for power in range(have + 1, min(2 * have, order - 1) + 1):
            low = have if power - have <= have else power // 2
            new.append(f"{_power(low)} * {_power(power - low)} AS d{power}")
        name = f"ls_powers{len(layers) + 1}"
        layers.append(f"{name} AS (SELECT *, {', '.join(new)} FROM {previous})")
        previous, have = name, min(2 * have, order - 1)
    return layers


def _power(j: int) -> str:
    return "d" if j == 1 else f"d{j}"


def _moment(weight: str, j: int) -> str:
    return weight if j == 0 else f"{weight} * {_power(j)}"


def _last_powers(order: int) -> str:
    return f"ls_powers{len(_powers(order))}" if order > 2 else "ls_terms"


def _rows_ctes(roles: Mapping[str, Any], offset_is: str, scale_exponent: int) -> list[str]:
    """The CTEs that read the named columns as doubles and classify every row."""
    offset, weight, group = roles.get("offset"), roles.get("weight"), roles.get("group")
    grouped = group is not None
    columns = [f"CAST({_name(roles['y'])} AS DOUBLE) AS y",
               f"CAST({_name(offset)} AS DOUBLE) AS p" if offset is not None
               else "CAST(0 AS DOUBLE) AS p",
               f"CAST({_name(weight)} AS DOUBLE) AS w" if weight is not None
               else "CAST(1 AS DOUBLE) AS w"]
    if grouped:
        columns.append(f"{_name(group)} AS g")
    if offset_is == "probability":
        score = (f"CASE WHEN p > 0 AND p < 1 THEN LN(p) - LN(1 - p) WHEN p = 0 THEN -{_INF} "
                 f"WHEN p = 1 THEN {_INF} END")
        offset_tests = ["WHEN p IS NULL THEN 14", "WHEN NOT (p >= 0 AND p <= 1) THEN 16"]
    else:
        score = "p"
        offset_tests = ["WHEN p IS NULL THEN 14", f"WHEN NOT (p >= -{_INF} AND p <= {_INF}) "
                                                  "THEN 15"]
    # NaN: an engine either orders it above +inf (DuckDB, PostgreSQL, Spark, Snowflake) or
    # fails every comparison with it (BigQuery); `NOT (x >= -inf AND x <= inf)` holds in both.
    tests = ["WHEN y IS NULL THEN 10", "WHEN NOT (y >= 0 AND y <= 1) THEN 11",
             "WHEN w IS NULL THEN 12", f"WHEN NOT (w >= 0 AND w < {_INF}) THEN 13",
             *offset_tests, *(["WHEN g IS NULL THEN 18"] if grouped else []),
             f"WHEN w = 0 THEN {WEIGHTLESS}", f"WHEN f > -{_INF} AND f < {_INF} THEN {CELL}",
             f"WHEN (f = {_INF} AND y = 1) OR (f = -{_INF} AND y = 0) THEN {CERTAIN}",
             "ELSE 17"]
    # Two factors, each within the doubles' range (2**1074 is not a double); each product
    # is exact, as dividing by a power of two is.
    half = -scale_exponent // 2
    scale = "".join(f" * {_number(ldexp(1.0, power))}"
                    for power in (half, -scale_exponent - half) if power)
    return [
        f"ls_source AS (SELECT {', '.join(columns)} FROM {_SOURCE})",
        f"ls_scored AS (SELECT *, {score} AS f FROM ls_source)",
        f"ls_kinds AS (SELECT y, p, f, w{scale} AS w{', g' if grouped else ''}, "
        f"CASE {' '.join(tests)} END AS kind FROM ls_scored)",
    ]


def sketch_query(source: str, roles: Mapping[str, Any], *, dialect: str = "duckdb",
                 offset_is: str = "logit", robust: bool = False, histogram: bool = False,
                 scale_exponent: int = 0, width: float = DEFAULT_WIDTH,
                 order: int = DEFAULT_ORDER) -> str:
    """The text of the sketch's query over ``source`` (a table, a view, a query) in
    ``dialect``; ``roles`` maps ``y``, ``offset``, ``weight`` and ``group`` to column names
    (the last three may be None). Every weight is multiplied by ``2**-scale_exponent``.

    Result columns: ``kind`` (:data:`CELL`, :data:`CERTAIN`, :data:`WEIGHTLESS`,
    :data:`BIN` or a key of :data:`BAD`), ``grp`` (with a group), ``centre``, ``bin``, ``n``
    (rows), ``w`` (``Σ w``), ``wy`` (``Σ w y``), ``low`` and ``high`` (the offsets'
    range), ``m0_j`` and ``m1_j`` (the label parts' moments), and with ``robust``
    ``s0_j``, ``s1_j``, ``s2_j`` (the ``w²`` moments).
    """
    check_offset_is(offset_is)
    grouped = roles.get("group") is not None
    ctes = _rows_ctes(roles, offset_is, scale_exponent)
    scaled = f"f * {_number(1.0 / width)}"
    centre = (f"CASE WHEN kind = {CELL} THEN CASE WHEN ABS(f) < {_number(_GRID_LIMIT)} "
              f"THEN (FLOOR({scaled}) + {_number(0.5)}) * {_number(width)} ELSE f END END")
    squared = (", w * w * (1 - y) * (1 - y) AS v0, w * w * y * (1 - y) AS v1, "
               "w * w * y * y AS v2") if robust else ""
    ctes.append(f"ls_cells AS (SELECT kind, {'g, ' if grouped else ''}y, f, w, {centre} AS centre "
                "FROM ls_kinds)")
    ctes.append(f"ls_terms AS (SELECT *, w * (1 - y) AS w0, w * y AS w1, f - centre AS d{squared} "
                "FROM ls_cells)")
    ctes += _powers(order)
    key = "g AS grp, " if grouped else ""
    moments = [f"SUM({_moment(f'w{part}', j)}) AS m{part}_{j}"
               for part in (0, 1) for j in range(order)]
    if robust:
        moments += [f"SUM({_moment(f'v{part}', j)}) AS s{part}_{j}"
                    for part in (0, 1, 2) for j in range(order)]
    by = "kind, g, centre" if grouped else "kind, centre"
    main = (f"SELECT kind, {key}centre, CAST(NULL AS DOUBLE) AS bin, COUNT(*) AS n, "
            f"SUM(w) AS w, SUM(w1) AS wy, MIN(f) AS low, MAX(f) AS high, {', '.join(moments)} "
            f"FROM {_last_powers(order)} GROUP BY {by}")
    if histogram:
        bins = int(width / HISTOGRAM_WIDTH)
        sub_bin = (f"CASE WHEN ABS(f) < {_number(_GRID_LIMIT)} THEN FLOOR(({scaled} - "
                   f"FLOOR({scaled})) * {_number(bins)}) ELSE {_number(0.0)} END")
        blanks = ", ".join(f"CAST(NULL AS DOUBLE) AS {name}" for name in
                           [f"m{p}_{j}" for p in (0, 1) for j in range(1, order)]
                           + ([f"s{p}_{j}" for p in (0, 1, 2) for j in range(order)]
                              if robust else []))
        ctes.append(f"ls_bins AS (SELECT {'g, ' if grouped else ''}centre, {sub_bin} AS bin, w0, "
                    f"w1 FROM ls_terms WHERE kind = {CELL})")
        by_bin = "g, centre, bin" if grouped else "centre, bin"
        part = (f"SELECT {BIN} AS kind, {key}centre, bin, COUNT(*) AS n, "
                "CAST(NULL AS DOUBLE) AS w, CAST(NULL AS DOUBLE) AS wy, "
                "CAST(NULL AS DOUBLE) AS low, CAST(NULL AS DOUBLE) AS high, "
                f"SUM(w0) AS m0_0, {', '.join(_reordered(blanks, order, robust))} "
                f"FROM ls_bins GROUP BY {by_bin}")
        main = f"{main} UNION ALL {part}"
    return _transpiled(f"WITH {', '.join(ctes)} {main}", source, dialect)


def _reordered(blanks: str, order: int, robust: bool) -> list[str]:
    """The histogram part's columns after ``m0_0``, in the main part's order: ``m0_1 ..
    m0_{order-1}`` blank, ``SUM(w1) AS m1_0``, the rest blank."""
    items = blanks.split(", ")
    return items[:order - 1] + ["SUM(w1) AS m1_0"] + items[order - 1:]


def example_query(source: str, roles: Mapping[str, Any], kind: int, *, dialect: str,
                  offset_is: str = "logit") -> str:
    """The text of a query for one row of a bad ``kind``: its label, offset, weight."""
    ctes = _rows_ctes(roles, offset_is, 0)
    return _transpiled(f"WITH {', '.join(ctes)} SELECT y, p, w FROM ls_kinds WHERE kind = {kind} "
                       "LIMIT 1", source, dialect)


def _transpiled(text: str, source: str, dialect: str) -> str:
    """The canonical text in ``dialect``, reading from ``source`` (in that dialect already)."""
    try:
        import sqlglot
    except ImportError as exc:
        raise ImportError('logitshift.sql needs sqlglot: pip install "logitshift[sql]"') from exc
    try:
        (written,) = sqlglot.transpile(text, read="duckdb", write=dialect)
    except (ValueError, KeyError) as exc:  # an unknown dialect
        raise InputError(f"dialect = {dialect!r} is not a dialect sqlglot writes ({exc})",
                         argument="dialect", value=dialect) from None
    if written.count(_SOURCE) != 1:  # pragma: no cover - the canonical text names it once
        raise AssertionError("the placeholder of the source did not survive transpiling")
    return written.replace(_SOURCE, f"({_as_source(source, dialect)}) AS rows_in")


# -- reading the result back --------------------------------------------------------------------

@dataclass
class Cells:
    """A sketch query's result, column by column (numbers as float64, the groups as they
    came)."""

    kind: np.ndarray
    n: np.ndarray
    centre: np.ndarray
    bin: np.ndarray
    w: np.ndarray
    wy: np.ndarray
    low: np.ndarray
    high: np.ndarray
    moments: np.ndarray  # (rows, 2, order)
    squared: np.ndarray | None = None  # (rows, 3, order)
    groups: list[Any] | None = None
    order: int = DEFAULT_ORDER
    histogram: bool = field(default=False)

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> Cells:
        names = [str(name).lower() for name in columns]
        missing = [name for name in ("kind", "centre", "n", "w", "wy", "low", "high", "m0_0",
                                     "m1_0") if name not in names]
        if missing:
            raise InputError(f"the rows are not a sketch query's result: no column "
                             f"{missing[0]!r} among {list(columns)}", argument="columns")
        order = sum(1 for name in names if re.fullmatch(r"m0_\d+", name))
        where = {name: i for i, name in enumerate(names)}
        if any(f"m{p}_{j}" not in where for p in (0, 1) for j in range(order)):
            raise InputError("the rows are not a sketch query's result: its moment columns "
                             "m0_j and m1_j do not match", argument="columns")
        rows = list(rows)

        def numbers(name: str) -> np.ndarray:
            i = where[name]
            return np.array([math.nan if row[i] is None else float(row[i]) for row in rows],
                            dtype=np.float64)

        kind = numbers("kind")
        robust = "s0_0" in where
        moments = np.stack([np.stack([numbers(f"m{p}_{j}") for j in range(order)], axis=-1)
                            for p in (0, 1)], axis=1) if rows else np.empty((0, 2, order))
        squared = None
        if robust:
            squared = (np.stack([np.stack([numbers(f"s{p}_{j}") for j in range(order)], axis=-1)
                                 for p in (0, 1, 2)], axis=1) if rows
                       else np.empty((0, 3, order)))
        groups = [row[where["grp"]] for row in rows] if "grp" in where else None
        return cls(kind=kind, n=numbers("n"), centre=numbers("centre"),
                   bin=numbers("bin") if "bin" in where else np.full(len(rows), math.nan),
                   w=numbers("w"), wy=numbers("wy"), low=numbers("low"), high=numbers("high"),
                   moments=moments, squared=squared, groups=groups, order=order,
                   histogram=bool((kind == BIN).any()))

    def bad(self) -> list[tuple[int, int]]:
        """The bad kinds present and each one's count of rows, in the order tested."""
        return [(kind, int(self.n[self.kind == kind].sum())) for kind in sorted(BAD)
                if (self.kind == kind).any()]

    def totals(self, mask: np.ndarray | None = None) -> dict[str, float]:
        """``n_rows``, ``Σ w``, ``Σ w y`` and the offsets' range over the rows of ``mask``."""
        mask = np.ones(self.kind.size, bool) if mask is None else mask
        rows = mask & (self.kind != BIN)
        summed = rows & ((self.kind == CELL) | (self.kind == CERTAIN))
        cells = rows & (self.kind == CELL)
        return {"n_rows": int(self.n[rows].sum()), "weight_sum": float(self.w[summed].sum()),
                "positives": float(self.wy[summed].sum()),
                "offset_min": float(self.low[cells].min()) if cells.any() else math.inf,
                "offset_max": float(self.high[cells].max()) if cells.any() else -math.inf}


def raise_for_bad(cells: Cells, roles: Mapping[str, Any],
                  example: Any = None) -> None:
    """Refuse the first kind of bad row the query counted, naming the column, the number of
    such rows and (where ``example(kind)`` gives one) an example of its values."""
    for kind, count in cells.bad():
        role, problem = BAD[kind]
        column = roles.get(role) if role != "y" else roles["y"]
        what = "label" if role == "y" else role
        rows = "1 row" if count == 1 else f"{count:,} rows"
        message = f"{what} column {column!r} {problem} in {rows}"
        value = None
        if example is not None and "NULL" not in problem:
            value = example(kind, role)
            if value is not None:
                message += f", e.g. {value!r}"
        raise InputError(message, argument=role, value=value)


def sketch_of_rows(rows: Sequence[Sequence[Any]], columns: Sequence[str], *,
                   roles: Mapping[str, Any] | None = None, scale_exponent: int = 0,
                   max_cells: int = DEFAULT_MAX_CELLS, width: float = DEFAULT_WIDTH
                   ) -> Sketch | GroupSketch:
    """The :class:`~logitshift.Sketch` (a :class:`~logitshift.GroupSketch` where the rows
    have a ``grp`` column) of a sketch query's result rows; ``columns`` names their
    columns. Bad rows the query counted are refused, naming the columns of ``roles``."""
    cells = rows if isinstance(rows, Cells) else Cells.of(rows, columns)
    roles = dict(roles or {"y": "y", "offset": "offset", "weight": "weight", "group": "group"})
    raise_for_bad(cells, roles)
    if cells.groups is not None:
        _refuse_nan_groups(cells, roles.get("group"))
        if cells.squared is not None or cells.histogram:
            raise InputError("a group sketch keeps neither the w² tables nor the histogram: "
                             "make the query without robust and histogram", argument="rows")
        return _group_sketch(cells, width, scale_exponent)
    return _sketch(cells, width, scale_exponent, max_cells)


def _sketch(cells: Cells, width: float, scale_exponent: int, max_cells: int) -> Sketch:
    is_cell = cells.kind == CELL
    if int(is_cell.sum()) > max_cells:
        totals = cells.totals()
        raise CellBudgetExceeded(int(is_cell.sum()), max_cells, totals["offset_min"],
                                 totals["offset_max"], width, cells.order)
    order = np.argsort(cells.centre[is_cell], kind="stable")
    centres = cells.centre[is_cell][order]
    tables = cells.moments[is_cell][order]
    squared = None if cells.squared is None else cells.squared[is_cell][order]
    histogram = None
    if cells.histogram:
        bins = _bins(width)
        histogram = np.zeros((centres.size, bins, 2))
        is_bin = cells.kind == BIN
        index = np.searchsorted(centres, cells.centre[is_bin])
        sub = cells.bin[is_bin]
        found = ((index < centres.size) & (sub >= 0) & (sub < bins))
        found[found] = centres[index[found]] == cells.centre[is_bin][found]
        if not found.all():
            raise InputError("sketch is corrupted: a sub-bin of the histogram lies in no cell",
                             argument="rows")
        np.add.at(histogram, (index, sub.astype(np.int64), 0), cells.moments[is_bin, 0, 0])
        np.add.at(histogram, (index, sub.astype(np.int64), 1), cells.moments[is_bin, 1, 0])
    return Sketch._from_cells(centres, tables, **cells.totals(), scale_exponent=scale_exponent,
                              squared=squared, histogram=histogram, width=width,
                              order=cells.order, max_cells=max(max_cells, 1))


def _bins(width: float) -> int:
    return Sketch(width).histogram_bins


def _group_sketch(cells: Cells, width: float, scale_exponent: int) -> GroupSketch:
    from .._summary.group_sketch import _compact_keys, _distinct_keys

    rows = cells.kind != BIN
    labels = _as_datetimes(np.array(list(cells.groups) + [None], dtype=object)[:-1][rows])
    try:
        keys, inverse = _distinct_keys(_compact_keys(labels))
    except TypeError:
        raise InputError("the group column's labels are of more than one type",
                         argument="group") from None
    n_groups = keys.size
    kind, n = cells.kind[rows], cells.n[rows]
    summed = (kind == CELL) | (kind == CERTAIN)
    n_rows = np.zeros(n_groups, dtype=np.int64)
    np.add.at(n_rows, inverse, n.astype(np.int64))
    sums = np.zeros((n_groups, 2))
    np.add.at(sums, inverse[summed], np.column_stack([cells.w[rows][summed],
                                                      cells.wy[rows][summed]]))
    is_cell = kind == CELL
    ranges = np.column_stack([np.full(n_groups, math.inf), np.full(n_groups, -math.inf)])
    np.minimum.at(ranges[:, 0], inverse[is_cell], cells.low[rows][is_cell])
    np.maximum.at(ranges[:, 1], inverse[is_cell], cells.high[rows][is_cell])
    group, centres = inverse[is_cell], cells.centre[rows][is_cell]
    order = np.lexsort((centres, group))
    counts = np.bincount(group, minlength=n_groups)
    _refuse_group_units(keys, sums)
    return GroupSketch._from_cells(keys, counts, n_rows, sums, ranges, centres[order],
                                   cells.moments[rows][is_cell][order], width=width,
                                   order=cells.order)


def _refuse_nan_groups(cells: Cells, column: Any) -> None:
    """Refuse a NaN group label (a float's, or a PostgreSQL numeric's), as the kernels do: an
    engine groups NaNs together, as if they were one label."""
    missing = [index for index, key in enumerate(cells.groups or [])
               if isinstance(key, numbers.Number) and key != key]
    if missing:
        count = int(cells.n[missing].sum())
        rows = "1 row" if count == 1 else f"{count:,} rows"
        raise InputError(f"group column {column!r} is NaN: every row needs a group, in {rows}",
                         argument="group", value=cells.groups[missing[0]])


def _as_datetimes(labels: np.ndarray) -> np.ndarray:
    """Dates and (naive) times as numpy's, which sort, as the kernels hold an Arrow column of
    them; any other labels as they are."""
    values = labels.tolist()
    if not values:
        return labels
    if all(isinstance(value, datetime.datetime) and value.tzinfo is None for value in values):
        return np.array(values, dtype="datetime64[us]")
    if all(type(value) is datetime.date for value in values):
        return np.array(values, dtype="datetime64[D]")
    return labels


def _refuse_group_units(keys: np.ndarray, sums: np.ndarray) -> None:
    """Refuse a group whose weights sum beyond ``[2**-500, 2**500]``: the kernels keep such a
    group in units of its own, which one query over all groups cannot."""
    for index, (weight_sum, positives) in enumerate(sums.tolist()):
        if weight_exponent(weight_sum, (positives, weight_sum - positives), lambda: 1.0):
            raise InputError(
                f"the weights of group {keys[index]!r} sum to {weight_sum!r}, beyond [2**-500, "
                "2**500]: an SQL query keeps every group in one unit, where its sums would "
                "lose their precision; divide every weight by the same power of two (the "
                "shifts do not change)", argument="weight", value=weight_sum)


# -- the engines ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SqlSource:
    """A table, view or query (``source``, in ``dialect``) and the connection that runs it:
    what :func:`logitshift.sql.table` returns, and the ``frame`` the estimators' ``_frame``
    functions take."""

    source: str
    connection: Any = None
    dialect: str = "duckdb"
    #: The engine sums the sketch (one ``GROUP BY``), or (DuckDB) hands its rows over as
    #: Arrow batches to the kernels.
    aggregate: bool = True

    def __repr__(self) -> str:
        return (f"logitshift.sql.table({self.source!r}, dialect={self.dialect!r}, "
                f"aggregate={self.aggregate!r})")


def _is_duckdb(value: Any) -> bool:
    return (type(value).__module__ or "").partition(".")[0] in ("duckdb", "_duckdb")


class _Engine:
    """Runs queries over one source: a DuckDB relation, a DuckDB connection or any DB-API
    connection. Errors the engine raises become :class:`InputError` naming the source."""

    def __init__(self, data: Any) -> None:
        if isinstance(data, SqlSource):
            self.source, self.dialect = data.source, data.dialect
            connection = data.connection
            if connection is None:
                connection = _duckdb().connect()
            self.connection, self.relation = connection, None
            self.aggregate = data.aggregate
        else:  # a DuckDB relation: its rows stream to the kernels
            self.source, self.dialect = _RELATION, "duckdb"
            self.connection, self.relation = None, data
            self.aggregate = False
        self.what = (repr(self.source) if self.relation is None else "the DuckDB relation")

    def run(self, text: str, limit: int | None = None
            ) -> tuple[list[str], Iterator[list[Any]]]:
        """The result's column names and its rows, a batch at a time (a relation's at most
        ``limit + 1``, in one)."""
        try:
            if self.relation is not None or _is_duckdb(self.connection):
                # A relation, fetched whole: DuckDB streams a cursor's result with fewer
                # threads (measured 1.7x slower on 1e7 rows).
                result = (self.relation.query(_RELATION, text) if self.relation is not None
                          else self.connection.sql(text))
                if limit is not None:
                    result = result.limit(limit + 1)
                return list(result.columns), iter([result.fetchall()])
            cursor = self.connection.cursor()
            cursor.execute(text)
            columns = [column[0] for column in cursor.description]
            return columns, _batches(cursor.fetchmany)
        except Exception as exc:  # noqa: BLE001 - every engine has its own error types
            raise self.failed(exc) from None

    def failed(self, exc: Exception) -> InputError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not _is_duckdb(self.connection) and self.connection is not None:
            rollback = getattr(self.connection, "rollback", None)
            if rollback is not None:
                try:
                    rollback()  # leave the caller's connection usable
                except Exception:  # noqa: BLE001
                    pass
        return InputError(f"the query over {self.what} failed on the engine: {detail}",
                          argument="source", value=self.source)

    def batches(self, columns: Sequence[Any], group: Any = None
                ) -> Iterator[tuple[str, Any]]:
        """The named columns of every row, as Arrow record batches (DuckDB only); the
        ``group`` column as it is, the others' big numbers as doubles."""
        def selected(names: str) -> Any:
            if self.relation is not None:
                return self.relation.query(_RELATION, f"SELECT {names} FROM {_RELATION}")
            return self.connection.sql(f"SELECT {names} FROM "
                                       f"({_as_source(self.source, self.dialect)}) AS rows_in")

        try:
            relation = selected(", ".join(_name(column) for column in columns))
            # DECIMAL columns (DuckDB's type of a literal such as 0.5) and 128-bit integers
            # (the type of DuckDB's SUM of integers) are numbers to the query's sums too:
            # they travel as doubles. A group keeps its labels: two 21-digit ids are two.
            relation = selected(", ".join(
                f"CAST({_name(column)} AS DOUBLE) AS {_name(column)}"
                if column != group and str(kind).upper().startswith(_WIDE_NUMBERS)
                else _name(column) for column, kind in zip(columns, relation.types)))
            reader = relation.to_arrow_reader(_ARROW_BATCH_ROWS)
            for batch in reader:
                yield self.what, batch
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - every engine has its own error types
            raise self.failed(exc) from None

    def columns(self) -> list[str]:
        """The source's column names, each as often as it gives it (DuckDB renames the second
        of two names in a subquery, ``y`` and ``y_1``, and would read the first)."""
        try:
            if self.relation is not None:
                return list(self.relation.columns)
            if _is_duckdb(self.connection):
                described = self.connection.sql(
                    f"DESCRIBE ({_as_source(self.source, self.dialect)})").fetchall()
                return [row[0] for row in described]
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - every engine has its own error types
            raise self.failed(exc) from None
        names, _ = self.run(f"SELECT * FROM ({_as_source(self.source, self.dialect)}) "
                            "AS rows_in LIMIT 0")
        return names

    def check_columns(self, columns: Sequence[Any]) -> None:
        """Refuse a column that is not there, or that the source gives twice; on DuckDB,
        which reads names without regard to case, twice in any case."""
        available = self.columns()
        check_columns(columns, available, f"the query {self.what}")
        if self.relation is None and not _is_duckdb(self.connection):
            return
        for name in columns:
            same = [other for other in available if str(other).lower() == str(name).lower()]
            if len(same) > 1:
                raise InputError(
                    f"column {name!r} is ambiguous in the query {self.what}: DuckDB reads "
                    f"names without regard to case, and it has {', '.join(map(repr, same))}; "
                    "rename the columns so that each name is used once",
                    argument=name, value=name)

    def fetch(self, text: str, limit: int | None = None) -> tuple[list[str], list[list[Any]]]:
        """All rows of a query (at most ``limit`` plus a batch, where given)."""
        columns, batches = self.run(text, limit)
        rows: list[Any] = []
        try:
            for batch in batches:
                rows += batch
                if limit is not None and len(rows) > limit:
                    break
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.failed(exc) from None
        return columns, rows


#: The name a DuckDB relation goes by in its query.
_RELATION = "logitshift_relation"
#: DuckDB's types of numbers that Arrow hands over as decimals, which the kernels do not read.
_WIDE_NUMBERS = ("DECIMAL", "HUGEINT", "UHUGEINT")
#: Rows of an Arrow batch that DuckDB hands over: a chunk of the kernels' fill.
_ARROW_BATCH_ROWS = 1 << 20


def _batches(fetchmany: Any) -> Iterator[list[Any]]:
    while True:
        batch = fetchmany(_FETCH)
        if not batch:
            return
        yield list(batch)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise ImportError('logitshift.sql runs on DuckDB by default: pip install '
                          '"logitshift[sql]"') from exc
    return duckdb


class SqlTable:
    """The named columns of a DuckDB relation or of a :class:`SqlSource`, summarised by one
    query that the engine runs (two where the weights' sum is not ordinary)."""

    def __init__(self, data: Any, names: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None) -> None:
        if levels is not None:
            raise InputError("levels does not apply to an SQL source, whose group column holds "
                             "the labels themselves", argument="levels")
        self.engine = _Engine(data)
        self.offset_is = offset_is
        self.roles, self._columns = named_columns(names)

    def summary(self, needs: Needs) -> Sketch | GroupSketch:
        refuse_passes(needs, "an SQL engine")
        require_scores(needs, self.roles.get("offset"), named=True)
        engine = self.engine
        engine.check_columns(self._columns)
        if not engine.aggregate:
            # The rows go through the same kernels as a file's batches: exact, log space too.
            group = self.roles.get("group") if needs.groups else None
            return fill_batches(empty(needs), engine.batches(self._columns, group), self.roles,
                                offset_is=self.offset_is)
        cells = self._cells(needs, 0)
        raise_for_bad(cells, self.roles, self._example)
        exponent = 0
        if not needs.groups:
            totals = cells.totals()
            active = (float(cells.moments[cells.kind == CELL, 0, 0].sum()),
                      float(cells.moments[cells.kind == CELL, 1, 0].sum()))
            exponent = weight_exponent(totals["weight_sum"], (totals["positives"], *active),
                                       self._largest_weight)
            if exponent:
                before = active
                cells = self._cells(needs, exponent)
                after = (float(cells.moments[cells.kind == CELL, 0, 0].sum()),
                         float(cells.moments[cells.kind == CELL, 1, 0].sum()))
                for label, was, now in (("0", before[0], after[0]), ("1", before[1], after[1])):
                    if was > 0 and now == 0:
                        raise InputError(
                            f"weight spans more than the range of doubles: every row labelled "
                            f"{label} weighs less than 2**-1074 of the heaviest, so their total "
                            "vanishes beside it", argument="weight")
        with naming_columns(self.roles):
            return sketch_of_rows(cells, [], roles=self.roles, scale_exponent=exponent)

    def _query(self, needs: Needs, exponent: int) -> str:
        roles = dict(self.roles)
        if not needs.groups:
            roles.pop("group", None)
        return sketch_query(self.engine.source, roles, dialect=self.engine.dialect,
                            offset_is=self.offset_is, robust=needs.robust and not needs.groups,
                            histogram=needs.histogram and not needs.groups,
                            scale_exponent=exponent)

    def _cells(self, needs: Needs, exponent: int) -> Cells:
        limit = None if needs.groups else DEFAULT_MAX_CELLS * (2 + 256 * needs.histogram)
        columns, rows = self.engine.fetch(self._query(needs, exponent), limit)
        cells = Cells.of(rows, columns)
        if limit is not None and len(rows) > limit:
            is_cell = cells.kind == CELL
            raise CellBudgetExceeded(int(is_cell.sum()), DEFAULT_MAX_CELLS,
                                     float(cells.low[is_cell].min()),
                                     float(cells.high[is_cell].max()), DEFAULT_WIDTH,
                                     DEFAULT_ORDER)
        return cells

    def _example(self, kind: int, role: str) -> Any:
        roles = dict(self.roles)
        text = example_query(self.engine.source, roles, kind, dialect=self.engine.dialect,
                             offset_is=self.offset_is)
        _, rows = self.engine.fetch(text)
        if not rows:
            return None
        y, p, w = rows[0]
        return {"y": y, "offset": p, "weight": w}.get(role)

    def _largest_weight(self) -> float:
        weight = self.roles.get("weight")
        if weight is None:
            return 1.0
        _, rows = self.engine.fetch(_transpiled(
            f"SELECT MAX(CAST({_name(weight)} AS DOUBLE)) FROM {_SOURCE}", self.engine.source,
            self.engine.dialect))
        return float(rows[0][0])
