"""Hostile tables, files and command lines: each is refused with an InputError (or exit status 2
and one line on stderr) that names the argument or file and the value, or gets the answer that
the same rows give as arrays in memory."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift.cli
from logitshift import InputError

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
