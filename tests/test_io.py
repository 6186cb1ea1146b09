"""``logitshift.io``: reading label, offset and weight columns from CSV and Parquet."""

from __future__ import annotations

import bz2
import gzip
import io
import re
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logitshift import InputError
from logitshift.io import iter_batches, read_columns

N = 50


@pytest.fixture(scope="module")
def columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2024)
    return {
        "label": (rng.random(N) < 0.3).astype(np.int64),
        "margin": rng.normal(0.0, 2.0, N),
        "w": rng.uniform(0.0, 5.0, N),
        "flag": rng.random(N) < 0.5,
    }


def _csv_text(columns: dict[str, np.ndarray], extra: bool = True) -> str:
    names = list(columns) + (["note"] if extra else [])
    lines = [",".join(names)]
    for i in range(N):
        cells = []
        for name, values in columns.items():
            value = values[i]
            if values.dtype == bool:
                cells.append("true" if value else "false")
            else:
                cells.append(repr(value.item()))  # shortest round-trip repr
        if extra:
            cells.append("" if i % 3 == 0 else f"text {i}")  # a column no caller asks for
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _parquet_table(columns: dict[str, np.ndarray], extra: bool = True) -> pa.Table:
    data = {name: pa.array(values) for name, values in columns.items()}
    if extra:
        data["note"] = pa.array([None if i % 3 == 0 else f"text {i}" for i in range(N)])
    return pa.table(data)


@pytest.fixture
def csv_path(tmp_path, columns):
    path = tmp_path / "scores.csv"
    path.write_text(_csv_text(columns))
    return path


@pytest.fixture
def gzip_path(tmp_path, columns):
    path = tmp_path / "scores.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(_csv_text(columns))
    return path


@pytest.fixture
def bz2_path(tmp_path, columns):
    path = tmp_path / "scores.csv.bz2"
    with bz2.open(path, "wt") as handle:
        handle.write(_csv_text(columns))
    return path


@pytest.fixture
def parquet_path(tmp_path, columns):
    path = tmp_path / "scores.parquet"
    pq.write_table(_parquet_table(columns), path, row_group_size=12)  # 5 row groups
    return path


FILE_KINDS = ["csv_path", "gzip_path", "bz2_path", "parquet_path"]


def _assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """The same values; every CSV column arrives as float64 (integers may be followed by
    fractions further down a file, booleans by numbers: true and false are 1 and 0)."""
    np.testing.assert_array_equal(actual, expected)
    assert actual.dtype == expected.dtype or (actual.dtype == np.float64
                                              and expected.dtype.kind in "biu")


@pytest.mark.parametrize("kind", FILE_KINDS, ids=["csv", "csv-gzip", "csv-bz2", "parquet"])
def test_read_columns_gives_the_values_written(kind, request, columns):
    path = request.getfixturevalue(kind)
    data = read_columns(path, ["label", "margin", "w", "flag"])
    assert list(data) == ["label", "margin", "w", "flag"]
    for name, values in columns.items():
        _assert_same(data[name], values)


@pytest.mark.parametrize("kind", FILE_KINDS, ids=["csv", "csv-gzip", "csv-bz2", "parquet"])
def test_only_the_requested_columns_are_read(kind, request, columns):
    # "note" holds strings and empty cells: decoding it would fail, so it must be skipped.
    path = request.getfixturevalue(kind)
    data = read_columns(str(path), ["w", "label"])
    assert list(data) == ["w", "label"]
    _assert_same(data["w"], columns["w"])
    _assert_same(data["label"], columns["label"])
    for batch in iter_batches(path, ["margin"], batch_rows=7):
        assert list(batch) == ["margin"]


@pytest.mark.parametrize("batch_rows", [12, 7], ids=["row-groups", "batches"])
def test_parquet_reader_is_asked_for_the_requested_columns_only(parquet_path, monkeypatch,
                                                                batch_rows):
    # Row groups of about a batch are read whole (two decoded at once), others in batches:
    # either way only the columns asked for.
    asked = []
    for method in ("iter_batches", "read_row_group"):
        original = getattr(pq.ParquetFile, method)

        def spy(self, *args, original=original, **kwargs):
            asked.append(kwargs.get("columns"))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetFile, method, spy)
    batches = list(iter_batches(parquet_path, ["margin", "label"], batch_rows=batch_rows))
    assert asked and all(columns == ["margin", "label"] for columns in asked)
    assert sum(len(batch["label"]) for batch in batches) == N


