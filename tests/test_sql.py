"""SQL engines as a source: DuckDB (a relation, a connection, a Parquet file it queries), a
real PostgreSQL server, and the query's text for warehouses. Every estimator gives what it
gives on the same rows in memory; every bad row is refused by name."""

import math
import re
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift.sql
from logitshift import InputError

duckdb = pytest.importorskip("duckdb")
sqlglot = pytest.importorskip("sqlglot")

N = 5000


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(7)
    offset = rng.normal(0.0, 1.5, N)
    group = rng.integers(0, 6, N)
    y = (rng.random(N) < 1 / (1 + np.exp(-(offset - 0.4 + 0.3 * group)))).astype(np.int64)
    return pd.DataFrame({
        "y": y, "f": offset, "w": rng.integers(1, 5, N).astype(np.float64) * 0.75,
        "p": 1 / (1 + np.exp(-offset)), "g": group,
        "site": np.array(["north", "south", "east", "west", "up", "down"])[group],
    })


@pytest.fixture(scope="module")
def connection(frame):
    con = duckdb.connect()
    con.register("events_frame", frame)
    con.execute("CREATE TABLE events AS SELECT * FROM events_frame")
    yield con
    con.close()


def _table(*args, **kwargs):
    """:func:`logitshift.sql.table` summed by the engine (one GROUP BY), the path these tests
    hold to the kernels; DuckDB's default streams the rows instead (tests at the end)."""
    return logitshift.sql.table(*args, aggregate=True, **kwargs)


def _sources(connection):
    return {
        "relation": connection.sql("SELECT * FROM events"),
        "table": _table("events", connection),
        "query": _table("SELECT y, f, w, p, g, site FROM events WHERE TRUE",
                                      connection),
    }


SOURCE_KINDS = ["relation", "table", "query"]


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("weight", [None, "w"])
def test_fit_equals_memory(connection, frame, kind, weight):
    source = _sources(connection)[kind]
    got = logitshift.fit_frame(source, "y", "f", weight)
    want = logitshift.fit_frame(frame, "y", "f", weight)
    assert got.shift == pytest.approx(want.shift, abs=1e-12)
    assert got.se == pytest.approx(want.se, rel=1e-12)
    assert got.loss == pytest.approx(want.loss, rel=1e-12)
    assert got.n_rows == N


