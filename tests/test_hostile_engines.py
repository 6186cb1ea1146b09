"""Hostile inputs for the SQL and Spark sources, as a new user would try them.

Every case is either refused by an :class:`~logitshift.InputError` that names the argument
(and the value, where there is one), or answered and checked against the same rows in
memory through ``logitshift.fit`` / ``fit_slope`` / ``validate`` / ``fit_groups``. The roads:
DuckDB streaming its rows to the kernels (the default), DuckDB summing the sketch itself
(``aggregate=True``), a DuckDB relation, a real PostgreSQL server (the fixture of
test_sql.py) and a local Spark (conftest.py)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

import logitshift
import logitshift.sql
from logitshift import InputError

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("sqlglot")

from test_sql import postgres  # noqa: E402,F401  (the throwaway server, reused)

pytestmark = pytest.mark.filterwarnings("ignore")  # separation and one-class warnings

#: The DuckDB roads: the rows streamed to the kernels, summed by DuckDB, a relation.
ROADS = ["stream", "aggregate", "relation"]


def on(road, sql, connection=None):
    """``sql`` as a source on one road."""
    if road == "stream":
        return logitshift.sql.table(sql, connection)
    if road == "aggregate":
        return logitshift.sql.table(sql, connection, aggregate=True)
    return (connection or duckdb.connect()).sql(sql)


def rows_of(sql, connection=None):
    """The query's rows in memory: each column as a list of Python values."""
    relation = (connection or duckdb.connect()).sql(sql)
    values = relation.fetchall()
    return {name: [row[i] for row in values] for i, name in enumerate(relation.columns)}


def numbers(values):
    return np.array([float(value) for value in values], dtype=np.float64)


def same(got, want, tolerance=1e-12):
    """Two numbers agree within ``tolerance`` (relative beyond 1), infinities exactly."""
    if math.isinf(want) or math.isnan(want):
        return got == want or (math.isnan(got) and math.isnan(want))
    return abs(got - want) <= tolerance * max(1.0, abs(want))


def refused(call, arguments, message=None, value=None):
    """``call()`` raises an InputError naming one of ``arguments`` (and ``value``)."""
    with pytest.raises(InputError) as raised:
        call()
    assert raised.value.argument in arguments, (raised.value.argument, str(raised.value))
    if message is not None:
        assert re.search(message, str(raised.value)), str(raised.value)
    if value is not None:
        assert repr(value) in str(raised.value) or raised.value.value == value
    return raised.value


VALUES = "SELECT * FROM (VALUES {}) t(y, f, w)"
#: Roles by what a refusal may name them: the role or the column.
Y, F, W = {"y"}, {"offset", "f"}, {"weight", "w"}


# -- bad rows: refused on every road, and in memory ------------------------------------------

BAD = [
    # id, rows (y, f, w), fit_frame options, arguments named, message, value in the message
    ("null-label", "(NULL, 0.5, 1.0), (1, 0.1, 1.0)", {}, Y, "NULL|missing", None),
    ("nan-label", "('NaN'::DOUBLE, 0.5, 1.0), (1, 0.1, 1.0)", {}, Y, "(?i)nan", None),
    ("label-2", "(2, 0.5, 1.0), (1, 0.1, 1.0)", {}, Y, r"outside \[0, 1\]", None),
    ("label-minus-1", "(-1, 0.5, 1.0), (1, 0.1, 1.0)", {}, Y, r"outside \[0, 1\]", None),
    ("label-inf", "('Infinity'::DOUBLE, 0.5, 1.0), (1, 0.1, 1.0)", {}, Y, r"outside|inf", None),
    ("label-decimal-1.5", "(1.5::DECIMAL(4,2), 0.5, 1.0), (1, 0.1, 1.0)", {}, Y, r"outside",
     None),
    ("null-offset", "(0, NULL, 1.0), (1, 0.1, 1.0)", {}, F, "NULL|missing", None),
    ("nan-offset", "(0, 'NaN'::DOUBLE, 1.0), (1, 0.1, 1.0)", {}, F, "(?i)nan", None),
    ("plus-inf-against-0", "(0, 'Infinity'::DOUBLE, 1.0), (1, 0.1, 1.0)", {}, F, "inf", None),
    ("minus-inf-against-1", "(1, '-Infinity'::DOUBLE, 1.0), (0, 0.1, 1.0)", {}, F, "inf",
     None),
    ("null-weight", "(0, 0.5, NULL), (1, 0.1, 1.0)", {}, W, "NULL|missing", None),
    ("nan-weight", "(0, 0.5, 'NaN'::DOUBLE), (1, 0.1, 1.0)", {}, W, "(?i)nan", None),
    ("negative-weight", "(0, 0.5, -1.0), (1, 0.1, 1.0)", {}, W, "negative", -1.0),
    ("tiny-negative-weight", "(0, 0.5, -5e-324), (1, 0.1, 1.0)", {}, W, "negative", None),
    ("inf-weight", "(0, 0.5, 'Infinity'::DOUBLE), (1, 0.1, 1.0)", {}, W, "inf", None),
    ("zero-weights", "(0, 0.5, 0.0), (1, 0.1, 0.0)", {}, W, "zero on every row", None),
    ("probability-1.5", "(1, 1.5, 1.0), (0, 0.1, 1.0)", {"offset_is": "probability"}, F,
     r"outside \[0, 1\]", 1.5),
    ("probability-negative", "(1, -0.1, 1.0), (0, 0.1, 1.0)", {"offset_is": "probability"},
     F, r"outside \[0, 1\]", -0.1),
    ("probability-nan", "(1, 'NaN'::DOUBLE, 1.0), (0, 0.1, 1.0)",
     {"offset_is": "probability"}, F, "(?i)nan", None),
    ("probability-inf", "(1, 'Infinity'::DOUBLE, 1.0), (0, 0.1, 1.0)",
     {"offset_is": "probability"}, F, r"outside|inf", None),
    ("probability-1-against-0", "(0, 1.0, 1.0), (1, 0.1, 1.0)",
     {"offset_is": "probability"}, F, "inf", None),
    ("probability-0-against-1", "(1, 0.0, 1.0), (0, 0.1, 1.0)",
     {"offset_is": "probability"}, F, "inf", None),
]


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("case, rows, options, arguments, message, value", BAD,
                         ids=[case[0] for case in BAD])