@pytest.mark.parametrize("batch_rows", [1, 5, 7, 12, 13, 1000], ids=lambda b: f"rows-{b}")
def test_parquet_batches_match_one_read(parquet_path, columns, batch_rows):
    names = ["label", "margin", "w", "flag"]
    batches = list(iter_batches(parquet_path, names, batch_rows=batch_rows))
    assert all(list(batch) == names for batch in batches)
    sizes = [len(batch["label"]) for batch in batches]
    assert sum(sizes) == N
    assert max(sizes) <= batch_rows
    if batch_rows < N:
        assert len(batches) >= -(-N // batch_rows)  # at least ceil(N / batch_rows)
    whole = read_columns(parquet_path, names)
    for name in names:
        joined = np.concatenate([batch[name] for batch in batches])
        _assert_same(joined, whole[name])
        _assert_same(joined, columns[name])
        for batch in batches:
            assert len(batch[name]) == len(batch["label"])


def test_csv_batches_match_one_read(csv_path, columns):
    batches = list(iter_batches(csv_path, ["margin", "label"]))
    assert batches
    for name in ("margin", "label"):
        _assert_same(np.concatenate([b[name] for b in batches]), columns[name])


def test_stdin_dash_reads_csv(monkeypatch, columns):
    text = _csv_text(columns)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    data = read_columns("-", ["label", "margin"])
    _assert_same(data["label"], columns["label"])
    _assert_same(data["margin"], columns["margin"])


# -- boolean columns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda p: (p.write_text("clicked,x\ntrue,1\nfalse,2\nTrue,3\n"), p)[1],
                     id="csv"),
        pytest.param(lambda p: pq.write_table(
            pa.table({"clicked": [True, False, True], "x": [1, 2, 3]}),
            p.with_suffix(".parquet")) or p.with_suffix(".parquet"), id="parquet"),
    ],
)
def test_boolean_columns_are_accepted(tmp_path, write):
    path = write(tmp_path / "bools.csv")
    data = read_columns(path, ["clicked"])
    _assert_same(data["clicked"], np.array([True, False, True]))
    # CSV: float64 like every CSV column, so that numbers may follow; Parquet: its own type.
    assert data["clicked"].dtype == (np.float64 if path.suffix == ".csv" else np.bool_)


def test_csv_booleans_in_any_case_mixed_with_numbers(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("y\ntrue\nFALSE\nTrue\n0.25\n1\nfalse\n")
    _assert_same(read_columns(path, ["y"])["y"], np.array([1.0, 0.0, 1.0, 0.25, 1.0, 0.0]))
    path.write_text("y\ntrue\nmaybe\n")
    with pytest.raises(InputError, match="column 'y' row 1 of .*: cannot read 'maybe'"):
        read_columns(path, ["y"])


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FILE_KINDS, ids=["csv", "csv-gzip", "csv-bz2", "parquet"])
def test_missing_column_is_named(kind, request):
    path = request.getfixturevalue(kind)
    with pytest.raises(InputError) as excinfo:
        read_columns(path, ["label", "clicks"])
    error = excinfo.value
    assert "no column 'clicks'" in str(error)
    assert path.name in str(error)
    assert error.argument == "clicks"


def test_missing_column_is_named_for_iter_batches(parquet_path):
    with pytest.raises(InputError, match="no column 'nope'") as excinfo:
        next(iter_batches(parquet_path, ["nope"]))
    assert excinfo.value.argument == "nope"
    # Parquet knows its schema: the message lists what there is.
    assert "'label'" in str(excinfo.value) and "'margin'" in str(excinfo.value)


@pytest.mark.parametrize("cell", ["", "NA", "NaN", "null"], ids=["empty", "NA", "NaN", "null"])
def test_missing_csv_cell_names_column_and_row(tmp_path, cell):
    lines = ["y,offset"] + [f"{i % 2},{0.5 * i}" for i in range(10)]
    lines[1 + 6] = f"0,{cell}"  # data row 6
    path = tmp_path / "holes.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as excinfo:
        read_columns(path, ["y", "offset"])
    error = excinfo.value
    assert f"column 'offset' row 6 of {str(path)!r} is missing" in str(error)
    assert (error.argument, error.index) == ("offset", 6)
    # The other column alone reads fine.
    _assert_same(read_columns(path, ["y"])["y"], np.arange(10) % 2)