def test_sketch_equals_the_kernels(connection, frame):
    """The tables the query sums are the numba fill's, to rounding, cell by cell."""
    from logitshift._sources.sql import SqlTable
    from logitshift._summary.chunks import Needs

    source = SqlTable(_table("events", connection),
                      {"y": "y", "offset": "f", "weight": "w"})
    got = source.summary(Needs(robust=True, histogram=True))
    want = logitshift.Sketch(robust=True, histogram=True).update(frame.y, frame.f, frame.w)
    np.testing.assert_array_equal(got._centres, want._centres)
    scale = want._tables[:, :, :1] * (2.0 ** -5) ** np.arange(8)  # |d| <= 1/32
    assert np.all(np.abs(got._tables - want._tables) <= 1e-14 * scale + 1e-300)
    np.testing.assert_allclose(got._squared, want._squared, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(got._histogram, want._histogram, rtol=1e-14)
    assert got.n_rows == want.n_rows and got.totals.offset_min == want.totals.offset_min


def test_fit_without_offset_and_robust(connection, frame):
    source = _sources(connection)["table"]
    got = logitshift.fit_frame(source, "y", weight="w")
    want = logitshift.fit_frame(frame, "y", weight="w")
    assert got.shift == pytest.approx(want.shift, abs=1e-12)
    robust = logitshift.fit_frame(source, "y", "f", "w", se_type="robust")
    reference = logitshift.fit_frame(frame, "y", "f", "w", se_type="robust")
    assert robust.se == pytest.approx(reference.se, rel=1e-10)


def test_probabilities(connection, frame):
    got = logitshift.fit_frame(_sources(connection)["table"], "y", "p", offset_is="probability")
    want = logitshift.fit_frame(frame, "y", "p", offset_is="probability")
    assert got.shift == pytest.approx(want.shift, abs=1e-12)


@pytest.mark.parametrize("weight", [None, "w"])
def test_slope_and_validate(connection, frame, weight):
    source = _sources(connection)["relation"]
    got = logitshift.fit_slope_frame(source, "y", "f", weight)
    want = logitshift.fit_slope_frame(frame, "y", "f", weight)
    assert got.slope == pytest.approx(want.slope, abs=1e-12)
    assert got.intercept == pytest.approx(want.intercept, abs=1e-12)
    report = logitshift.validate_frame(source, "y", "f", weight)
    reference = logitshift.validate_frame(frame, "y", "f", weight)
    assert report.shift.shift == pytest.approx(reference.shift.shift, abs=1e-12)
    assert report.slope.slope == pytest.approx(reference.slope.slope, abs=1e-12)
    # The streamed c-statistic carries its bound (pairs sharing a sub-bin).
    assert abs(report.c_statistic - reference.c_statistic) <= report.c_statistic_bound + 1e-15


@pytest.mark.parametrize("group", ["g", "site"])
@pytest.mark.parametrize("shrinkage", [None, "random"])
def test_groups(connection, frame, group, shrinkage):
    got = logitshift.fit_groups_frame(_sources(connection)["query"], "y", group, "f", "w",
                                      shrinkage=shrinkage)
    want = logitshift.fit_groups_frame(frame, "y", group, "f", "w", shrinkage=shrinkage)
    assert got.groups.tolist() == want.groups.tolist()
    tolerance = 1e-9 if shrinkage else 1e-12
    np.testing.assert_allclose(got.shift, want.shift, rtol=0, atol=tolerance)
    if shrinkage:
        np.testing.assert_allclose(got.shrunk, want.shrunk, rtol=0, atol=tolerance)
        assert got.tau == pytest.approx(want.tau, abs=tolerance)


def test_parquet_file_by_duckdb(tmp_path, frame):
    pq.write_table(pa.Table.from_pandas(frame[["y", "f", "w", "site"]]), tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pandas(frame[["y", "f", "w", "site"]].iloc[:1000]),
                   tmp_path / "b.parquet")
    source = _table(f"SELECT * FROM '{tmp_path}/*.parquet'")
    got = logitshift.fit_frame(source, "y", "f", "w")
    want = logitshift.fit_file(sorted(tmp_path.glob("*.parquet")), "y", "f", "w")
    assert got.shift == pytest.approx(want.shift, abs=1e-12)
    assert got.n_rows == N + 1000
    # A file's name alone, as DuckDB reads it, is a source too.
    alone = logitshift.fit_frame(_table(f"'{tmp_path}/a.parquet'"), "y", "f", "w")
    assert alone.shift == pytest.approx(logitshift.fit_frame(frame, "y", "f", "w").shift,
                                        abs=1e-12)


# -- bad rows, each refused by name ------------------------------------------------------------

BAD_ROWS = [
    ("label", "SELECT 2.0 AS y, 0.5 AS f, 1.0 AS w", "y", r"label column 'y' is outside \[0, 1\].*1 row, e.g. 2.0"),
    ("label nan", "SELECT 'nan'::DOUBLE AS y, 0.5 AS f, 1.0 AS w", "y", "label column 'y' is outside"),
    ("label null", "SELECT NULL::DOUBLE AS y, 0.5 AS f, 1.0 AS w", "y", "label column 'y' is NULL in 1 row"),
    ("offset null", "SELECT 1.0 AS y, NULL::DOUBLE AS f, 1.0 AS w", "offset", "offset column 'f' is NULL"),
    ("offset nan", "SELECT 1.0 AS y, 'nan'::DOUBLE AS f, 1.0 AS w", "offset", "offset column 'f' is NaN"),
    ("negative weight", "SELECT 1.0 AS y, 0.5 AS f, -2.0 AS w", "weight", "weight column 'w' is negative.*e.g. -2.0"),
    ("infinite weight", "SELECT 1.0 AS y, 0.5 AS f, 'inf'::DOUBLE AS w", "weight", "weight column 'w' is negative, infinite"),
    ("null weight", "SELECT 1.0 AS y, 0.5 AS f, NULL::DOUBLE AS w", "weight", "weight column 'w' is NULL"),
    ("+inf against 0", "SELECT 0.0 AS y, 'inf'::DOUBLE AS f, 1.0 AS w", "offset", "infinite against its label.*e.g. inf"),
    ("-inf against 1", "SELECT 1.0 AS y, '-inf'::DOUBLE AS f, 1.0 AS w", "offset", "infinite against its label"),
]


@pytest.mark.parametrize("case,row,argument,message", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_refused(case, row, argument, message):
    good = "SELECT 1.0 AS y, 0.25 AS f, 1.0 AS w UNION ALL SELECT 0.0, -0.5, 2.0"
    source = _table(f"{good} UNION ALL {row} UNION ALL {good}")
    with pytest.raises(InputError, match=message) as caught:
        logitshift.fit_frame(source, "y", "f", "w")
    assert caught.value.argument == argument
    # The same rows in memory are refused too: the query never sums a row the kernels refuse.
    rows = duckdb.sql(f"{good} UNION ALL {row}").df()
    with pytest.raises(InputError):
        logitshift.fit_frame(rows, "y", "f", "w")


def test_certain_rows_and_zero_weights_are_summed_as_in_memory():
    rows = ("SELECT * FROM (VALUES (1.0, 'inf'::DOUBLE, 2.0), (0.0, '-inf'::DOUBLE, 1.0), "
            "(1.0, 0.3, 1.0), (0.0, 0.1, 1.0), (1.0, -0.2, 0.0), (0.0, 1.5, 3.0), "
            "(1.0, 'inf'::DOUBLE, 0.0)) AS t(y, f, w)")
    got = logitshift.fit_frame(_table(rows), "y", "f", "w")
    want = logitshift.fit_frame(duckdb.sql(rows).df(), "y", "f", "w")
    assert got.shift == pytest.approx(want.shift, abs=1e-12)
    assert (got.n_rows, got.weight_sum, got.positives) == (want.n_rows, want.weight_sum,
                                                           want.positives)


def test_group_null_and_probability_out_of_range():
    rows = "SELECT * FROM (VALUES (1.0, 0.3, 'a'), (0.0, 0.1, NULL)) AS t(y, f, g)"
    with pytest.raises(InputError, match="group column 'g' is NULL: every row needs a group"):
        logitshift.fit_groups_frame(_table(rows), "y", "g", "f")
    rows = "SELECT * FROM (VALUES (1.0, 0.3), (0.0, 1.5)) AS t(y, p)"
    with pytest.raises(InputError, match=r"probability outside \[0, 1\].*e.g. 1.5"):
        logitshift.fit_frame(_table(rows), "y", "p", offset_is="probability")


def test_missing_column_and_engine_error_and_newton(connection):
    with pytest.raises(InputError, match="no column 'score'.*'y'"):
        logitshift.fit_frame(_sources(connection)["table"], "y", "score")
    with pytest.raises(InputError, match="failed on the engine"):
        logitshift.fit_frame(_table("no_such_table", connection), "y", "f")
    with pytest.raises(InputError, match="method = 'newton'"):
        logitshift.fit_frame(_sources(connection)["table"], "y", "f", method="newton")
    with pytest.raises(InputError, match="dialect is needed"):
        _table("events", object())


# -- what the kernels do in units of a power of two, or in logarithms ----------------------------

@pytest.mark.parametrize("scale", [2.0 ** -700, 2.0 ** 700, 1e300, 5e-324])
def test_extreme_weights_in_units(frame, scale):
    """Weights whose sum leaves [2**-500, 2**500]: the query runs again in units of a power
    of two, exactly, as the kernels' pass does."""
    small = frame.iloc[:500].copy()
    small["w"] = scale
    connection = duckdb.connect()
    connection.register("rows", small)
    got = logitshift.fit_frame(_table("rows", connection), "y", "f", "w")
    want = logitshift.fit_frame(small, "y", "f", "w")
    assert got.shift == pytest.approx(want.shift, abs=1e-12)
    assert got.weight_sum == pytest.approx(want.weight_sum, rel=1e-14)


def test_weights_beyond_a_common_unit_refused():
    rows = ("SELECT * FROM (VALUES (1.0, 0.3, 1e300), (0.0, 0.1, 5e-324), (0.0, 0.2, 5e-324))"
            " AS t(y, f, w)")
    with pytest.raises(InputError, match="every row labelled 0 weighs less than 2\\*\\*-1074"):
        logitshift.fit_frame(_table(rows), "y", "f", "w")


def test_group_weights_beyond_the_ordinary_refused():
    rows = ("SELECT * FROM (VALUES (1.0, 0.3, 1e-200, 'a'), (0.0, 0.1, 1e-200, 'a'), "
            "(0.0, 0.1, 1.0, 'b')) AS t(y, f, w, g)")
    with pytest.raises(InputError, match="group 'a' sum to .* beyond \\[2\\*\\*-500"):
        logitshift.fit_groups_frame(_table(rows), "y", "g", "f", "w")


def test_separable_with_a_huge_gap_as_a_stream(tmp_path):
    """Separable rows far apart: σ underflows, and the sketch's log parts take over, from the
    tables the query summed as from the kernels'."""
    y = np.array([0] * 50 + [1] * 50)
    f = np.concatenate([np.linspace(-900, -850, 50), np.linspace(850, 900, 50)])
    table = pa.table({"y": y, "f": f})
    pq.write_table(table, tmp_path / "s.parquet")
    got = logitshift.fit_frame(_table(f"'{tmp_path}/s.parquet'"), "y", "f")
    want = logitshift.fit_file(tmp_path / "s.parquet", "y", "f")
    memory = logitshift.fit(y, f)
    assert got.shift == want.shift or got.shift == pytest.approx(want.shift, abs=1e-12)
    assert got.shift == pytest.approx(memory.shift, abs=1e-9)
    assert got.status == want.status


def test_cell_budget(tmp_path):
    rows = "SELECT (i % 2)::DOUBLE AS y, i * 1.0 AS f FROM range(70000) t(i)"
    with pytest.raises(InputError, match="max_cells"):
        logitshift.fit_frame(_table(rows), "y", "f")


# -- the rows read back, and a result that is not a sketch's ---------------------------------

def test_query_text_and_rows_read_back(connection, frame):
    text = logitshift.sql.query("events", "y", "f", "w", histogram=True, robust=True)
    cursor = connection.execute(text)
    columns = [column[0] for column in cursor.description]
    sketch = logitshift.sql.sketch_of_rows(cursor.fetchall(), columns)
    want = logitshift.Sketch(robust=True, histogram=True).update(frame.y, frame.f, frame.w)
    assert sketch.solve().shift == pytest.approx(want.solve().shift, abs=1e-12)
    text = logitshift.sql.query("events", "y", "f", group="site")
    cursor = connection.execute(text)
    columns = [column[0] for column in cursor.description]
    groups = logitshift.sql.sketch_of_rows(cursor.fetchall(), columns)
    assert isinstance(groups, logitshift.GroupSketch)
    want = logitshift.fit_groups_frame(frame, "y", "site", "f")
    np.testing.assert_allclose(groups.solve().shift, want.shift, rtol=0, atol=1e-12)


def test_corrupted_rows_refused(connection):
    text = logitshift.sql.query("events", "y", "f")
    cursor = connection.execute(text)
    columns = [column[0] for column in cursor.description]
    rows = [list(row) for row in cursor.fetchall()]
    m1 = columns.index("m1_1")
    cell = next(i for i, row in enumerate(rows) if row[0] == 0 and row[columns.index("m1_0")])
    rows[cell][m1] = 1e6  # a moment no cell of width 1/16 can hold
    with pytest.raises(InputError, match="sketch is corrupted: a cell's moments exceed"):
        logitshift.sql.sketch_of_rows(rows, columns)
    rows[cell][m1] = 0.0
    rows[cell][columns.index("w")] = -5.0
    with pytest.raises(InputError, match="sketch is corrupted"):
        logitshift.sql.sketch_of_rows(rows, columns)
    with pytest.raises(InputError, match="not a sketch query's result"):
        logitshift.sql.sketch_of_rows(rows, ["a"] * len(columns))


def test_sketch_of_rows_names_the_units():
    text = logitshift.sql.query("t", "y", "f", "w")
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1.0, 0.3, 1e-200), "
                "(0.0, 0.1, 1e-200)) AS v(y, f, w)")
    cursor = con.execute(text)
    columns = [column[0] for column in cursor.description]
    with pytest.raises(InputError, match="weight_exponent=-663"):
        logitshift.sql.sketch_of_rows(cursor.fetchall(), columns)
    cursor = con.execute(logitshift.sql.query("t", "y", "f", "w", weight_exponent=-663))
    sketch = logitshift.sql.sketch_of_rows(cursor.fetchall(), columns, weight_exponent=-663)
    want = logitshift.fit([1.0, 0.0], [0.3, 0.1], [1e-200, 1e-200])
    assert sketch.solve().shift == pytest.approx(want.shift, abs=1e-12)


