"""``fit_file``: files, directories, globs and stdin in one pass, equal to the in-memory fit."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift._sources.files
import logitshift.io
from logitshift import InputError
from logitshift.cli import main

N = 20_000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(8)
    offsets = rng.normal(0, 2, N)
    labels = (rng.random(N) < 1 / (1 + np.exp(-(offsets - 2)))).astype(np.int8)
    weights = rng.exponential(1.0, N)
    return labels, offsets, weights


def assert_same_fit(actual, expected):
    assert abs(actual.shift - expected.shift) <= 1e-13 * max(1.0, abs(expected.shift))
    assert actual.se == pytest.approx(expected.se, rel=1e-12)
    assert actual.loss == pytest.approx(expected.loss, rel=1e-12)
    assert actual.n_rows == expected.n_rows and actual.passes == 1


def write_uneven_parquet(path, labels, offsets, weights=None, sizes=(1, 700, 5_000, 13, 0)):
    """Row groups of uneven size (the last takes the rest; an empty one too)."""
    columns = {"y": labels, "f": offsets} | ({} if weights is None else {"w": weights})
    table = pa.table(columns)
    with pq.ParquetWriter(path, table.schema) as writer:
        start = 0
        for size in sizes:
            writer.write_table(table.slice(start, size))
            start += size
        writer.write_table(table.slice(start))
    return path


def csv_text(labels, offsets, weights=None) -> str:
    header = "y,f" + ("" if weights is None else ",w")
    rows = [f"{y},{f!r}" + ("" if weights is None else f",{w!r}")
            for y, f, w in zip(labels.tolist(), offsets.tolist(),
                               (weights if weights is not None else labels).tolist())]
    return "\n".join([header, *rows]) + "\n"


# -- the same answer, whatever the container -----------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_parquet_with_uneven_row_groups_equals_the_in_memory_fit(tmp_path, data, weighted):
    labels, offsets, weights = data
    weights = weights if weighted else None
    path = write_uneven_parquet(tmp_path / "scores.parquet", labels, offsets, weights)
    assert pq.ParquetFile(path).num_row_groups == 6
    result = logitshift.fit_file(path, "y", "f", "w" if weighted else None, batch_rows=999)
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))


def test_csv_and_compressed_csv_equal_the_in_memory_fit(tmp_path, data, monkeypatch):
    labels, offsets, weights = data
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 16)  # many blocks
    text = csv_text(labels, offsets, weights)
    (tmp_path / "scores.csv").write_text(text)
    with gzip.open(tmp_path / "scores.csv.gz", "wt") as handle:
        handle.write(text)
    expected = logitshift.fit(labels, offsets, weights)
    for name in ("scores.csv", "scores.csv.gz"):
        assert_same_fit(logitshift.fit_file(tmp_path / name, "y", "f", "w"), expected)


def test_a_partitioned_directory_a_glob_and_a_list_give_the_same_answer(tmp_path, data):
    labels, offsets, weights = data
    parts = np.array_split(np.arange(N), 5)
    for i, rows in enumerate(parts):
        folder = tmp_path / "dataset" / f"day={i}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"y": labels[rows], "f": offsets[rows], "w": weights[rows]}),
                       folder / "part-0.parquet")
    (tmp_path / "dataset" / "_SUCCESS").write_text("")  # not a Parquet file: skipped
    expected = logitshift.fit(labels, offsets, weights)
    files = sorted((tmp_path / "dataset").rglob("*.parquet"))
    for source in (tmp_path / "dataset", str(tmp_path / "dataset" / "*" / "*.parquet"), files):
        assert_same_fit(logitshift.fit_file(source, "y", "f", "w"), expected)


def test_stdin_is_read_once_as_csv(data, monkeypatch):
    labels, offsets, _ = data
    stdin = io.TextIOWrapper(io.BytesIO(csv_text(labels, offsets).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert_same_fit(logitshift.fit_file("-", "y", "f"), logitshift.fit(labels, offsets))
    assert stdin.buffer.read() == b""  # consumed: there is no second pass to make


def test_warnings_point_at_the_caller(tmp_path):
    pq.write_table(pa.table({"y": np.zeros(5)}), tmp_path / "zeros.parquet")
    with pytest.warns(RuntimeWarning, match="every label is 0") as caught:
        logitshift.fit_file(tmp_path / "zeros.parquet", "y")
    assert caught[0].filename == __file__


# -- bad data mid-stream -------------------------------------------------------------------


def test_nan_in_a_later_file_names_the_file_the_row_and_the_column(tmp_path, data):
    labels, offsets, _ = data
    for i in range(3):
        bad = offsets.copy()
        if i == 2:
            bad[12_345] = np.nan
        write_uneven_parquet(tmp_path / f"part-{i}.parquet", labels, bad)
    with pytest.raises(InputError) as caught:
        logitshift.fit_file(tmp_path, "y", "f", batch_rows=1000)
    message = str(caught.value)
    assert message == f"{str(tmp_path / 'part-2.parquet')!r}: column 'f': offset[12345] is nan"
    assert (caught.value.argument, caught.value.index) == ("f", 12345)


def test_label_out_of_range_in_csv_names_the_row(tmp_path, data, monkeypatch):
    labels, offsets, _ = data
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 14)
    labels = labels.copy()
    labels[17_001] = 3
    path = tmp_path / "scores.csv"
    path.write_text(csv_text(labels, offsets))
    with pytest.raises(InputError, match=re.escape(
            f"{str(path)!r}: column 'y': label y[17001] = 3.0 is outside [0, 1]")):
        logitshift.fit_file(path, "y", "f")


@pytest.mark.parametrize("row", [0, 7, 12_999, N - 1])
def test_an_unparsable_cell_is_found_in_its_row_and_column(tmp_path, data, monkeypatch, row):
    labels, offsets, _ = data
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 14)  # in a later block
    lines = csv_text(labels, offsets).splitlines()
    y, f = lines[1 + row].split(",")
    lines[1 + row] = f"{y},{f}x"
    path = tmp_path / "scores.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as caught:
        logitshift.fit_file(path, "y", "f")
    assert str(caught.value) == (f"column 'f' row {row} of {str(path)!r}: cannot read "
                                 f"'{f}x' as a number")
    assert (caught.value.argument, caught.value.index) == ("f", row)


def test_an_unparsable_cell_on_stdin_in_the_first_rows_is_found(data, monkeypatch):
    labels, offsets, _ = data
    lines = csv_text(labels, offsets).splitlines()
    lines[1 + 15_000] = "1,abc"  # within the rows the columns' types are told from
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        ("\n".join(lines) + "\n").encode())))
    with pytest.raises(InputError, match=r"^column 'f' row 15000 of standard input: cannot "
                                         r"read 'abc' as a number$"):
        logitshift.fit_file("-", "y", "f")


def test_an_unparsable_cell_later_on_stdin_names_its_block(data, monkeypatch):
    labels, offsets, _ = data
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(logitshift._sources.files, "_CSV_SAMPLE_BYTES", 1 << 12)
    lines = csv_text(labels, offsets).splitlines()
    lines[1 + 15_000] = "1,abc"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        ("\n".join(lines) + "\n").encode())))
    with pytest.raises(InputError) as caught:
        logitshift.fit_file("-", "y", "f")
    message = str(caught.value)
    first = int(re.search(r"block of rows from (\d+)", message).group(1))
    assert "cannot read 'abc' in standard input as a number" in message
    assert 0 < first <= 15_000


@pytest.mark.parametrize("where", ["first rows", "later"])
def test_integers_followed_by_fractions_are_numbers(tmp_path, data, monkeypatch, where):
    """Whatever the first rows look like, a CSV column of numbers is read as numbers."""
    labels, offsets, _ = data
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 14)
    if where == "later":
        monkeypatch.setattr(logitshift._sources.files, "_CSV_SAMPLE_BYTES", 1 << 12)
    weights = np.ones(N)
    weights[N - 3] = 0.5
    path = tmp_path / "weights.csv"
    path.write_text("y,f,w\n" + "".join(
        f"{y},{f!r},{w:g}\n" for y, f, w in zip(labels.tolist(), offsets.tolist(),
                                               weights.tolist())))
    assert_same_fit(logitshift.fit_file(path, "y", "f", "w"),
                    logitshift.fit(labels, offsets, weights))


def test_a_truncated_parquet_file_is_a_one_line_error(tmp_path, data, capsys):
    labels, offsets, _ = data
    path = write_uneven_parquet(tmp_path / "cut.parquet", labels, offsets)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=re.escape(f"cannot read {str(path)!r}")):
        logitshift.fit_file(path, "y", "f")
    assert main(["fit", str(path), "--label", "y", "--offset", "f"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err


@pytest.mark.parametrize("source, message", [
    ("missing-dir/*.parquet", "no files match"),
    ([], "no files given"),
])
def test_sources_that_name_no_files(tmp_path, source, message):
    with pytest.raises(InputError, match=message):
        logitshift.fit_file(source if source == [] else str(tmp_path / source), "y")


def test_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(InputError, match="no Parquet files in the directory"):
        logitshift.fit_file(tmp_path, "y")


# -- progress, the command line, memory ----------------------------------------------------


def test_progress_is_shown_on_request_and_not_on_a_pipe(tmp_path, data, capsys):
    labels, offsets, _ = data
    path = write_uneven_parquet(tmp_path / "scores.parquet", labels, offsets)
    logitshift.fit_file(path, "y", "f")  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    logitshift.fit_file(path, "y", "f", progress=True)
    err = capsys.readouterr().err
    last = err.split("\r")[-1]
    assert last.startswith(f"logitshift: {N:,} rows, done") and "M rows/s" in last
    assert err.endswith("\n")


def test_cli_reads_several_paths_and_quiet_keeps_stderr_clean(tmp_path, data, capsys):
    labels, offsets, _ = data
    half = N // 2
    pq.write_table(pa.table({"y": labels[:half], "f": offsets[:half]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"y": labels[half:], "f": offsets[half:]}), tmp_path / "b.parquet")
    argv = ["fit", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "--label", "y",
            "--offset", "f", "--json", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    report = json.loads(captured.out)
    assert math.isclose(report["shift"], logitshift.fit(labels, offsets).shift, rel_tol=1e-13)
    assert report["n_rows"] == N


def test_memory_stays_bounded_while_a_file_streams(tmp_path):
    """A file of 4e6 rows (36 MB of columns) streams through batches of 65,536 rows (0.6 MB):
    the Arrow memory pool peaks at a few batches (two row groups decoding, two read ahead,
    the readers' buffers: 5-7 MB, whatever the file's length), not at the file."""
    rng = np.random.default_rng(1)
    n = 4_000_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"y": (rng.random(n) < 0.3).astype(np.int8),
                             "f": rng.normal(0, 2, n)}), path, row_group_size=1 << 16)
    script = (
        "import sys, pyarrow as pa, logitshift\n"
        "r = logitshift.fit_file(sys.argv[1], 'y', 'f', batch_rows=1 << 16)\n"
        "print(r.n_rows, pa.default_memory_pool().max_memory())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=120, check=True)
    rows, peak = map(int, done.stdout.split())
    assert rows == n
    assert peak < 9 * n / 4  # a quarter of the columns' 9 bytes a row: 16 batches


@pytest.mark.parametrize("options, message", [
    ({"tol": -1}, "tol"),
    ({"pseudo_count": -1}, "pseudo_count"),
    ({"max_iter": 0}, "max_iter"),
    ({"batch_rows": 0}, "batch_rows"),
])
def test_options_are_checked_before_any_file_is_opened(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        logitshift.fit_file(tmp_path / "not-there.parquet", "y", "f", **options)


def test_a_file_named_twice_is_read_once(tmp_path, data):
    labels, offsets, _ = data
    (tmp_path / "part").mkdir()
    pq.write_table(pa.table({"y": labels, "f": offsets}), tmp_path / "part" / "a.parquet")
    result = logitshift.fit_file([tmp_path / "part", str(tmp_path / "part" / "*.parquet")],
                                 "y", "f")
    assert result.n_rows == N


def test_files_are_closed_when_a_batch_is_refused(tmp_path, data):
    labels, offsets, _ = data
    labels = labels.copy()
    labels[5] = 7
    path = tmp_path / "bad.csv"
    path.write_text(csv_text(labels, offsets))
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    errors = []
    for _ in range(5):
        with pytest.raises(InputError) as caught:
            logitshift.fit_file(path, "y", "f")
        errors.append(caught.value)  # kept alive, as a caller may keep them
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) <= descriptors


def test_a_refused_batch_stops_the_reader_and_closes_the_file(tmp_path, data):
    """The next batch is being read while the sketch refuses this one."""
    labels, offsets, _ = data
    labels = labels.copy()
    labels[1_500] = 2
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"y": labels, "f": offsets}), path, row_group_size=500)
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    errors = []
    for _ in range(5):
        with pytest.raises(InputError, match=r"label y\[1500\] = 2 is outside") as caught:
            logitshift.fit_file(path, "y", "f", batch_rows=500)
        errors.append(caught.value)  # kept alive, as a caller may keep them
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) <= descriptors


def test_a_refused_batch_waits_for_the_batch_being_read(tmp_path, data, monkeypatch):
    """The sketch refuses a batch while the next is still being read: the error reaches the
    caller once the reader has stopped, and the file is closed after it."""
    import threading
    import time

    labels, offsets, _ = data
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"y": labels, "f": offsets}), path, row_group_size=500)
    reading = threading.Event()
    real_batches, real_update = logitshift._sources.files.iter_batches, logitshift.Sketch.update

    def slow_batches(*args, **kwargs):
        for number, batch in enumerate(real_batches(*args, **kwargs)):
            if number == 1:
                reading.set()
                time.sleep(0.3)  # the second batch takes a while to read
            yield batch

    def refusing_update(self, *args, **kwargs):
        assert reading.wait(5)  # refuse the first batch while the second is being read
        raise InputError("refused", argument="y")

    monkeypatch.setattr(logitshift._sources.files, "iter_batches", slow_batches)
    monkeypatch.setattr(logitshift.Sketch, "update", refusing_update)
    with pytest.raises(InputError, match="refused"):
        logitshift.fit_file(path, "y", "f", batch_rows=500)
    monkeypatch.setattr(logitshift.Sketch, "update", real_update)


def test_sketch_update_takes_a_thread_count(data):
    labels, offsets, weights = data
    reference = logitshift.Sketch().update(labels, offsets, weights)
    for threads in (1, 2, 5):
        sketch = logitshift.Sketch().update(labels, offsets, weights, threads=threads)
        assert sketch.solve().shift == pytest.approx(reference.solve().shift, rel=1e-15)
    with pytest.raises(InputError, match="threads"):
        logitshift.Sketch().update(labels, offsets, threads=0)


def test_row_groups_decoded_two_at_a_time_give_the_arrays_fit(tmp_path, monkeypatch):
    # Row groups of about a batch are decoded two at a time, each by its own reader: the
    # batches still arrive in order (the sketch, and a bad row's number, say so).
    rng = np.random.default_rng(8)
    n = 10_000
    y, f = (rng.random(n) < 0.3).astype(np.int8), rng.normal(0, 2, n)
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.table({"y": y, "f": f}), path, row_group_size=1_000)
    decoded = []
    original = pq.ParquetFile.read_row_group

    def spy(self, index, *args, **kwargs):
        decoded.append(index)
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    result = logitshift.fit_file(path, "y", "f", batch_rows=1_000)
    assert sorted(decoded) == list(range(10))
    assert result.shift == logitshift.fit(y, f).shift and result.n_rows == n
    f[4_321] = np.nan
    pq.write_table(pa.table({"y": y, "f": f}), path, row_group_size=1_000)
    with pytest.raises(InputError, match=r"offset\[4321\] is nan"):
        logitshift.fit_file(path, "y", "f", batch_rows=1_000)