@pytest.mark.parametrize(
    ("row", "batch_rows"),
    [
        pytest.param(0, 4, id="first-row"),
        pytest.param(3, 4, id="end-of-first-batch"),
        pytest.param(17, 4, id="fifth-batch"),
        pytest.param(29, 7, id="last-row"),
        pytest.param(22, 1000, id="one-batch"),
    ],
)
def test_missing_parquet_value_names_the_global_row(tmp_path, row, batch_rows):
    n = 30
    weights = [float(i) for i in range(n)]
    weights[row] = None
    path = tmp_path / "holes.parquet"
    table = pa.table({"y": pa.array([i % 2 for i in range(n)]), "w": pa.array(weights)})
    pq.write_table(table, path, row_group_size=6)
    assert pq.ParquetFile(path).num_row_groups == 5

    good_rows = 0
    with pytest.raises(InputError) as excinfo:
        for batch in iter_batches(path, ["y", "w"], batch_rows=batch_rows):
            good_rows += len(batch["w"])
    error = excinfo.value
    assert f"column 'w' row {row} of {str(path)!r} is missing" in str(error)
    assert (error.argument, error.index) == ("w", row)
    assert good_rows <= row  # the batches before the bad one came through
    with pytest.raises(InputError, match=re.escape(f"column 'w' row {row} of {str(path)!r}")):
        read_columns(path, ["w"])


def _string_parquet(path):
    pq.write_table(pa.table({"y": ["0", "1", "1"], "o": [0.1, 0.2, 0.3]}), path)


def _string_csv(path):
    path.write_text("y,o\nyes,0.1\nno,0.2\nno,0.3\n")


@pytest.mark.parametrize(
    ("name", "write"),
    [
        pytest.param("data.csv", _string_csv, id="csv"),
        pytest.param("data.parquet", _string_parquet, id="parquet"),
    ],
)
def test_non_numeric_column_is_rejected(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    with pytest.raises(InputError) as excinfo:
        read_columns(path, ["o", "y"])
    error = excinfo.value
    if name.endswith(".csv"):  # text: the first cell that is not a number is named
        assert str(error) == f"column 'y' row 0 of {str(path)!r}: cannot read 'yes' as a number"
    else:  # a string column, even of digits, is not a numeric one
        assert f"column 'y' of {str(path)!r} must be numeric, got string" in str(error)
    assert error.argument == "y"
    _assert_same(read_columns(path, ["o"])["o"], np.array([0.1, 0.2, 0.3]))


def test_date_column_is_rejected(tmp_path):
    path = tmp_path / "dates.parquet"
    pq.write_table(pa.table({"d": pa.array([0, 1], type=pa.date32())}), path)
    with pytest.raises(InputError, match=re.escape(f"column 'd' of {str(path)!r} must be numeric")
                       ) as excinfo:
        read_columns(path, ["d"])
    assert excinfo.value.argument == "d"


@pytest.mark.parametrize(
    "name",
    ["data.json", "data.xlsx", "data", "data.gz", "data.csv.tar", "scores.feather"],
    ids=["json", "xlsx", "no-suffix", "only-gz", "tar", "feather"],
)
def test_unknown_extension_is_rejected(tmp_path, name):
    path = tmp_path / name
    path.write_text("y\n1\n0\n")
    with pytest.raises(InputError, match="cannot tell the format") as excinfo:
        read_columns(path, ["y"])
    assert name in str(excinfo.value)
    assert excinfo.value.argument == "path"
    with pytest.raises(InputError, match="cannot tell the format"):
        list(iter_batches(str(path), ["y"]))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("DATA.CSV", id="upper"),
        pytest.param("data.txt", id="txt"),
        pytest.param("DATA.CSV.gz", id="upper-csv-gz"),
        pytest.param("data.Csv.GZ", id="upper-gz"),
    ],
)
def test_known_extensions_ignore_case(tmp_path, name):
    path = tmp_path / name
    payload = b"y\n1\n0\n"
    path.write_bytes(gzip.compress(payload) if name.lower().endswith(".gz") else payload)
    _assert_same(read_columns(path, ["y"])["y"], np.array([1, 0]))


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        read_columns(tmp_path / "absent.csv", ["y"])
    with pytest.raises(OSError):
        read_columns(tmp_path / "absent.parquet", ["y"])


def test_corrupt_parquet_is_an_input_error(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match="cannot read"):
        read_columns(path, ["y"])