def test_bad_rows_are_refused_by_name(road, case, rows, options, arguments, message, value):
    sql = VALUES.format(rows)
    refused(lambda: logitshift.fit_frame(on(road, sql), "y", "f", "w", **options), arguments,
            message, value)
    memory = rows_of(sql)
    with pytest.raises(InputError):  # the same rows in memory are refused too
        logitshift.fit(np.array(memory["y"], dtype=float),
                       np.array(memory["f"], dtype=float),
                       np.array(memory["w"], dtype=float), **options)


@pytest.mark.parametrize("road", ROADS)
def test_no_rows_are_refused(road):
    sql = "SELECT 1 AS y, 0.5 AS f, 1.0 AS w WHERE FALSE"
    refused(lambda: logitshift.fit_frame(on(road, sql), "y", "f", "w"), Y, "empty")
    refused(lambda: logitshift.validate_frame(on(road, sql), "y", "f"), Y, "empty")


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("kind, column", [
    ("label-not-a-number", "y"), ("offset-date", "f"), ("offset-list", "f"),
    ("weight-struct", "w")])
def test_columns_that_are_not_numbers_are_refused(road, kind, column):
    values = {"y": "0", "f": "0.5", "w": "1.0"}
    values[column] = {"label-not-a-number": "'no'", "offset-date": "DATE '2024-01-01'",
                      "offset-list": "[0.5]", "weight-struct": "{'a': 1.0}"}[kind]
    sql = f"SELECT {values['y']} AS y, {values['f']} AS f, {values['w']} AS w"
    error = refused(lambda: logitshift.fit_frame(on(road, sql), "y", "f", "w"),
                    {column, {"y": "y", "f": "offset", "w": "weight"}[column], "source"})
    # An engine's refusal (a cast it cannot make) names the column in its words.
    assert re.search(rf"\b{column}\b", str(error))


@pytest.mark.parametrize("road", ["stream", "relation"])
def test_text_that_looks_like_numbers_is_not_a_number_when_streamed(road):
    sql = VALUES.format("('1', '0.5', '2'), ('0', '0.1', '3')")
    refused(lambda: logitshift.fit_frame(on(road, sql), "y", "f", "w"), {"y"}, "numeric", "1")


def test_text_that_looks_like_numbers_is_cast_by_the_engine_when_aggregated():
    """The engine's CAST(... AS DOUBLE) reads the text: the numbers it spells."""
    sql = VALUES.format("('1', '0.5', '2'), ('0', '0.1', '3'), ('1', '-0.25', '1.5')")
    got = logitshift.fit_frame(on("aggregate", sql), "y", "f", "w")
    want = logitshift.fit(np.array([1.0, 0, 1]), np.array([0.5, 0.1, -0.25]),
                          np.array([2.0, 3, 1.5]))
    assert same(got.shift, want.shift) and got.weight_sum == 6.5


# -- awkward but valid rows: answered as in memory --------------------------------------------

