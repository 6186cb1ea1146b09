"""The hostile battery: odd inputs a new user tried, each refused with an InputError (or exit
status 2 and one line on stderr) that names the argument, the row or file, and the value, or
answered rightly, checked against a reference (the rows in memory, mpmath, or an invariance
that is exact in floating point)."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import math
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import mpmath as mp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift.cli
import reference
from logitshift import InputError, Sketch
from logitshift._estimators.result import normal_quantile
from logitshift._estimators.shift import fit_curve
from logitshift._estimators.solve import ArrayCurve, Terms


# -- Tables, files and the command line ----------------------------------------------------

LABELS = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=np.float64)
OFFSETS = np.array([0.3, -1.2, 0.8, 0.1, 2.0, -0.4, 1.1, -0.2, 0.5, 0.0])


def _reference(labels=LABELS, offsets=OFFSETS) -> float:
    """The shift of the same rows as arrays in memory, by the exact solver."""
    return logitshift.fit(labels, offsets, method="newton").shift


def _csv_bytes(header: str = "y,f", labels=LABELS, offsets=OFFSETS) -> bytes:
    rows = "".join(f"{y:g},{f!r}\n" for y, f in zip(labels.tolist(), offsets.tolist()))
    return (header + "\n" + rows).encode()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _duplicate_table() -> pa.Table:
    return pa.Table.from_arrays([pa.array(LABELS), pa.array(OFFSETS), pa.array(-OFFSETS)],
                                names=["y", "f", "f"])


# -- fit_frame --------------------------------------------------------------------------------


def _pandas_duplicate():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(np.column_stack([LABELS, OFFSETS, -OFFSETS]), columns=["y", "f", "f"])


def _pandas_duplicate_label():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(np.column_stack([LABELS, LABELS, OFFSETS]), columns=["y", "y", "f"])


def _polars_lazy():
    pl = pytest.importorskip("polars")
    return pl.LazyFrame({"y": LABELS, "f": OFFSETS})


def _structured(fields=("y", "f")):
    array = np.zeros(LABELS.size, dtype=[(name, np.float64) for name in fields])
    array[fields[0]], array[fields[1]] = LABELS, OFFSETS
    return array


def _dask_duplicate():
    pytest.importorskip("dask.dataframe")
    import dask.dataframe as dd

    return dd.from_pandas(_pandas_duplicate(), npartitions=2)


FRAME_REFUSED = [
    pytest.param(_pandas_duplicate, "f", "column 'f' appears 2 times in the frame",
                 id="pandas-duplicate-offset"),
    pytest.param(_pandas_duplicate_label, "y", "column 'y' appears 2 times in the frame",
                 id="pandas-duplicate-label"),
    pytest.param(_duplicate_table, "f", "column 'f' appears 2 times in the frame",
                 id="arrow-table-duplicate"),
    pytest.param(lambda: _duplicate_table().to_batches()[0], "f",
                 "column 'f' appears 2 times in the frame", id="arrow-batch-duplicate"),
    pytest.param(_dask_duplicate, "f", "column 'f' appears 2 times in the frame",
                 id="dask-duplicate"),
    pytest.param(lambda: {"y": LABELS}, "f", "no column 'f' in the frame; it has 'y'",
                 id="mapping-missing"),
    pytest.param(lambda: _structured(("y", "g")), "f",
                 "no column 'f' in the frame; it has 'y', 'g'", id="structured-missing-field"),
    pytest.param(lambda: np.column_stack([LABELS, OFFSETS]), "frame",
                 "frame is a numpy array of dtype float64, without named fields",
                 id="plain-2d-array"),
    pytest.param(lambda: None, "frame", "frame must be a table", id="none"),
    pytest.param(lambda: [LABELS, OFFSETS], "frame", "got list", id="list"),
    pytest.param(lambda: 3.0, "frame", "got float", id="scalar"),
]


@pytest.mark.parametrize(("make", "argument", "message"), FRAME_REFUSED)
def test_fit_frame_refuses(make, argument, message):
    frame = make()
    with pytest.raises(InputError) as excinfo:
        logitshift.fit_frame(frame, "y", "f")
    assert message in str(excinfo.value)
    assert excinfo.value.argument == argument


@pytest.mark.parametrize("make", [
    pytest.param(_structured, id="numpy-structured"),
    pytest.param(_polars_lazy, id="polars-lazy"),
    pytest.param(lambda: _duplicate_table().remove_column(2), id="arrow-without-duplicate"),
])
def test_fit_frame_reads_by_name(make):
    assert logitshift.fit_frame(make(), "y", "f").shift == pytest.approx(_reference(),
                                                                          rel=1e-13)


def test_a_duplicate_that_is_not_asked_for_does_not_matter():
    table = _duplicate_table().append_column("z", pa.array(OFFSETS)).rename_columns(
        ["y", "g", "g", "f"])
    assert logitshift.fit_frame(table, "y", "f").shift == pytest.approx(_reference(), rel=1e-13)


# -- fit_file ---------------------------------------------------------------------------------


def _truncated_gzip(path):
    data = gzip.compress(_csv_bytes() * 2000)
    path.write_bytes(data[: len(data) // 2])


def _flipped_gzip(path):
    data = bytearray(gzip.compress(_csv_bytes()))
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncated_bz2(path):
    data = bz2.compress(_csv_bytes() * 2000)
    path.write_bytes(data[: len(data) // 2])


FILE_REFUSED = [
    pytest.param("dup.parquet", lambda p: pq.write_table(_duplicate_table(), p), "f",
                 "column 'f' appears 2 times in", id="parquet-duplicate"),
    pytest.param("dup.csv", lambda p: p.write_text("y,f,f\n0,1,2\n1,2,3\n"), "f",
                 "column 'f' appears 2 times in", id="csv-duplicate"),
    pytest.param("dup.csv", lambda p: p.write_text("y,y,f\n0,1,0.5\n1,0,0.2\n"), "y",
                 "column 'y' appears 2 times in", id="csv-duplicate-label"),
    pytest.param("cols.csv", lambda p: p.write_text("label,score\n0,1\n"), "y",
                 "no column 'y' in", id="csv-missing-lists-columns"),
    pytest.param("cut.csv.gz", _truncated_gzip, "path", "gzip stream is corrupt or truncated",
                 id="gzip-truncated"),
    pytest.param("flip.csv.gz", _flipped_gzip, "path", "gzip stream is corrupt or truncated",
                 id="gzip-bit-flip"),
    pytest.param("cut.csv.bz2", _truncated_bz2, "path", "bz2 stream is corrupt or truncated",
                 id="bz2-truncated"),
    pytest.param("plain.csv.gz", lambda p: p.write_bytes(_csv_bytes()), "path",
                 "gzip stream is corrupt or truncated", id="gzip-not-compressed"),
    pytest.param("bools.csv", lambda p: p.write_text("y,f\ntrue,0\nfalse,1\nyes,2\n"), "y",
                 "row 2", id="boolean-then-word"),
    pytest.param("data.dat", lambda p: p.write_bytes(_csv_bytes()), "path",
                 "cannot tell the format", id="unknown-extension"),
]


@pytest.mark.parametrize(("name", "write", "argument", "message"), FILE_REFUSED)
def test_fit_file_refuses(tmp_path, name, write, argument, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(InputError) as excinfo:
        logitshift.fit_file(path, "y", "f")
    text = str(excinfo.value)
    assert message in text
    assert repr(str(path)) in text  # the file is named
    assert excinfo.value.argument == argument
    if argument == "y" and "no column" in text:
        assert "it has 'label', 'score'" in text


def test_the_header_check_lists_the_columns_found(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("label,score\n0,1\n")
    with pytest.raises(InputError, match=r"no column 'y' in .*cols.csv'; it has 'label', "
                                         r"'score'$"):
        logitshift.fit_file(path, "y")


def _text_mode(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(_csv_bytes())
    return open(path)  # noqa: SIM115 - closed by the test


def _closed(tmp_path):
    handle = io.BytesIO(_csv_bytes())
    handle.close()
    return handle


SOURCE_REFUSED = [
    pytest.param(_text_mode, "open in text mode: open it in binary mode", id="text-mode-file"),
    pytest.param(lambda _: io.StringIO(_csv_bytes().decode()), "open in text mode",
                 id="string-io"),
    pytest.param(_closed, "cannot read the file object", id="closed-file"),
    pytest.param(lambda _: _csv_bytes(), "wrap bytes in io.BytesIO", id="bytes"),
    pytest.param(lambda _: 7, "source must be a path", id="integer"),
    pytest.param(lambda tmp: str(tmp / "a\x00b.csv"), "holds a NUL character", id="nul-in-path"),
    pytest.param(lambda _: "nosuchscheme://bucket/a.csv", "nosuchscheme", id="unknown-scheme"),
]


@pytest.mark.parametrize(("make", "message"), SOURCE_REFUSED)
def test_fit_file_refuses_sources(tmp_path, make, message):
    source = make(tmp_path)
    try:
        with pytest.raises(InputError, match=message) as excinfo:
            logitshift.fit_file(source, "y", "f")
        assert excinfo.value.argument == "path"
    finally:
        if hasattr(source, "close"):
            source.close()


def test_format_option_is_checked(tmp_path):
    with pytest.raises(InputError, match="format = 'xml' must be one of 'csv', 'parquet'"):
        logitshift.fit_file(tmp_path / "a.csv", "y", format="xml")
    with pytest.raises(InputError, match="standard input"):
        logitshift.fit_file("-", "y", format="parquet")


def _booleans_then_fraction(n: int = 160_000) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A label column of true/false for more than the first megabyte, then a soft label."""
    rng = np.random.default_rng(5)
    labels = (rng.random(n) < 0.4).astype(np.float64)
    labels[-1] = 0.7
    offsets = np.round(rng.normal(0, 1, n), 3)
    cells = np.where(labels == 1, "true", "false").astype(object)
    cells[-1] = "0.7"
    text = "y,f\n" + "".join(f"{y},{f!r}\n" for y, f in zip(cells, offsets.tolist()))
    assert len(text) > (1 << 20)
    return text.encode(), labels, offsets


