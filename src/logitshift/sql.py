"""Fits where the rows lie: a DuckDB query, any DB-API connection, or a warehouse's SQL.

Every estimator's ``_frame`` function takes a DuckDB relation, or :func:`table` (a table,
view or query and the connection that runs it). On a database the sketch is one ``GROUP BY``
query that the engine runs: a billion rows come back as a few thousand sums. DuckDB hands its
rows over as Arrow batches instead, which the kernels sketch as they sketch a file (exact, and
faster there); ``table(..., aggregate=True)`` makes DuckDB sum them too. :func:`query` gives
the query's text for engines you run yourself (BigQuery, Snowflake, Spark SQL, ...), and
:func:`sketch_of_rows` reads its result rows back into a sketch.

>>> import logitshift, logitshift.sql                                  # doctest: +SKIP
>>> logitshift.fit_frame(logitshift.sql.table("SELECT * FROM 'events/*.parquet'"),
...                      label="clicked", offset="score")              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._core.validate import InputError, column_roles
from ._sources.sql import DIALECTS, SqlSource, sketch_query
from ._sources.sql import sketch_of_rows as _sketch_of_rows
from ._summary.group_sketch import GroupSketch
from ._summary.sketch import Sketch

__all__ = ["table", "query", "sketch_of_rows", "DIALECTS"]


def table(source: str, connection: Any = None, dialect: str | None = None, *,
          aggregate: bool | None = None) -> SqlSource:
    """A table, view or query for the estimators' ``_frame`` functions
    (:func:`logitshift.fit_frame`, ``fit_slope_frame``, ``validate_frame``,
    ``fit_groups_frame``).

    Parameters
    ----------
    source : str
        A table or view name, or a query in the connection's dialect (DuckDB reads files
        too: ``"SELECT * FROM 'events/*.parquet'"``, or just ``"'events/*.parquet'"``).
        One statement: text that holds a second one, or closes a parenthesis it did not
        open, is refused before anything runs.
    connection : DuckDB connection or DB-API connection, optional
        What runs the query: by default a new in-memory DuckDB. Any other DB-API
        connection (psycopg, ...) needs its ``dialect``.
    dialect : str, optional
        The connection's SQL dialect, as sqlglot names it (``"postgres"``, ``"duckdb"``,
        ...): the sketch's query is transpiled to it. Implied for DuckDB.
    aggregate : bool, optional
        ``True``: the engine sums the sketch, one ``GROUP BY`` query whose few thousand
        result rows are all that leaves it (any engine; the kernels' log-space paths are
        refused by name, see :mod:`logitshift.sql`). ``False``: the rows stream to
        logitshift as Arrow batches and the kernels fill the sketch, exactly as from a file
        (DuckDB only). Default: ``False`` on DuckDB, ``True`` elsewhere.

    Returns
    -------
    SqlSource
        The handle; nothing runs until an estimator asks for its sketch.
    """
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"source must be a table name or a query (text), got {source!r}",
                         argument="source", value=source)
    duckdb = connection is None or (type(connection).__module__ or "").partition(".")[0] in (
        "duckdb", "_duckdb")
    if dialect is None:
        if not duckdb:
            raise InputError(f"dialect is needed for a {type(connection).__name__} connection: "
                             "the SQL dialect it speaks, e.g. dialect='postgres'",
                             argument="dialect")
        dialect = "duckdb"
    if duckdb and dialect != "duckdb":
        raise InputError(f"dialect = {dialect!r}, but the connection is DuckDB's",
                         argument="dialect", value=dialect)
    if not duckdb and not hasattr(connection, "cursor"):
        raise InputError(f"connection must be a DuckDB or DB-API connection (with cursor()), "
                         f"got {type(connection).__name__}", argument="connection")
    if not isinstance(dialect, str):
        raise InputError(f"dialect must be a name, got {dialect!r}", argument="dialect")
    if aggregate is None:
        aggregate = not duckdb
    if not isinstance(aggregate, bool):
        raise InputError(f"aggregate must be True or False, got {aggregate!r}",
                         argument="aggregate", value=aggregate)
    if not aggregate and not duckdb:
        raise InputError("aggregate=False streams the rows as Arrow batches, which only DuckDB "
                         "hands over; another engine sums the sketch itself (aggregate=True)",
                         argument="aggregate", value=aggregate)
    return SqlSource(source, connection, dialect.lower(), aggregate)


def query(source: str, label: str, offset: str | None = None, weight: str | None = None,
          group: str | None = None, *, dialect: str = "duckdb", offset_is: str = "logit",
          histogram: bool = False, robust: bool = False, weight_exponent: int = 0) -> str:
    """The text of the sketch's query over ``source`` (a table, view or query) in ``dialect``
    (``"duckdb"``, ``"postgres"``, ``"spark"``, ``"bigquery"``, ``"snowflake"``, or any
    dialect sqlglot writes), for an engine you run yourself; read its rows back with
    :func:`sketch_of_rows`.

    ``histogram`` adds the fine histogram (a validation report's c-statistic), ``robust``
    the ``w²`` tables (robust standard errors); neither applies with ``group``. Each weight
    is multiplied by ``2**-weight_exponent``, exactly: where the weights sum beyond
    ``[2**-500, 2**500]``, :func:`sketch_of_rows` refuses the rows and names the exponent
    to query with instead.
    """
    roles, _ = column_roles(label, offset, weight, group=group)
    if group is not None and (histogram or robust):
        raise InputError("a group sketch keeps neither the w² tables nor the histogram",
                         argument="group")
    if isinstance(weight_exponent, bool) or not isinstance(weight_exponent, int):
        raise InputError(f"weight_exponent must be an integer, got {weight_exponent!r}",
                         argument="weight_exponent", value=weight_exponent)
    return sketch_query(source, roles, dialect=dialect, offset_is=offset_is,
                        robust=bool(robust), histogram=bool(histogram),
                        scale_exponent=weight_exponent)


def sketch_of_rows(rows: Sequence[Sequence[Any]], columns: Sequence[str], *,
                   weight_exponent: int = 0) -> Sketch | GroupSketch:
    """The :class:`~logitshift.Sketch` (or, for a query with a group,
    :class:`~logitshift.GroupSketch`) of the result of :func:`query`: ``rows`` as an
    engine's cursor returns them and ``columns`` their names (``cursor.description``'s
    first fields; the query's lower-case names, in any case). ``weight_exponent`` as given
    to :func:`query`.

    Every field is checked as ``Sketch.from_bytes`` checks a blob, and rows the query
    counted as bad (a label outside [0, 1], a NULL, a NaN, a negative weight, an infinite
    offset against its label) are refused by an :class:`~logitshift.InputError` naming
    the column and the number of such rows.
    """
    from ._core.units import weight_exponent as units_of

    sketch = _sketch_of_rows(rows, columns, scale_exponent=weight_exponent)
    if isinstance(sketch, Sketch):
        totals = sketch.totals
        wanted = units_of(totals.weight_sum, (totals.positives, totals.active_positives,
                                              totals.active_negatives), lambda: 2.0 ** 1023)
        if wanted:
            raise InputError(
                f"the weights sum to {totals.weight_sum!r} in units of 2**{weight_exponent}, "
                "beyond [2**-500, 2**500], where the sums lose their precision: run "
                f"query(..., weight_exponent={weight_exponent + wanted}) instead",
                argument="weight_exponent", value=weight_exponent)
    return sketch