GOOD = [
    ("boolean-label", "(true, 0.5, 1.0), (false, 0.1, 1.0), (true, -0.3, 2.0)", {}),
    ("decimal-label", "(1::DECIMAL(3,1), 0.5, 1.0), (0::DECIMAL(3,1), 0.1, 1.0), "
                      "(0.5::DECIMAL(3,1), -0.3, 2.0)", {}),
    ("decimal-offset", "(1, 0.5::DECIMAL(10,3), 1.0), (0, 0.125::DECIMAL(10,3), 1.0), "
                       "(1, -0.375::DECIMAL(10,3), 1.0)", {}),
    ("decimal-weight", "(1, 0.5, 2::DECIMAL(38,10)), (0, 0.1, 3::DECIMAL(38,10)), "
                       "(1, -0.3, 0.5::DECIMAL(38,10))", {}),
    ("hugeint-label", "(1::HUGEINT, 0.5, 1.0), (0::HUGEINT, 0.1, 1.0), "
                      "(1::HUGEINT, -0.3, 1.0)", {}),
    ("hugeint-weight", "(1, 0.5, 2::HUGEINT), (0, 0.1, 3::HUGEINT), (1, -0.3, 1::HUGEINT)",
     {}),
    ("ubigint-label", "(1::UBIGINT, 0.5, 1.0), (0::UBIGINT, 0.1, 1.0), "
                      "(1::UBIGINT, -0.3, 1.0)", {}),
    ("tinyint-label", "(1::TINYINT, 0.5, 1.0), (0::TINYINT, 0.1, 1.0), "
                      "(1::TINYINT, -0.3, 1.0)", {}),
    ("float-offset", "(1, 0.5::FLOAT, 1.0), (0, 0.1::FLOAT, 1.0), (1, -0.3::FLOAT, 1.0)", {}),
    ("integer-offset", "(1, 2, 1.0), (0, 1, 1.0), (1, -3, 1.0), (0, 0, 1.0)", {}),
    ("boolean-weight", "(1, 0.5, true), (0, 0.1, false), (1, -0.3, true), (0, 0.2, true)", {}),
    ("fractional-labels", "(0.25, 0.5, 1.0), (0.75, 0.1, 1.0), (1, -0.3, 1.0)", {}),
    ("weights-1e308", "(1, 0.5, 1e308), (0, 0.1, 1e308), (1, 0.3, 1e308), (0, 0.2, 1e308)",
     {}),
    ("weights-5e-324", "(1, 0.5, 5e-324), (0, 0.1, 5e-324), (1, 0.3, 5e-324), "
                       "(0, 0.2, 5e-324)", {}),
    ("some-zero-weights", "(1, 0.5, 0.0), (0, 0.1, 2.0), (1, 0.3, 1.0), (0, 9.0, 0.0)", {}),
    ("offsets-1e300-against-labels", "(0, 1e300, 1.0), (1, -1e300, 1.0), (1, 0.0, 1.0), "
                                     "(0, 0.1, 1.0)", {}),
    ("offsets-1e300-with-labels", "(1, 1e300, 1.0), (0, -1e300, 1.0), (1, 0.0, 1.0), "
                                  "(0, 0.1, 1.0)", {}),
    ("offsets-max-double", "(0, 1.7976931348623157e308, 1.0), "
                           "(1, -1.7976931348623157e308, 1.0), (1, 0.0, 1.0), (0, 0.1, 1.0)",
     {}),
    ("infinite-offsets-with-labels", "(1, 'Infinity'::DOUBLE, 1.0), "
                                     "(0, '-Infinity'::DOUBLE, 2.0), (1, 0.2, 1.0), "
                                     "(0, 0.1, 1.0)", {}),
    ("probabilities-at-0-and-1-with-labels", "(1, 1.0, 1.0), (0, 0.0, 1.0), (1, 0.3, 1.0), "
                                             "(0, 0.6, 1.0)", {"offset_is": "probability"}),
    ("one-row", "(1, 0.5, 1.0)", {}),
    ("all-labels-one", "(1, 0.5, 1.0), (1, -0.1, 2.0)", {}),
    ("all-labels-zero", "(0, 0.5, 1.0), (0, -0.1, 2.0)", {}),
    ("separable-far-apart", "(0, -900.0, 1.0), (0, -899.5, 1.0), (1, 900.0, 1.0), "
                            "(1, 899.0, 1.0)", {}),
]


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("case, rows, options", GOOD, ids=[case[0] for case in GOOD])
def test_awkward_rows_are_fitted_as_in_memory(road, case, rows, options):
    sql = VALUES.format(rows)
    memory = rows_of(sql)
    want = logitshift.fit(numbers(memory["y"]), numbers(memory["f"]), numbers(memory["w"]),
                          **options)
    got = logitshift.fit_frame(on(road, sql), "y", "f", "w", **options)
    assert same(got.shift, want.shift), (got.shift, want.shift)
    assert got.n_rows == want.n_rows and got.status == want.status
    assert same(got.weight_sum, want.weight_sum) and same(got.positives, want.positives)


@pytest.mark.parametrize("road", ROADS)
def test_the_same_column_as_label_and_offset(road):
    sql = VALUES.format("(1, 0.5, 1.0), (0, 0.1, 1.0), (1, -0.3, 1.0)")
    got = logitshift.fit_frame(on(road, sql), "y", "y")
    y = np.array([1.0, 0, 1])
    assert same(got.shift, logitshift.fit(y, y).shift)


# -- groups ----------------------------------------------------------------------------------

GROUPS = "SELECT * FROM (VALUES {}) t(y, f, g)"
GOOD_GROUPS = [
    ("unicode", ["'ü'", "'分'", "'ü'", "'分'", "'🙂'"]),
    ("20-digit-ubigint", ["12345678901234567890::UBIGINT", "12345678901234567891::UBIGINT"] * 2
     + ["18446744073709551615::UBIGINT"]),
    ("21-digit-decimal", ["123456789012345678901::DECIMAL(38,0)",
                          "123456789012345678902::DECIMAL(38,0)"] * 2
     + ["123456789012345678903::DECIMAL(38,0)"]),
    ("hugeint", ["170141183460469231731687303715884105727::HUGEINT", "-1::HUGEINT"] * 2
     + ["0::HUGEINT"]),
    ("boolean", ["true", "false", "true", "false", "true"]),
    ("date", ["DATE '2024-01-01'", "DATE '2024-01-02'"] * 2 + ["DATE '1970-01-01'"]),
    ("text-that-looks-like-numbers", ["'1'", "'01'", "'1'", "'01'", "'1.0'"]),
    ("negative-integers", ["-1", "-2", "-1", "-2", "0"]),
]
GROUP_ROWS = [(0, 0.5), (1, 0.1), (1, 0.3), (0, -0.2), (1, 0.0)]


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("case, labels", GOOD_GROUPS, ids=[case[0] for case in GOOD_GROUPS])
def test_group_labels_of_every_type_keep_their_identity(road, case, labels):
    sql = GROUPS.format(", ".join(f"({y}, {f}, {g})" for (y, f), g in zip(GROUP_ROWS, labels)))
    memory = rows_of(sql)
    distinct = sorted(set(memory["g"]))
    codes = np.array([distinct.index(g) for g in memory["g"]])
    want = logitshift.fit_groups(numbers(memory["y"]), codes, offset=numbers(memory["f"]))
    got = logitshift.fit_groups_frame(on(road, sql), "y", "g", "f")
    # Every distinct label is its own group, exactly (== across int, Decimal, str, date).
    assert len(got.groups) == len(distinct)
    assert sorted(got.groups.tolist()) == distinct
    order = [distinct.index(g) for g in got.groups.tolist()]
    np.testing.assert_allclose(got.shift, want.shift[order], rtol=0, atol=1e-12)


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("case, label, problem", [
    ("null", "NULL", "NULL|missing"), ("nan", "'NaN'::DOUBLE", "(?i)nan")])