ACCEPTED = [
    pytest.param("bytes-io-csv", lambda tmp: io.BytesIO(_csv_bytes()), id="bytes-io-csv"),
    pytest.param("bytes-io-parquet", lambda tmp: io.BytesIO(_parquet_bytes(
        pa.table({"y": LABELS, "f": OFFSETS}))), id="bytes-io-parquet"),
    pytest.param("bytes-io-gzip", lambda tmp: io.BytesIO(gzip.compress(_csv_bytes())),
                 id="bytes-io-gzip-sniffed"),
    pytest.param("format-csv", lambda tmp: (tmp / "a.dat").write_bytes(_csv_bytes())
                 and tmp / "a.dat", id="format-csv-on-dat"),
    pytest.param("file-url-csv", lambda tmp: (tmp / "u.csv").write_bytes(_csv_bytes())
                 and (tmp / "u.csv").as_uri(), id="file-url-csv"),
    pytest.param("file-url-parquet", lambda tmp: pq.write_table(
        pa.table({"y": LABELS, "f": OFFSETS}), tmp / "u.parquet")
        or (tmp / "u.parquet").as_uri(), id="file-url-parquet"),
    pytest.param("duplicate-not-asked", lambda tmp: io.BytesIO(
        b"y,g,g,f\n" + b"".join(b"%g,1,2,%r\n" % (y, f) for y, f in zip(LABELS.tolist(), OFFSETS.tolist()))),
        id="csv-duplicate-not-asked-for"),
]


@pytest.mark.parametrize(("kind", "make"), ACCEPTED)
def test_fit_file_reads(tmp_path, kind, make):
    source = make(tmp_path)
    options = {"format": "csv"} if kind == "format-csv" else {}
    result = logitshift.fit_file(source, "y", "f", **options)
    assert result.shift == pytest.approx(_reference(), rel=1e-13)
    assert result.n_rows == LABELS.size
    if isinstance(source, io.BytesIO):
        assert not source.closed  # the caller's to close


def test_an_open_binary_file_is_read_and_left_open(tmp_path):
    path = tmp_path / "s.csv.gz"
    path.write_bytes(gzip.compress(_csv_bytes()))
    with open(path, "rb") as handle:
        assert logitshift.fit_file(handle, "y", "f").shift == pytest.approx(_reference(),
                                                                              rel=1e-13)
        assert not handle.closed