@pytest.mark.parametrize("dialect", ["bigquery", "snowflake", "spark", "postgres", "duckdb"])
@pytest.mark.parametrize("group", [None, "site"])
def test_query_text_parses_back(dialect, group):
    text = logitshift.sql.query("project.events", "y", "f", "w", group=group, dialect=dialect,
                                histogram=group is None)
    parsed = sqlglot.parse_one(text, read=dialect)
    names = parsed.named_selects
    assert names[:2] == (["kind", "grp"] if group else ["kind", "centre"])
    assert "m1_7" in names
    # The canonical query, transpiled back to DuckDB, is the same query.
    assert sqlglot.transpile(text, read=dialect, write="duckdb")[0].count("GROUP BY") == (
        1 if group else 2)


# -- a real PostgreSQL server ------------------------------------------------------------------

def _postgres_bin():
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port, stopped at the end; run as
    the ``postgres`` user where the tests run as root (PostgreSQL refuses root)."""
    psycopg = pytest.importorskip("psycopg")
    folder = _postgres_bin()
    if folder is None:
        pytest.skip("PostgreSQL is not installed (no initdb): apt-get install postgresql")
    as_user = []
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no 'postgres' user to run PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
    home = tempfile.mkdtemp(prefix="logitshift-pg-")
    if as_user:
        shutil.chown(home, "postgres")
    data = os.path.join(home, "data")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(as_user + [str(folder / "initdb"), "-D", data, "-A", "trust", "-U",
                              "postgres", "--no-sync"], check=True, capture_output=True)
    options = f"-h 127.0.0.1 -p {port} -k {home} -F"
    subprocess.run(as_user + [str(folder / "pg_ctl"), "-D", data, "-o", options, "-l",
                              os.path.join(home, "log"), "-w", "start"], check=True,
                   capture_output=True)
    try:
        connection = None
        for _ in range(50):
            try:
                connection = psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                                             dbname="postgres")
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        assert connection is not None, "PostgreSQL did not accept connections"
        yield connection
        connection.close()
    finally:
        subprocess.run(as_user + [str(folder / "pg_ctl"), "-D", data, "-m", "immediate",
                                  "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_events(postgres, frame):
    with postgres.cursor() as cursor:
        cursor.execute("CREATE TABLE events (y integer, f double precision, w double precision,"
                       " g bigint, site text)")
        with cursor.copy("COPY events (y, f, w, g, site) FROM STDIN") as copy:
            for row in frame[["y", "f", "w", "g", "site"]].itertuples(index=False):
                copy.write_row((int(row.y), float(row.f), float(row.w), int(row.g), row.site))
    postgres.commit()
    return postgres


def test_postgres_gives_the_same_sketch(postgres_events, frame, connection):
    from logitshift._sources.sql import SqlTable
    from logitshift._summary.chunks import Needs

    names = {"y": "y", "offset": "f", "weight": "w"}
    on_postgres = SqlTable(_table("events", postgres_events, "postgres"), names)
    on_duckdb = SqlTable(_table("events", connection), names)
    needs = Needs(robust=True, histogram=True)
    got, want = on_postgres.summary(needs), on_duckdb.summary(needs)
    np.testing.assert_array_equal(got._centres, want._centres)
    np.testing.assert_allclose(got._tables, want._tables, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got._histogram, want._histogram, rtol=1e-12)
    source = _table("SELECT * FROM events", postgres_events, dialect="postgres")
    assert logitshift.fit_frame(source, "y", "f", "w").shift == pytest.approx(
        logitshift.fit_frame(frame, "y", "f", "w").shift, abs=1e-12)
    groups = logitshift.fit_groups_frame(source, "y", "site", "f", "w")
    reference = logitshift.fit_groups_frame(frame, "y", "site", "f", "w")
    assert groups.groups.tolist() == reference.groups.tolist()
    np.testing.assert_allclose(groups.shift, reference.shift, rtol=0, atol=1e-12)
    report = logitshift.validate_frame(source, "y", "f", "w")
    assert report.slope.slope == pytest.approx(
        logitshift.validate_frame(frame, "y", "f", "w").slope.slope, abs=1e-12)


def test_postgres_bad_rows_and_errors(postgres_events):
    source = _table("SELECT y, f, w FROM events UNION ALL SELECT 3, 0.5, 1.0",
                                  postgres_events, "postgres")
    with pytest.raises(InputError, match=r"label column 'y' is outside \[0, 1\].*e.g. 3.0"):
        logitshift.fit_frame(source, "y", "f", "w")
    source = _table("SELECT y, f, w FROM events UNION ALL "
                                  "SELECT 1, 'NaN'::float8, 1.0", postgres_events, "postgres")
    with pytest.raises(InputError, match="offset column 'f' is NaN"):
        logitshift.fit_frame(source, "y", "f", "w")
    with pytest.raises(InputError, match="failed on the engine"):
        logitshift.fit_frame(_table("missing", postgres_events, "postgres"),
                             "y", "f")
    # The connection is left usable.
    assert logitshift.fit_frame(_table("events", postgres_events, "postgres"),
                                "y", "f").n_rows == N


# -- the command line -----------------------------------------------------------------------------

def test_cli_sql(tmp_path, frame, capsys):
    from logitshift.cli import main

    pq.write_table(pa.Table.from_pandas(frame[["y", "f", "w", "site"]]), tmp_path / "e.parquet")
    query = f"SELECT * FROM '{tmp_path}/e.parquet' WHERE f > -3"
    assert main(["fit", "--sql", query, "--label", "y", "--offset", "f", "--weight", "w",
                 "--json"]) == 0
    import json

    got = json.loads(capsys.readouterr().out)
    kept = frame[frame.f > -3]
    assert got["shift"] == pytest.approx(logitshift.fit_frame(kept, "y", "f", "w").shift,
                                         abs=1e-12)
    assert main(["validate", "--sql", query, "--label", "y", "--offset", "f", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["slope"] == pytest.approx(
        logitshift.validate_frame(kept, "y", "f").slope.slope, abs=1e-12)
    assert main(["fit", "--sql", query, "--label", "y", "--offset", "f", "--group", "site",
                 "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    want = logitshift.fit_groups_frame(kept, "y", "site", "f")
    np.testing.assert_allclose(groups["shift"], want.shift, rtol=0, atol=1e-12)


@pytest.mark.parametrize("arguments,message", [
    (["--sql", "SELECT 2 AS y, 0.5 AS f"], r"column 'y': label y\[0\] = 2 is outside \[0, 1\]"),
    (["--sql", "SELECT * FROM missing_table"], "failed on the engine"),
    (["a.csv", "--sql", "SELECT 1 AS y"], "give PATHs or --sql, not both"),
    ([], "name the input"),
])
def test_cli_sql_errors(arguments, message, capsys):
    from logitshift.cli import main

    assert main(["fit", *arguments, "--label", "y", "--offset", "f"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err)


# -- DuckDB hands its rows over: the kernels fill the sketch -----------------------------------

def test_duckdb_streams_its_rows_to_the_kernels_by_default(connection, tmp_path):
    rows = connection.sql("SELECT y, f, w, g FROM events").fetchnumpy()
    expected = logitshift.fit(rows["y"], rows["f"], rows["w"])
    for source in (connection.sql("SELECT * FROM events"),
                   logitshift.sql.table("events", connection)):
        assert logitshift.fit_frame(source, "y", "f", "w").shift == pytest.approx(
            expected.shift, rel=1e-13, abs=1e-15)
    groups = logitshift.fit_groups_frame(logitshift.sql.table("events", connection), "y",
                                         "g", "f")
    reference = logitshift.fit_groups(rows["y"], rows["g"], offset=rows["f"])
    np.testing.assert_allclose(groups.shift, reference.shift, rtol=1e-12)
    with pytest.raises(InputError, match="only DuckDB"):
        logitshift.sql.table("events", _DBAPI(), "postgres", aggregate=False)


def test_streamed_rows_keep_the_kernels_log_space_and_name_bad_rows():
    gap = "SELECT * FROM (VALUES (0, -900.0), (0, -899.5), (1, 900.0), (1, 899.0)) t(y, f)"
    got = logitshift.fit_frame(logitshift.sql.table(gap), "y", "f")
    want = logitshift.fit(np.array([0, 0, 1, 1]), np.array([-900.0, -899.5, 900.0, 899.0]))
    assert got.shift == want.shift and got.status == want.status
    bad = "SELECT * FROM (VALUES (0, 0.5), (1, 'NaN'::DOUBLE), (1, 0.1)) t(y, f)"
    with pytest.raises(InputError, match=r"the DuckDB relation|offset\[1\] is nan"):
        logitshift.fit_frame(duckdb.sql(bad), "y", "f")


class _DBAPI:
    def cursor(self):  # pragma: no cover - never called: refused before
        raise AssertionError


def test_cli_sql_without_duckdb_says_which_extra(monkeypatch, capsys):
    import importlib.util

    from logitshift.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "duckdb" else real(name, *args))
    assert main(["fit", "--sql", "SELECT 1 AS y, 0.5 AS f", "--label", "y",
                 "--offset", "f"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['logitshift: error: --sql runs on DuckDB: pip install "logitshift[sql]"']