def test_a_missing_group_is_refused(road, case, label, problem):
    sql = GROUPS.format(f"(0, 0.5, 1.5), (1, 0.1, {label}), (1, 0.3, 1.5)")
    refused(lambda: logitshift.fit_groups_frame(on(road, sql), "y", "g", "f"), {"g", "group"},
            problem)


def test_a_group_column_of_mixed_types_is_one_type_in_sql():
    """A UNION of an integer and a text label: DuckDB makes the column text."""
    sql = "SELECT 0 AS y, 0.5 AS f, 1 AS g UNION ALL SELECT 1, 0.1, 'a' UNION ALL SELECT 1, 0.2, 1"
    for road in ROADS:
        got = logitshift.fit_groups_frame(on(road, sql), "y", "g", "f")
        assert sorted(got.groups.tolist()) == ["1", "a"]
        want = logitshift.fit_groups(np.array([0.0, 1, 1]), np.array(["1", "a", "1"]),
                                     offset=np.array([0.5, 0.1, 0.2]))
        assert same(got.fit_of("1").shift, want.fit_of("1").shift)


# -- names -----------------------------------------------------------------------------------

NAMES = [("my label", "my offset"), ("a.b", "c.d"), ("it's", 'say "hi"'),
         ("offset", "select"), ("Y", "F"), ("y; DROP TABLE x; --", "f) t; --"),
         ("ü", "分数"), ("`tick`", "[bracket]")]


def _quoted(name):
    return '"' + name.replace('"', '""') + '"'


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("label, offset", NAMES, ids=[repr(names) for names in NAMES])
def test_column_names_of_any_spelling(road, label, offset):
    sql = (f"SELECT * FROM (VALUES (0, 0.5), (1, 0.1), (1, 0.7), (0, -0.2), (1, 0.0)) "
           f"t({_quoted(label)}, {_quoted(offset)})")
    got = logitshift.fit_frame(on(road, sql), label, offset)
    want = logitshift.fit(np.array([0.0, 1, 1, 0, 1]), np.array([0.5, 0.1, 0.7, -0.2, 0.0]))
    assert same(got.shift, want.shift)


@pytest.mark.parametrize("road", ROADS)
def test_a_name_in_another_case_is_not_the_column(road):
    sql = VALUES.format("(0, 0.5, 1.0), (1, 0.1, 1.0)")
    refused(lambda: logitshift.fit_frame(on(road, sql), "Y", "f"), {"Y"}, "no column 'Y'")


@pytest.mark.parametrize("road", ROADS)
def test_two_columns_whose_names_differ_only_in_case_are_ambiguous(road):
    """DuckDB reads names without regard to case: "Y" would read the column y."""
    sql = ('SELECT y, 1 - y AS "Y", f FROM (VALUES (0, 0.5), (1, 0.1), (1, 0.7), (0, -0.2), '
           '(0, 0.9)) t(y, f)')
    for label in ("y", "Y"):
        refused(lambda: logitshift.fit_frame(on(road, sql), label, "f"), {label},
                "ambiguous|no column")


@pytest.mark.parametrize("road", ROADS)
def test_a_name_the_query_gives_twice_is_ambiguous(road):
    sql = ("SELECT y, f, 1 - y AS y FROM (VALUES (0, 0.5), (1, 0.1), (1, 0.7), (0, -0.2), "
           "(0, 0.9)) t(y, f)")
    refused(lambda: logitshift.fit_frame(on(road, sql), "y", "f"), {"y"}, "ambiguous")


@pytest.mark.parametrize("name", [None, 1.5, True, b"y", ["y"]])
def test_a_label_that_is_not_a_name(name):
    refused(lambda: logitshift.fit_frame(on("stream", "SELECT 1 AS y"), name), {"label"})


# -- sources, connections, dialects ------------------------------------------------------------

@pytest.fixture()
def victim():
    connection = duckdb.connect()
    connection.execute("CREATE TABLE events AS SELECT * FROM (VALUES (0, 0.5), (1, 0.1), "
                       "(1, 0.7)) t(y, f)")
    connection.execute("CREATE TABLE victim AS SELECT 1 AS keep")
    yield connection
    connection.close()


INJECTIONS = ["events) t; DROP TABLE victim; SELECT * FROM (events",
              "SELECT * FROM events) t; DROP TABLE victim; SELECT * FROM (SELECT 1 AS y",
              "SELECT * FROM events; DROP TABLE victim",
              "events; DROP TABLE victim"]


@pytest.mark.parametrize("road", ["stream", "aggregate"])
@pytest.mark.parametrize("source", INJECTIONS)
def test_a_source_that_breaks_out_of_its_subquery_runs_nothing(victim, road, source):
    refused(lambda: logitshift.fit_frame(on(road, source, victim), "y", "f"), {"source"})
    assert victim.sql("SELECT keep FROM victim").fetchall() == [(1,)]