def test_an_unparsable_cell_in_a_file_object_is_found(tmp_path):
    text = _csv_bytes().replace(b"\n1,-0.2", b"\n1,oops")  # data row 7
    with pytest.raises(InputError) as excinfo:
        logitshift.fit_file(io.BytesIO(text), "y", "f")
    assert "column 'f' row 7 of the BytesIO object: cannot read 'oops'" in str(excinfo.value)
    assert (excinfo.value.argument, excinfo.value.index) == ("f", 7)


def test_fsspec_memory_url():
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://hostile/scores.csv", "wb") as handle:
        handle.write(_csv_bytes())
    try:
        result = logitshift.fit_file("memory://hostile/scores.csv", "y", "f")
        assert result.shift == pytest.approx(_reference(), rel=1e-13)
        with pytest.raises(InputError, match="'f' appears 2 times in 'memory://"):
            with fsspec.open("memory://hostile/dup.csv", "wb") as handle:
                handle.write(b"y,f,f\n0,1,2\n")
            logitshift.fit_file("memory://hostile/dup.csv", "y", "f")
    finally:
        fsspec.filesystem("memory").rm("/hostile", recursive=True)


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_booleans_then_a_fraction_are_numbers(tmp_path, monkeypatch, where):
    data, labels, offsets = _booleans_then_fraction()
    if where == "file":
        source = tmp_path / "soft.csv"
        source.write_bytes(data)
    else:
        source = "-"
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    result = logitshift.fit_file(source, "y", "f")
    assert result.positives == pytest.approx(labels.sum(), rel=1e-15)
    assert result.shift == pytest.approx(_reference(labels, offsets), rel=1e-12)


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.csv").write_bytes(_csv_bytes())
    (tmp_path / "dup.csv").write_text("y,f,f\n0,1,2\n1,2,3\n")
    pq.write_table(_duplicate_table(), tmp_path / "dup.parquet")
    _truncated_gzip(tmp_path / "cut.csv.gz")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "garbage.csv").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "latin1.csv").write_bytes("y,f\n0,caf\xe9\n".encode("latin-1"))
    (tmp_path / "ragged.csv").write_text("y,f\n0,1\n1,2,3\n")
    (tmp_path / "notparquet.parquet").write_text("y\n1\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


CLI_REFUSED = [
    pytest.param(["dup.csv", "--label", "y", "--offset", "f"], "column 'f' appears 2 times",
                 id="csv-duplicate"),
    pytest.param(["dup.parquet", "--label", "y", "--offset", "f"], "column 'f' appears 2 times",
                 id="parquet-duplicate"),
    pytest.param(["cut.csv.gz", "--label", "y"], "'cut.csv.gz': its gzip stream is corrupt",
                 id="truncated-gzip"),
    pytest.param(["ok.csv", "--label", "clicked"], "no column 'clicked' in 'ok.csv'; it has "
                 "'y', 'f'", id="csv-missing-column-lists-columns"),
    pytest.param(["empty.csv", "--label", "y"], "'empty.csv'", id="empty-file"),
    pytest.param(["garbage.csv", "--label", "y"], "'garbage.csv'", id="binary-garbage"),
    pytest.param(["latin1.csv", "--label", "y", "--offset", "f"], "'latin1.csv'",
                 id="not-utf8"),
    pytest.param(["ragged.csv", "--label", "y"], "'ragged.csv'", id="ragged-rows"),
    pytest.param(["notparquet.parquet", "--label", "y"], "'notparquet.parquet'",
                 id="not-parquet"),
    pytest.param(["folder", "--label", "y"], "no Parquet files in the directory 'folder'",
                 id="empty-directory"),
    pytest.param(["a\x00.csv", "--label", "y"], "NUL", id="nul-in-path"),
    pytest.param(["nosuchscheme://x/a.csv", "--label", "y"], "nosuchscheme",
                 id="unknown-url-scheme"),
    pytest.param(["file:///nonexistent/a.parquet", "--label", "y"], "/nonexistent/a.parquet",
                 id="missing-file-url"),
    pytest.param(["ok.csv", "--label", "y", "--format", "json"], "--format",
                 id="bad-format"),
    pytest.param(["ok.csv", "--label", "y", "--format", "parquet"], "'ok.csv'",
                 id="csv-read-as-parquet"),
    pytest.param(["-", "--label", "y", "--format", "parquet"], "--format 'parquet': standard "
                 "input", id="stdin-as-parquet"),
    pytest.param(["ok.csv", "--label", "y", "--pseudo-count", "nan"],
                 "--pseudo-count nan must be finite", id="pseudo-count-nan"),
    pytest.param(["ok.csv", "--label", "y", "--level", "nan"], "--level nan must be between",
                 id="level-nan"),
    pytest.param(["ok.csv", "--label", "y", "--plot", "nodir/out.png"],
                 "--plot nodir/out.png: there is no directory 'nodir'", id="plot-no-directory"),
    pytest.param(["ok.csv", "--label", "y", "--plot", "folder"], "is a directory",
                 id="plot-is-a-directory"),
    pytest.param(["ok.csv", "--label", "y", "--plot", "ok.csv/out.png"],
                 "--plot ok.csv/out.png", id="plot-under-a-file"),
    pytest.param(["dup.csv", "--label", "y", "--plot", "nodir/out.png"], "--plot",
                 id="plot-checked-before-the-pass"),
]


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = logitshift.cli.main(argv)
        except SystemExit as exc:  # argparse's own errors
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def _assert_one_error_line(status: int, out: str, err: str, fragment: str) -> None:
    assert status == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("logitshift") and "error:" in err
    assert "Traceback" not in err
    assert fragment in err


@pytest.mark.parametrize(("argv", "fragment"), CLI_REFUSED)
def test_cli_refuses_in_one_line(files, argv, fragment):
    if "--plot" in argv:
        pytest.importorskip("matplotlib")
    _assert_one_error_line(*_cli(["fit", *argv]), fragment)
    assert not (files / "out.png").exists()


def test_cli_names_flags_in_warnings(files):
    (files / "zeros.csv").write_text("y,f\n0,1\n0,2\n")
    status, out, err = _cli(["fit", "zeros.csv", "--label", "y", "--offset", "f"])
    assert status == 0 and "shift" in out
    assert err.count("\n") == 1 and err.startswith("logitshift: warning:")
    assert "--pseudo-count > 0" in err and "pseudo_count" not in err


def test_cli_version(files):
    status, out, err = _cli(["--version"])
    assert (status, out, err) == (0, f"logitshift {logitshift.__version__}\n", "")


@pytest.mark.parametrize(("exception", "status", "fragment"), [
    pytest.param(RuntimeError("a bug\nover two lines"), 1,
                 "internal error, please report it: RuntimeError: a bug over two lines",
                 id="unexpected"),
    pytest.param(KeyboardInterrupt(), 130, "interrupted", id="ctrl-c"),
    pytest.param(MemoryError(), 1, "MemoryError", id="memory"),
])
def test_cli_last_resort_is_one_line(files, monkeypatch, exception, status, fragment):
    def fail(args):
        raise exception

    monkeypatch.setattr(logitshift.cli, "_fit", fail)
    got, out, err = _cli(["fit", "ok.csv", "--label", "y"])
    assert got == status
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("logitshift: error:") and fragment in err


@pytest.mark.parametrize(("argv", "fragment"), [
    pytest.param(["fit", "dup.csv", "--label", "y", "--offset", "f"], b"appears 2 times",
                 id="duplicate"),
    pytest.param(["fit", "cut.csv.gz", "--label", "y"], b"cut.csv.gz", id="truncated-gzip"),
    pytest.param(["fit", "ok.csv", "--label", "y", "--format", "json"], b"--format",
                 id="bad-format"),
])
def test_cli_refuses_in_one_line_as_a_process(files, argv, fragment):
    done = subprocess.run([sys.executable, "-m", "logitshift", *argv], cwd=files,
                          capture_output=True, timeout=120)
    _assert_one_error_line(done.returncode, done.stdout.decode(), done.stderr.decode(),
                           fragment.decode())


def test_cli_version_as_a_process(files):
    done = subprocess.run([sys.executable, "-m", "logitshift", "--version"], cwd=files,
                          capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout.decode().strip() == f"logitshift {logitshift.__version__}"
    assert math.isfinite(float(logitshift.__version__.split(".")[0]))


# -- The sketch and its bytes, intervals, per-row losses, options --------------------------

DATA = Path(__file__).parent / "data"
Y = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 0], dtype=np.float64)
OFFSET = np.linspace(-1.0, 1.5, 10)
WIDE_Y = (np.random.default_rng(1).random(150_000) < 0.5).astype(np.int8)
WIDE = np.random.default_rng(2).uniform(-1e12, 1e12, 150_000)


def _sketch() -> Sketch:
    return Sketch().update(Y, OFFSET)


def _blob() -> bytes:
    return _sketch().to_bytes()


def _flip(blob: bytes, position: int) -> bytes:
    return blob[:position] + bytes([blob[position] ^ 0x10]) + blob[position + 1:]


def _fit() -> logitshift.ShiftFit:
    return logitshift.fit(Y, OFFSET)


def _dict_with(**changes):
    return {**_sketch().to_dict(), **changes}


def _without(name):
    data = _sketch().to_dict()
    del data[name]
    return data


def _v1() -> bytes:
    return (DATA / "sketch_v1.bin").read_bytes()


def _lightgbm_dataset_without_label():
    lgb = pytest.importorskip("lightgbm")
    return lgb.Dataset(np.arange(30.0).reshape(10, 3), init_score=OFFSET,
                       params={"verbose": -1}).construct()


def _shift_dataset(dataset):
    from logitshift.boosting import shift_dataset

    return shift_dataset(dataset)


REFUSED = [
    # -- offsets and weights that are not numbers ------------------------------------------
    ("offset-string", lambda: logitshift.fit(Y, "1.0"), "offset must be a number, got '1.0'",
     "offset"),
    ("offset-bytes", lambda: logitshift.fit(Y, b"1"), "offset must be a number, got b'1'",
     "offset"),
    ("offset-true", lambda: logitshift.fit(Y, True), "offset must be a number, got True",
     "offset"),
    ("offset-numpy-bool", lambda: logitshift.fit(Y, np.bool_(False)),
     "offset must be a number, got", "offset"),
    ("offset-bool-array", lambda: logitshift.fit(Y, Y.astype(bool)),
     "offset is boolean: offsets are raw scores", "offset"),
    ("weight-string", lambda: logitshift.fit(Y, OFFSET, "1.0"),
     "weight must be an array of one weight per row, got '1.0'", "weight"),
    ("weight-true", lambda: logitshift.fit(Y, OFFSET, True),
     "weight must be an array of one weight per row, got True", "weight"),
    ("weight-scalar", lambda: logitshift.fit(Y, OFFSET, 2.0),
     "weight = 2.0 must be an array with one weight per row", "weight"),
    ("offset-one-row", lambda: logitshift.fit(Y, [0.5]), "offset has 1 row, y has 10",
     "offset"),
    ("weight-one-row", lambda: logitshift.fit(Y, None, [2.0]), "weight has 1 row, y has 10",
     "weight"),
    ("sketch-update-offset-string", lambda: Sketch().update(Y, "0.5"),
     "offset must be a number, got '0.5'", "offset"),
    # -- the cell budget ----------------------------------------------------------------------
    ("fit-sketch-wide", lambda: logitshift.fit(WIDE_Y, WIDE, method="sketch"),
     r"offset spans ±1e\+12 logits.*max_cells = 65,536", "offset"),
    ("update-wide", lambda: Sketch().update(WIDE_Y, WIDE),
     r"offset spans ±1e\+12 logits.*Is it really a raw score", "offset"),
    ("merge-past-budget", lambda: Sketch(max_cells=100).update(WIDE_Y[:80], WIDE[:80])
     + Sketch(max_cells=100).update(WIDE_Y[80:160], WIDE[80:160]), "max_cells = 100",
     "offset"),
    ("max-cells-zero", lambda: Sketch(max_cells=0), "max_cells = 0 must be a positive integer",
     "max_cells"),
    ("max-cells-float", lambda: Sketch(max_cells=1e6), "max_cells = 1000000.0", "max_cells"),
    ("max-cells-bool", lambda: Sketch(max_cells=True), "max_cells = True", "max_cells"),
    ("width-bool", lambda: Sketch(width=True), "width = True must be a positive power of two",
     "width"),
    # -- levels -------------------------------------------------------------------------------
    ("level-one", lambda: _fit().confint(1.0), "level = 1.0 must be between 0 and 1", "level"),
    ("level-zero", lambda: _fit().confint(0.0), "level = 0.0 must be between 0 and 1",
     "level"),
    ("level-true", lambda: _fit().confint(True), "level = True", "level"),
    ("level-string", lambda: _fit().confint("0.95"), "level = '0.95'", "level"),
    ("level-nan", lambda: _fit().confint(math.nan, method="wald"), "level = nan", "level"),
    ("level-oe-one", lambda: _fit().observed_expected_at(1.0), "level = 1.0", "level"),
    ("level-to-dict", lambda: _fit().to_dict(level=-0.5), "level = -0.5", "level"),
    # -- per-row losses -----------------------------------------------------------------------
    ("loss-weight-length", lambda: logitshift.loss(Y, OFFSET, weight=np.ones(3)),
     r"y has shape \(10,\), raw has shape \(10,\), weight has shape \(3,\)", "weight"),
    ("loss-raw-length", lambda: logitshift.loss(Y, OFFSET[:4]), r"raw has shape \(4,\)",
     "raw"),
    ("loss-raw-nan", lambda: logitshift.loss(Y, np.where(Y > 2, 0, np.r_[OFFSET[:6], np.nan,
                                                                          OFFSET[7:]])),
     r"raw\[6\] is nan", "raw"),
    ("gradient-raw-nan", lambda: logitshift.gradient([0, 1], [np.nan, 1.0]),
     r"raw\[0\] is nan", "raw"),
    ("sigmoid-nan", lambda: logitshift.sigmoid([0.0, math.nan]), r"raw\[1\] is nan", "raw"),
    # -- the sketch's evaluators --------------------------------------------------------------
    ("sketch-loss-nan", lambda: _sketch().loss(math.nan), "shift is nan", "shift"),
    ("sketch-gradient-nan", lambda: _sketch().gradient(math.nan), "shift is nan", "shift"),
    ("sketch-hessian-nan", lambda: _sketch().hessian(float("nan")), "shift is nan", "shift"),
    ("sketch-cells-nan", lambda: _sketch().cells(math.nan), "shift is nan", "shift"),
    ("sketch-loss-string", lambda: _sketch().loss("abc"), "shift must be a number, got 'abc'",
     "shift"),
    # -- bytes --------------------------------------------------------------------------------
    ("bytes-none", lambda: Sketch.from_bytes(None), "blob must be bytes, got NoneType", "blob"),
    ("bytes-str", lambda: Sketch.from_bytes("LSSK"), "blob must be bytes, got str", "blob"),
    ("bytes-empty", lambda: Sketch.from_bytes(b""), "not a logitshift sketch", "blob"),
    ("bytes-json", lambda: Sketch.from_bytes(json.dumps(_sketch().to_dict()).encode()),
     "not a logitshift sketch", "blob"),
    ("bytes-truncated", lambda: Sketch.from_bytes(_blob()[:-100]), "checksum mismatch", "blob"),
    ("bytes-padded", lambda: Sketch.from_bytes(_blob() + b"\0" * 8), "checksum mismatch",
     "blob"),
    ("bytes-flip-header", lambda: Sketch.from_bytes(_flip(_blob(), 30)), "checksum mismatch",
     "blob"),
    ("bytes-flip-table", lambda: Sketch.from_bytes(_flip(_blob(), len(_blob()) - 50)),
     "checksum mismatch", "blob"),
    ("bytes-flip-checksum", lambda: Sketch.from_bytes(_flip(_blob(), len(_blob()) - 1)),
     "checksum mismatch", "blob"),
    ("bytes-newer", lambda: Sketch.from_bytes(_blob()[:4] + struct.pack("<I", 9)
                                              + _blob()[8:]),
     "written by format version 9; this reads up to 3", "blob"),
    ("bytes-doubled", lambda: Sketch.from_bytes(_blob() * 2), "checksum mismatch", "blob"),
    ("bytes-v1-truncated", lambda: Sketch.from_bytes(_v1()[:-136]), "corrupted", "blob"),
    ("bytes-v1-padded", lambda: Sketch.from_bytes(_v1() + b"\0" * 3), "corrupted", "blob"),
    ("bytes-v1-flipped-header", lambda: Sketch.from_bytes(_flip(_v1(), 20)), "corrupted|not a",
     "blob"),
    # -- dicts --------------------------------------------------------------------------------
    ("dict-list", lambda: Sketch.from_dict([1, 2]), "not a logitshift sketch", "data"),
    ("dict-changed-rows", lambda: Sketch.from_dict(_dict_with(n_rows=11)), "checksum mismatch",
     "data"),
    ("dict-no-tables", lambda: Sketch.from_dict(_without("tables")), "no field 'tables'",
     "data"),
    ("dict-no-checksum", lambda: Sketch.from_dict(_without("checksum")),
     "no field 'checksum'", "data"),
    ("dict-checksum-string", lambda: Sketch.from_dict(
        _dict_with(checksum=str(_sketch().to_dict()["checksum"]))), "checksum mismatch",
     "data"),
    ("dict-newer", lambda: Sketch.from_dict(_dict_with(version=4)), "format version 4", "data"),
    # -- boosting -----------------------------------------------------------------------------
    ("lightgbm-no-label", lambda: _shift_dataset(_lightgbm_dataset_without_label()),
     "every label of dataset is 0: LightGBM gives a Dataset constructed without a label",
     "dataset"),
]