@pytest.mark.parametrize("road", ["stream", "aggregate"])
@pytest.mark.parametrize("source", [
    "-- the events\nSELECT * FROM events", "/* the events */ SELECT * FROM events",
    "SELECT * FROM events -- all of them", "SELECT * FROM events;",
    "SELECT * FROM events; -- all", "  events  ", "(SELECT * FROM events)",
    "FROM events", "SELECT * FROM events WHERE ';' <> ')' AND '(' <> ''"])
def test_queries_with_comments_and_semicolons_are_queries(victim, road, source):
    got = logitshift.fit_frame(on(road, source, victim), "y", "f")
    want = logitshift.fit(np.array([0.0, 1, 1]), np.array([0.5, 0.1, 0.7]))
    assert same(got.shift, want.shift)


@pytest.mark.parametrize("road", ["stream", "aggregate"])
@pytest.mark.parametrize("source", ["not a query at all", "SHOW TABLES",
                                    "CREATE TABLE q AS SELECT 1 AS y", "no_such_table",
                                    "SELECT error('boom') AS y, 0.5 AS f",
                                    "SELECT 1 AS y, 0.5 AS f FROM 'no/such/*.parquet'"])
def test_a_source_that_is_not_a_query_or_fails(victim, road, source):
    refused(lambda: logitshift.fit_frame(on(road, source, victim), "y", "f"), {"source"},
            "failed on the engine|not a query|statement", source)
    assert {name for (name,) in victim.sql("SHOW TABLES").fetchall()} == {"events", "victim"}


@pytest.mark.parametrize("source", [None, 3, b"SELECT 1", ["SELECT 1"], "", "   "])
def test_a_source_that_is_not_text(source):
    refused(lambda: logitshift.sql.table(source), {"source"})


def test_a_closed_connection():
    connection = duckdb.connect()
    connection.close()
    for road in ("stream", "aggregate"):
        refused(lambda: logitshift.fit_frame(on(road, "SELECT 1 AS y", connection), "y"),
                {"source"}, "closed")


def test_a_relation_whose_connection_is_closed():
    connection = duckdb.connect()
    relation = connection.sql("SELECT * FROM (VALUES (0, 0.5), (1, 0.1)) t(y, f)")
    connection.close()
    refused(lambda: logitshift.fit_frame(relation, "y", "f"), {"source"}, "closed")


def test_a_relation_of_another_connection_reads_its_own_tables():
    first, second = duckdb.connect(), duckdb.connect()
    first.execute("CREATE TABLE events AS SELECT * FROM (VALUES (0, 0.5), (1, 0.1), (1, 0.7)) "
                  "t(y, f)")
    second.execute("CREATE TABLE events AS SELECT 1 AS y, 9.0 AS f")
    got = logitshift.fit_frame(first.sql("SELECT * FROM events"), "y", "f")
    assert same(got.shift, logitshift.fit(np.array([0.0, 1, 1]),
                                          np.array([0.5, 0.1, 0.7])).shift)
    # A table on one connection, named on another: that one's table, or refused.
    got = logitshift.fit_frame(logitshift.sql.table("events", second), "y", "f")
    assert got.n_rows == 1 and got.shift == math.inf
    refused(lambda: logitshift.fit_frame(logitshift.sql.table("events", duckdb.connect()),
                                         "y", "f"), {"source"}, "failed on the engine")


@pytest.mark.parametrize("arguments, argument", [
    ({"dialect": "postgres"}, "dialect"), ({"dialect": "no such dialect"}, "dialect"),
    ({"dialect": 3}, "dialect"), ({"aggregate": "yes"}, "aggregate"),
    ({"aggregate": 1}, "aggregate"), ({"connection": object()}, "dialect"),
    ({"connection": object(), "dialect": "postgres"}, "connection")])
def test_table_arguments_refused(arguments, argument):
    refused(lambda: logitshift.sql.table("SELECT 1 AS y", **arguments), {argument})


def test_query_text_refuses_what_table_refuses():
    refused(lambda: logitshift.sql.query("t; DROP TABLE victim", "y", "f"), {"source"})
    refused(lambda: logitshift.sql.query("t", "y", "f", dialect="no such dialect"),
            {"dialect"})
    refused(lambda: logitshift.sql.query("t", "y", "f", group="g", robust=True), {"group"})
    refused(lambda: logitshift.sql.query("t", "y", "f", weight_exponent=1.5),
            {"weight_exponent"})


def test_sketch_of_rows_refuses_rows_that_are_not_a_sketch():
    refused(lambda: logitshift.sql.sketch_of_rows([(1, 2)], ["a", "b"]), {"columns"})
    text = logitshift.sql.query("SELECT * FROM (VALUES (0, 0.5), (1, 'NaN'::DOUBLE)) t(y, f)",
                                "y", "f")
    cursor = duckdb.connect().execute(text)
    names = [column[0] for column in cursor.description]
    refused(lambda: logitshift.sql.sketch_of_rows(cursor.fetchall(), names), {"offset"}, "NaN")


# -- all roads on the same rows: DuckDB (three ways), PostgreSQL, Spark -------------------------

N = 2000
#: Column names a warehouse allows and a parser may stumble on.
LABEL, SCORE, WEIGHT, SITE = "clicked?", "offset", "select", "site id"


def _same_rows():
    rng = np.random.default_rng(5)
    score = rng.normal(0.0, 1.5, N)
    site = rng.integers(0, 5, N)
    y = (rng.random(N) < 1 / (1 + np.exp(-(score - 0.4 + 0.3 * site)))).astype(np.int64)
    weight = rng.integers(0, 4, N).astype(np.float64) * 0.5
    ids = np.array([10 ** 19 + 7, 10 ** 19 + 8, 12, 13, 14], dtype=np.uint64)[site]
    return {LABEL: y, SCORE: score, WEIGHT: weight, SITE: ids}