@pytest.mark.parametrize("call, message, argument", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_hostile_input_is_refused_naming_the_argument(call, message, argument):
    with pytest.raises(InputError, match=message) as caught:
        call()
    assert caught.value.argument == argument


# -- hostile, but answerable: a right answer checked against a reference ---------------------------

def test_wide_offsets_in_memory_give_the_exact_answer():
    result = logitshift.fit(WIDE_Y, WIDE)
    reference = fit_curve(ArrayCurve(WIDE_Y, WIDE, None), method="newton")
    assert result.method == "newton" and result.converged
    assert result.shift == pytest.approx(reference.shift, rel=1e-13)


@pytest.mark.parametrize("level", [1e-300, 1e-16, 0.9999999999999999],
                         ids=["1e-300", "1e-16", "1-2^-53"])
def test_extreme_levels_give_ordered_intervals_around_the_shift(level):
    import mpmath as mp

    result = _fit()
    with mp.workdps(40):
        z = float(mp.sqrt(2) * mp.erfinv(mp.mpf(level)))
    assert normal_quantile(level) == pytest.approx(z, rel=4e-16)
    for method in ("profile", "wald"):
        low, high = result.confint(level, method)
        assert math.isfinite(low) and low <= result.shift <= high
    oe = result.observed_expected_at(level)
    assert 0 < oe.low <= oe.ratio <= oe.high < math.inf


def test_sum_of_sketches_equals_the_sketch_of_all_rows():
    parts = [Sketch().update(Y[i::3], OFFSET[i::3]) for i in range(3)]
    assert sum(parts).solve().shift == pytest.approx(_fit().shift, rel=1e-14)


def test_a_version_1_blob_solves_as_it_did():
    stored = json.loads((DATA / "sketch_v1.json").read_text())
    assert Sketch.from_bytes(_v1()).solve().shift == stored["shift"]


def test_an_empty_sketch_round_trips():
    empty = Sketch(max_cells=10)
    copy = Sketch.from_bytes(empty.to_bytes())
    assert copy.n_rows == 0 and copy.max_cells == 10
    assert Sketch.from_dict(json.loads(json.dumps(empty.to_dict()))).to_bytes() == \
        empty.to_bytes()
    assert struct.unpack("<I", empty.to_bytes()[-4:])[0] == zlib.crc32(empty.to_bytes()[:-4])


def test_all_zero_labels_in_memory_still_warn_and_give_minus_infinity():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = logitshift.fit(np.zeros(10), OFFSET)
    assert result.shift == -math.inf and caught


# -- Numerics: weights at any scale, separable data ----------------------------------------

METHODS = ["auto", "newton", "reference"]


def fit_with(method, labels, offsets=None, weights=None, **options):
    """``fit`` by a public method, or by the numpy reference curve."""
    if method == "reference":
        curve = ArrayCurve(np.asarray(labels), 0.0 if offsets is None else offsets, weights)
        return fit_curve(curve, method="newton", **options)
    return logitshift.fit(labels, offsets, weights, method=method, **options)


def assert_close(value: float, exact: mp.mpf, rel: float = 1e-13) -> None:
    error = abs(mp.mpf(value) - exact)
    assert error <= rel * max(1, abs(exact)), f"{value!r} is {float(error):.3g} off {exact}"


def ordinary_data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int8)
    return labels, rng.normal(0, 1, n)