@pytest.fixture(scope="module")
def same_rows():
    return _same_rows()


@pytest.fixture(scope="module")
def on_duckdb(same_rows):
    import pyarrow as pa

    connection = duckdb.connect()
    connection.register("arrow_rows", pa.table(same_rows))
    connection.execute("CREATE TABLE events AS SELECT * FROM arrow_rows")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def on_postgres(postgres, same_rows):  # noqa: F811
    with postgres.cursor() as cursor:
        cursor.execute('CREATE TABLE hostile ("clicked?" integer, "offset" double precision, '
                       '"select" double precision, "site id" numeric(20, 0))')
        with cursor.copy('COPY hostile ("clicked?", "offset", "select", "site id") FROM STDIN'
                         ) as copy:
            for row in zip(*(same_rows[name].tolist() for name in (LABEL, SCORE, WEIGHT,
                                                                   SITE))):
                copy.write_row(row)
        cursor.execute("CREATE TABLE victim (keep integer)")
        cursor.execute("INSERT INTO victim VALUES (1)")
    postgres.commit()
    return postgres


@pytest.fixture(scope="module")
def on_spark(spark, same_rows):
    """The same rows in seven partitions; the sites as their last three digits (Spark has no
    unsigned 64-bit integers)."""
    import pyarrow as pa

    rows = dict(same_rows)
    rows[SITE] = (same_rows[SITE] % 1000).astype(np.int64)
    return spark.createDataFrame(pa.table(rows)).repartition(7)


ENGINE_ROADS = ["stream", "aggregate", "relation", "postgres"]


def _engine_source(road, on_duckdb, request):
    if road == "postgres":
        return logitshift.sql.table("SELECT * FROM hostile", request.getfixturevalue(
            "on_postgres"), "postgres")
    return on(road, "SELECT * FROM events", on_duckdb)