# -- 1. weights whose sum overflows or underflows -----------------------------------------

WEIGHTS = {
    "all_1e308": lambda n: np.full(n, 1e308),  # the sum overflows
    "all_1e306": lambda n: np.full(n, 1e306),
    "all_2**1023": lambda n: np.full(n, 2.0 ** 1023),
    "all_5e-324": lambda n: np.full(n, 5e-324),  # the smallest subnormal
    "all_1e-310": lambda n: np.full(n, 1e-310),
    "all_1e-300": lambda n: np.full(n, 1e-300),  # normal, but their sum is tiny
    "spread_1e300_and_1": lambda n: np.where(np.arange(n) % 2, 1e300, 3e299),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_equal_weights_at_any_scale_give_the_unweighted_shift(name, method):
    labels, offsets = ordinary_data()
    weights = WEIGHTS[name](labels.size)
    unit = weights / weights.max()  # the same problem in ordinary units
    exact = reference.shift(labels, offsets, unit)
    result = fit_with(method, labels, offsets, weights)
    assert result.converged and result.status == "converged"
    assert_close(result.shift, exact)
    plain = fit_with(method, labels, offsets, unit)
    # Means and ratios do not depend on the units of the weights.
    assert result.loss == pytest.approx(plain.loss, rel=1e-13)
    assert result.loss_at_zero == pytest.approx(plain.loss_at_zero, rel=1e-13)
    assert result.loss_at(0.3) == pytest.approx(plain.loss_at(0.3), rel=1e-13)
    assert result.observed_expected.ratio == pytest.approx(plain.observed_expected.ratio,
                                                           rel=1e-13)
    # Totals are in the user's units: inf only where the true sum exceeds the double range.
    true_weight = mp.fsum(mp.mpf(float(w)) for w in weights)
    if true_weight > mp.mpf(np.finfo(float).max):
        assert result.weight_sum == math.inf
    else:
        assert result.weight_sum == pytest.approx(float(true_weight), rel=1e-13)
    # The standard error scales as 1 / sqrt(the weights' unit).
    factor = mp.sqrt(mp.mpf(float(weights.max())))
    expected_se = mp.mpf(plain.se) / factor
    assert result.se == pytest.approx(float(expected_se), rel=1e-10)
    # The interval is ordered and holds the shift; LR statistic in the user's units.
    low, high = result.confint()
    assert low <= result.shift <= high
    statistic = mp.mpf(plain.lr_test().statistic) * mp.mpf(float(weights.max()))
    if statistic > mp.mpf(np.finfo(float).max):
        assert result.lr_test().statistic == math.inf
    else:
        assert result.lr_test().statistic == pytest.approx(float(statistic), rel=1e-9)


@pytest.mark.parametrize("method", ["auto", "newton"])
@pytest.mark.parametrize("light", [0, 1])
def test_weights_beyond_any_common_unit_are_refused(light, method):
    # Every positive (negative) lighter than 2**-1074 of the heaviest row: the fit gave
    # shift -inf, "all_negative", as if there were none.
    labels = np.full(1000, 1 - light)
    labels[:3] = light
    weights = np.full(1000, 1e308)
    weights[:3] = 5e-324
    with pytest.raises(logitshift.InputError, match="range of doubles") as error:
        logitshift.fit(labels, np.linspace(-1, 1, 1000), weights, method=method)
    assert error.value.argument == "weight" and error.value.value == 1e308


@pytest.mark.parametrize("method", ["auto", "newton"])
def test_two_rows_of_weight_1e308(method):
    # Reported weight_sum=inf and loss=0.
    result = logitshift.fit([0, 1], [0.0, 0.5], [1e308, 1e308], method=method)
    assert result.converged
    assert_close(result.shift, reference.shift([0, 1], [0.0, 0.5]))
    assert result.weight_sum == math.inf  # 2e308 is beyond the double range
    plain = logitshift.fit([0, 1], [0.0, 0.5], method=method)
    assert result.loss == pytest.approx(plain.loss, rel=1e-14)
    assert result.loss_at_zero == pytest.approx(plain.loss_at_zero, rel=1e-14)


@pytest.mark.parametrize("weight", [1e308, 2.0 ** 1023, 5e-324, 1e-320],
                         ids=["1e308", "2**1023", "5e-324", "1e-320"])
def test_constant_offset_closed_form_at_any_weight_scale(weight):
    labels, _ = ordinary_data()
    result = logitshift.fit(labels, 1.5, np.full(labels.size, weight))
    assert result.status == "closed_form"
    m = int(labels.sum())
    expected = math.log(m / (labels.size - m)) - 1.5
    if math.frexp(weight)[0] == 0.5:  # a power of two: the sums are exact
        assert result.shift == expected
    else:
        assert result.shift == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("method", ["auto", "newton"])
def test_pseudo_count_scales_with_the_weights(method):
    labels, offsets = ordinary_data()
    plain = logitshift.fit(labels, offsets, np.ones(labels.size), method=method,
                           pseudo_count=2.0)
    huge = logitshift.fit(labels, offsets, np.full(labels.size, 2.0 ** 1020), method=method,
                          pseudo_count=2.0 ** 1021)
    assert huge.shift == plain.shift


def test_sketch_chunks_of_different_weight_scales_merge_exactly():
    labels, offsets = ordinary_data(3000)
    weights = np.ones(labels.size)
    weights[1000:2000] = 2.0 ** -600  # a chunk light enough to be rescaled on its own
    weights[2000:] = 2.0 ** 900  # and one heavy enough (its sum overflows at 2**1014)
    scaled = weights * 2.0 ** 100
    parts = [(0, 1000), (1000, 2000), (2000, 3000)]
    for w in (weights, scaled):
        merged = Sketch()
        for a, b in parts:
            merged = merged + Sketch().update(labels[a:b], offsets[a:b], w[a:b])
        streamed = Sketch()
        for a, b in parts:
            streamed.update(labels[a:b], offsets[a:b], w[a:b])
        whole = Sketch().update(labels, offsets, w)
        exact = reference.shift(labels, offsets, w / 2.0 ** 900)
        for sketch in (merged, streamed, whole):
            assert_close(sketch.solve().shift, exact)
    # Scaling every weight by a power of two changes nothing, chunk by chunk.
    base = [Sketch().update(labels[a:b], offsets[a:b], weights[a:b]) for a, b in parts]
    moved = [Sketch().update(labels[a:b], offsets[a:b], scaled[a:b]) for a, b in parts]
    assert sum(base[1:], base[0]).solve().shift == sum(moved[1:], moved[0]).solve().shift


def test_the_scale_of_a_sketch_survives_to_dict_and_older_dicts_load():
    labels, offsets = ordinary_data()
    sketch = Sketch().update(labels, offsets, np.full(labels.size, 1e308))
    data = sketch.to_dict()
    assert data["scale_exponent"] != 0
    again = Sketch.from_dict(data)
    assert again.solve().shift == sketch.solve().shift
    assert again.loss(0.0) == sketch.loss(0.0) == math.inf  # the total itself overflows
    # A dict written before the field existed is in units of 1.
    ordinary = Sketch().update(labels, offsets).to_dict()
    assert ordinary["scale_exponent"] == 0
    del ordinary["scale_exponent"]
    assert Sketch.from_dict(ordinary).solve().shift == Sketch().update(
        labels, offsets).solve().shift
    blob = Sketch.from_bytes(sketch.to_bytes())
    assert blob.solve().shift == sketch.solve().shift


def test_sketch_sums_are_in_the_users_units():
    labels, offsets = ordinary_data()
    weights = np.full(labels.size, 2.0 ** -1070)
    sketch = Sketch().update(labels, offsets, weights)
    plain = Sketch().update(labels, offsets)
    for shift in (-1.0, 0.0, 2.0):
        assert sketch.loss(shift) == pytest.approx(plain.loss(shift) * 2.0 ** -1070, rel=1e-12)
        assert sketch.hessian(shift) == pytest.approx(plain.hessian(shift) * 2.0 ** -1070,
                                                      rel=1e-12)
    cells, plain_cells = sketch.cells(0.5), plain.cells(0.5)
    np.testing.assert_allclose(cells.weight, plain_cells.weight * 2.0 ** -1070, rtol=1e-13)
    np.testing.assert_allclose(cells.expected, plain_cells.expected * 2.0 ** -1070, rtol=1e-12)


# -- 2. separable data with gaps wider than σ's range ---------------------------------------

def separable(a, n=1000, seed=0):
    labels, _ = ordinary_data(n, seed)
    return labels, np.where(labels == 1, a, -a)


def separable_with_ordinary_rows(a):
    # Separable groups far out, plus a few ordinary rows near 0 that set the shift.
    labels, offsets = separable(a)
    rng = np.random.default_rng(3)
    extra = rng.normal(0, 1, 50)
    extra_labels = (rng.random(50) < 0.4).astype(np.int8)
    return np.r_[labels, extra_labels], np.r_[offsets, extra]


def separable_spread(a):
    # Both groups spread over many cells, the gap still far beyond σ's range.
    rng = np.random.default_rng(4)
    labels, _ = ordinary_data(2000, 4)
    offsets = np.where(labels == 1, a, -a) + rng.normal(0, 3, labels.size)
    return labels, offsets


def separable_unequal(a):
    # The two groups at different distances: the shift is far from 0.
    labels, _ = ordinary_data()
    return labels, np.where(labels == 1, a, -2 * a)


def separable_weighted(a):
    rng = np.random.default_rng(5)
    labels, offsets = separable(a)
    return labels, offsets, rng.exponential(1.0, labels.size)


def separable_with_soft_rows(a):
    # A soft label is a mistake on both sides: soft rows must sit near 0 for a gap to remain.
    labels, offsets, weights = separable_weighted(a)
    rng = np.random.default_rng(6)
    soft = rng.random(30)
    return (np.r_[labels, soft], np.r_[offsets, rng.normal(0, 2, 30)],
            np.r_[weights, rng.integers(1, 4, 30)])


SEPARABLE = {
    "gap_745": lambda: separable(745.0),
    "gap_800": lambda: separable(800.0),
    "gap_1e3": lambda: separable(1e3),
    "gap_1e4": lambda: separable(1e4),
    "gap_1e300": lambda: separable(1e300),
    "gap_1e308": lambda: separable(1e308),
    "mixed_1e3": lambda: separable_with_ordinary_rows(1e3),
    "mixed_1e300": lambda: separable_with_ordinary_rows(1e300),
    "spread_1e3": lambda: separable_spread(1e3),
    "spread_1e4": lambda: separable_spread(1e4),
    "unequal_1e3": lambda: separable_unequal(1e3),
    "unequal_1e300": lambda: separable_unequal(1e300),
    "weighted_1e3": lambda: separable_weighted(1e3),
    "weighted_1e300": lambda: separable_weighted(1e300),
    "soft_rows_1e4": lambda: separable_with_soft_rows(1e4),
}


@pytest.fixture(scope="module")
def separable_references():
    return {}


def _reference_for(name, separable_references):
    if name not in separable_references:
        separable_references[name] = reference.shift_any_offsets(*SEPARABLE[name]())
    return separable_references[name]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(SEPARABLE))
def test_separable_data_matches_the_reference(name, method, separable_references):
    data = SEPARABLE[name]()
    exact = _reference_for(name, separable_references)
    result = fit_with(method, *data)
    assert result.converged and result.status == "converged", result
    assert_close(result.shift, exact)


@pytest.mark.parametrize("a", [745.0, 1e3, 1e4, 1e300], ids=["745", "1e3", "1e4", "1e300"])
def test_separable_shift_is_half_the_log_odds(a):
    labels, offsets = separable(a)
    m = int(labels.sum())
    with mp.workdps(40):
        expected = mp.log(mp.mpf(m) / (labels.size - m)) / 2
    for method in ("auto", "newton"):
        assert_close(logitshift.fit(labels, offsets, method=method).shift, expected)


@pytest.mark.parametrize("method", ["auto", "newton"])
@pytest.mark.parametrize("a", [1e3, 1e4, 1e300], ids=["1e3", "1e4", "1e300"])
def test_statistics_at_a_separable_shift(a, method):
    labels, offsets = separable(a)
    result = logitshift.fit(labels, offsets, method=method)
    sums = reference.sums_any_offsets(labels, offsets, None, mp.mpf(result.shift))
    # The Hessian underflows; the standard error comes from its logarithm.
    se = 1 / mp.sqrt(sums["hessian"])
    if se > mp.mpf(np.finfo(float).max):
        assert result.se == math.inf
    else:
        assert result.se == pytest.approx(float(se), rel=1e-10)
    # The loss is far below the smallest double: 0 is its nearest double.
    assert result.loss == float(sums["loss"] / labels.size) == 0.0
    low, high = result.confint()
    assert low < result.shift < high
    assert math.isfinite(low) and math.isfinite(high)
    # The likelihood is flat across the gap: the interval spans most of it.
    assert high > 0.5 * a and low < -0.5 * a
    test = result.lr_test()
    assert test.statistic >= 0 and 0 <= test.pvalue <= 1