@pytest.mark.parametrize("road", ENGINE_ROADS)
def test_every_estimator_on_every_engine_is_the_one_in_memory(road, on_duckdb, same_rows,
                                                               request):
    source = _engine_source(road, on_duckdb, request)
    y, score, weight = same_rows[LABEL], same_rows[SCORE], same_rows[WEIGHT]
    fit = logitshift.fit_frame(source, LABEL, SCORE, WEIGHT)
    assert same(fit.shift, logitshift.fit(y, score, weight).shift)
    slope = logitshift.fit_slope_frame(source, LABEL, SCORE, WEIGHT)
    want = logitshift.fit_slope(y, score, weight)
    assert same(slope.slope, want.slope) and same(slope.intercept, want.intercept)
    report = logitshift.validate_frame(source, LABEL, SCORE, WEIGHT)
    reference = logitshift.validate(y, score, weight)
    assert same(report.shift.shift, reference.shift.shift)
    assert same(report.slope.slope, reference.slope.slope)
    assert abs(report.c_statistic - reference.c_statistic) <= report.c_statistic_bound + 1e-15
    groups = logitshift.fit_groups_frame(source, LABEL, SITE, SCORE, WEIGHT,
                                         shrinkage="random")
    want_groups = logitshift.fit_groups(y, same_rows[SITE], offset=score, weight=weight,
                                        shrinkage="random")
    # 20-digit ids: each its own group, exactly, on every engine.
    assert [int(g) for g in groups.groups.tolist()] == [int(g) for g in want_groups.groups]
    np.testing.assert_allclose(groups.shift, want_groups.shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(groups.shrunk, want_groups.shrunk, rtol=0, atol=1e-9)
    assert same(groups.tau, want_groups.tau, 1e-9)


def test_spark_is_the_one_in_memory_too(on_spark, same_rows):
    table = on_spark.toArrow()
    y, score, weight, site = (table.column(name).to_numpy()
                              for name in (LABEL, SCORE, WEIGHT, SITE))
    assert on_spark.rdd.getNumPartitions() == 7
    assert same(logitshift.fit_frame(on_spark, LABEL, SCORE, WEIGHT).shift,
                logitshift.fit(y, score, weight).shift)
    slope = logitshift.fit_slope_frame(on_spark, LABEL, SCORE, WEIGHT)
    assert same(slope.slope, logitshift.fit_slope(y, score, weight).slope)
    groups = logitshift.fit_groups_frame(on_spark, LABEL, SITE, SCORE, WEIGHT,
                                         shrinkage="random")
    want = logitshift.fit_groups(y, site, offset=score, weight=weight, shrinkage="random")
    assert groups.groups.tolist() == want.groups.tolist()
    np.testing.assert_allclose(groups.shift, want.shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(groups.shrunk, want.shrunk, rtol=0, atol=1e-9)


# -- PostgreSQL --------------------------------------------------------------------------------

PG_BAD = [
    ("null-label", "SELECT NULL::int AS y, 0.5::float8 AS f", Y, "NULL"),
    ("label-2", "SELECT 2 AS y, 0.5::float8 AS f", Y, r"outside \[0, 1\]"),
    ("nan-offset", "SELECT 1 AS y, 'NaN'::float8 AS f", F, "NaN"),
    ("inf-against-label", "SELECT 0 AS y, 'Infinity'::float8 AS f", F, "infinite"),
    ("label-text", "SELECT 'yes' AS y, 0.5::float8 AS f", {"source"}, "failed on the engine"),
    ("label-boolean", "SELECT true AS y, 0.5::float8 AS f", {"source"}, "failed on the engine"),
    ("offset-1e308-times-nothing", "SELECT 0 AS y, 1e308::float8 AS f", F, None),
]


@pytest.mark.parametrize("case, rows, arguments, message", PG_BAD, ids=[c[0] for c in PG_BAD])
def test_postgres_bad_rows(on_postgres, case, rows, arguments, message):
    source = logitshift.sql.table(f"SELECT 1 AS y, 0.25::float8 AS f UNION ALL {rows}",
                                  on_postgres, "postgres")
    if case == "offset-1e308-times-nothing":  # not bad: a huge offset against its label
        got = logitshift.fit_frame(source, "y", "f")
        assert same(got.shift, logitshift.fit(np.array([1.0, 0]),
                                              np.array([0.25, 1e308])).shift)
        return
    refused(lambda: logitshift.fit_frame(source, "y", "f"), arguments, message)
    # The connection is left usable.
    assert logitshift.fit_frame(logitshift.sql.table("hostile", on_postgres, "postgres"),
                                LABEL, SCORE).n_rows == N


def test_postgres_no_rows_and_nan_group(on_postgres):
    empty = logitshift.sql.table("SELECT * FROM hostile WHERE FALSE", on_postgres, "postgres")
    refused(lambda: logitshift.fit_frame(empty, LABEL, SCORE), {"y", LABEL}, "empty")
    nan_group = logitshift.sql.table(
        "SELECT 1 AS y, 0.5::float8 AS f, 'NaN'::numeric AS g UNION ALL "
        "SELECT 0, 0.1, 2::numeric", on_postgres, "postgres")
    refused(lambda: logitshift.fit_groups_frame(nan_group, "y", "g", "f"), {"g", "group"},
            "(?i)nan")


def test_postgres_refuses_streaming_and_a_wrong_dialect(on_postgres):
    refused(lambda: logitshift.sql.table("hostile", on_postgres, "postgres", aggregate=False),
            {"aggregate"}, "only DuckDB")
    refused(lambda: logitshift.sql.table("hostile", on_postgres), {"dialect"}, "dialect")
    # DuckDB's text on PostgreSQL: refused by the engine (its casts), never a number.
    wrong = logitshift.sql.table("hostile", on_postgres, "duckdb")
    refused(lambda: logitshift.fit_frame(wrong, LABEL, SCORE), {"source", "dialect"})


@pytest.mark.parametrize("source", INJECTIONS)
def test_postgres_injection_runs_nothing(on_postgres, source):
    source = source.replace("events", "hostile")
    refused(lambda: logitshift.fit_frame(logitshift.sql.table(source, on_postgres, "postgres"),
                                         LABEL, SCORE), {"source"})
    with on_postgres.cursor() as cursor:
        cursor.execute("SELECT keep FROM victim")
        assert cursor.fetchall() == [(1,)]


def test_a_closed_postgres_connection(postgres):  # noqa: F811
    import psycopg

    closed = psycopg.connect(**{key: value for key, value in postgres.info.get_parameters(
    ).items() if key in ("host", "port", "user", "dbname")})
    closed.close()
    refused(lambda: logitshift.fit_frame(logitshift.sql.table("hostile", closed, "postgres"),
                                         LABEL, SCORE), {"source"}, "closed")


# -- Spark -----------------------------------------------------------------------------------

def _spark_rows(spark, schema, rows, partitions=2):
    return spark.createDataFrame(rows, schema).repartition(partitions)


@pytest.mark.parametrize("case, schema, rows, arguments, message", [
    ("text-label", "y string, f double", [("1", 0.5), ("0", 0.1)], {"y"}, "numeric"),
    ("date-offset", "y int, f date", [(1, None), (0, None)], {"f"}, "numeric|missing"),
    ("null-label", "y int, f double", [(None, 0.5), (0, 0.1)], {"y"}, "missing"),
    ("null-offset", "y int, f double", [(1, None), (0, 0.1)], {"f"}, "missing"),
    ("nan-offset", "y int, f double", [(1, float("nan")), (0, 0.1)], {"f"}, "nan"),
    ("label-2", "y int, f double", [(2, 0.5), (0, 0.1)], {"y"}, r"outside \[0, 1\]"),
    ("inf-against-label", "y int, f double", [(0, float("inf")), (1, 0.1)], {"f"}, "inf"),
    ("empty", "y int, f double", [], {"y"}, "empty"),
], ids=lambda value: value if isinstance(value, str) and " " not in value else None)
def test_spark_bad_frames(spark, case, schema, rows, arguments, message):
    frame = _spark_rows(spark, schema, rows)
    error = refused(lambda: logitshift.fit_frame(frame, "y", "f"), arguments, message)
    if rows:
        assert str(error).startswith("partition ")


def test_spark_weights_and_groups_refused(spark):
    frame = _spark_rows(spark, "y int, f double, w double, g double",
                        [(1, 0.5, -1.0, 1.0), (0, 0.1, 1.0, float("nan"))])
    refused(lambda: logitshift.fit_frame(frame, "y", "f", "w"), {"w"}, "non-negative")
    refused(lambda: logitshift.fit_groups_frame(frame, "y", "g", "f"), {"g"}, "nan")
    refused(lambda: logitshift.fit_frame(frame.rdd, "y", "f"), {"frame"}, "RDD")
    refused(lambda: logitshift.fit_frame(frame, "y", "no such"), {"no such"}, "no column")


def test_spark_decimal_and_boolean_columns_are_numbers(spark):
    from pyspark.sql import functions as F

    frame = _spark_rows(spark, "y boolean, f double, w double",
                        [(True, 0.5, 2.0), (False, 0.1, 1.0), (True, -0.3, 0.5)])
    frame = frame.select("y", F.col("f").cast("decimal(10,3)").alias("f"),
                         F.col("w").cast("decimal(38,10)").alias("w"))
    got = logitshift.fit_frame(frame, "y", "f", "w")
    want = logitshift.fit(np.array([1.0, 0, 1]), np.array([0.5, 0.1, -0.3]),
                          np.array([2.0, 1, 0.5]))
    assert same(got.shift, want.shift)


def test_spark_empty_partitions_and_many_partitions(spark):
    rows = [(i % 2, (i % 7) / 3 - 1.0, 1.0 + i % 3) for i in range(500)]
    y, f, w = (np.array(column, dtype=float) for column in zip(*rows))
    want = logitshift.fit(y, f, w)
    few = spark.createDataFrame(rows[:3], "y int, f double, w double").repartition(6)
    assert same(logitshift.fit_frame(few, "y", "f", "w").shift,
                logitshift.fit(y[:3], f[:3], w[:3]).shift)  # at least three empty partitions
    many = spark.createDataFrame(rows, "y int, f double, w double").repartition(64)
    assert many.rdd.getNumPartitions() == 64
    assert same(logitshift.fit_frame(many, "y", "f", "w").shift, want.shift)
    # A filter that empties all but one partition.
    kept = many.where("f > 0.9")
    keep = f > 0.9
    assert same(logitshift.fit_frame(kept, "y", "f", "w").shift,
                logitshift.fit(y[keep], f[keep], w[keep]).shift)


def test_spark_names_of_any_spelling(spark):
    import pyarrow as pa

    y, f = np.array([0, 1, 1, 0, 1]), np.array([0.5, 0.1, 0.7, -0.2, 0.0])
    want = logitshift.fit(y, f).shift
    for label, offset in [("a.b", "c.d"), ("my label", "`tick`"), ("offset", "select"),
                          ("ü", "分数")]:
        frame = spark.createDataFrame(pa.table({label: y, offset: f}))
        assert same(logitshift.fit_frame(frame, label, offset).shift, want), (label, offset)


def test_spark_20_digit_decimal_groups_are_refused_by_name(spark):
    """Spark holds a 20-digit id as a decimal (a long stops at 19 digits), which a sketch
    cannot carry between processes: refused by name, not as Spark's traceback."""
    from pyspark.sql import functions as F

    frame = spark.createDataFrame(
        [(0, 0.5, "12345678901234567890"), (1, 0.1, "12345678901234567891")],
        "y int, f double, g string").repartition(1).select(
        "y", "f", F.col("g").cast("decimal(20,0)").alias("g"))
    error = refused(lambda: logitshift.fit_groups_frame(frame, "y", "g", "f"), {"g", "group"},
                    "cannot be written")
    assert str(error).startswith("partition 0: column 'g': ") and "1234567890123456789" in str(
        error)
    # As text, the same ids are groups, each its own.
    text = frame.select("y", "f", F.col("g").cast("string").alias("g"))
    got = logitshift.fit_groups_frame(text, "y", "g", "f")
    assert got.groups.tolist() == ["12345678901234567890", "12345678901234567891"]
    assert got.shift.tolist() == [-math.inf, math.inf]


# -- the command line --------------------------------------------------------------------------

def _cli(capsys, *arguments):
    from logitshift.cli import main

    status = main(list(arguments))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("query, message", [
    ("SELECT 2 AS y, 0.5 AS f", r"outside \[0, 1\]"),
    ("SELECT 1 AS y, 'NaN'::DOUBLE AS f", "(?i)nan"),
    ("SELECT 1 AS y, 0.5 AS f WHERE FALSE", "empty"),
    ("SELECT * FROM no_such_table", "failed on the engine"),
    ("not a query", "failed on the engine|not a query"),
    ("SELECT 1 AS y, 0.5 AS f; SELECT 2", "statement"),
    ("SELECT 1 AS y) t; SELECT (1", r"parenthes|statement"),
    ("SELECT 'no' AS y, 0.5 AS f", r"\by\b"),
    ("SELECT 1 AS y, 0.5 AS g", "no column 'f'"),
    ("", "source|name the input"),
])
@pytest.mark.parametrize("command", ["fit", "validate"])
def test_cli_sql_errors_are_one_line(capsys, command, query, message):
    status, out, err = _cli(capsys, command, "--sql", query, "--label", "y", "--offset", "f")
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_cli_sql_group_errors_are_one_line(capsys):
    status, _, err = _cli(capsys, "fit", "--sql",
                          "SELECT 1 AS y, 0.5 AS f, NULL AS g UNION ALL SELECT 0, 0.1, 'a'",
                          "--label", "y", "--offset", "f", "--group", "g")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "every row needs a group" in err


def test_cli_sql_answers_with_awkward_names(capsys):
    query = ('SELECT * FROM (VALUES (0, 0.5, 1.0), (1, 0.1, 2.0), (1, 0.7, 1.0), (0, -0.2, '
             '1.0)) t("my label", "offset", "select")')
    status, out, err = _cli(capsys, "fit", "--sql", query, "--label", "my label", "--offset",
                            "offset", "--weight", "select", "--json")
    assert status == 0 and err == ""
    want = logitshift.fit(np.array([0.0, 1, 1, 0]), np.array([0.5, 0.1, 0.7, -0.2]),
                          np.array([1.0, 2, 1, 1]))
    assert same(json.loads(out)["shift"], want.shift)


def test_cli_sql_in_a_fresh_process_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "logitshift.cli", "fit", "--sql",
                           "SELECT 1 AS y) t; DROP TABLE x; SELECT (1", "--label", "y"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