def test_separable_spread_with_the_sketch_and_weights_scaled():
    labels, offsets = separable_spread(1e3)
    weights = np.full(labels.size, 1e308)
    exact = reference.shift_any_offsets(labels, offsets)
    for method in ("auto", "newton"):
        assert_close(logitshift.fit(labels, offsets, weights, method=method).shift, exact)


class _LinearOnly:
    """A curve that gives only the linear sums (no logarithms of the parts)."""

    def __init__(self, inner):
        self._inner = inner
        self.totals = inner.totals
        self.passes = 0

    def evaluate(self, shift):
        t = self._inner.evaluate(shift)
        return Terms(t.negative, t.positive, t.gradient, t.negative_curvature,
                     t.positive_curvature, t.loss)


def test_underflowed_parts_without_their_logarithms_are_not_identifiable():
    labels, offsets = separable(1e4)
    curve = _LinearOnly(ArrayCurve(labels, offsets, None))
    with pytest.warns(RuntimeWarning, match="underflow"):
        result = fit_curve(curve, method="newton")
    assert result.status == "not_identifiable" and not result.converged


def test_ordinary_data_never_computes_logarithms_of_the_parts():
    labels, offsets = ordinary_data()
    for curve in (ArrayCurve(labels, offsets, None), Sketch().update(labels, offsets)):
        terms = curve.evaluate(-1.0)
        assert terms.log_negative is None and terms.log_positive is None


def test_no_warning_on_separable_data():
    labels, offsets = separable(1e4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logitshift.fit(labels, offsets)
    assert result.converged


@pytest.mark.parametrize("method", ["auto", "sketch", "newton"])
def test_soft_labels_an_ulp_below_one_keep_their_negative_part(method):
    """``w (1 - y)`` is exact where ``y`` is near 1; ``w - w y`` rounded 3 · 2**-53 to
    4 · 2**-53 and moved the shift by log(4/3)."""
    labels = np.array([1.0, 1.0 - 2.0 ** -53])
    weights = np.array([3.0, 3.0])
    closed = logitshift.fit(labels, None, weights)
    assert closed.shift == pytest.approx(math.log((6.0 - 3.0 * 2.0 ** -53) / (3.0 * 2.0 ** -53)),
                                         rel=1e-15)
    offsets = np.array([0.5, -0.2])
    mp.mp.dps = 50
    negative = 3 * mp.mpf(2) ** -53

    def gradient(shift):
        return (negative / (1 + mp.exp(-(offsets[1] + shift)))
                - 3 / (1 + mp.exp(offsets[0] + shift))
                - (3 - negative) / (1 + mp.exp(offsets[1] + shift)))

    truth = float(mp.findroot(gradient, 37))
    assert logitshift.fit(labels, offsets, weights, method=method).shift == pytest.approx(
        truth, rel=1e-14)
