"""A CSV group column is read as what it is: int64 where every cell is an integer as Python
writes it, bool where every cell is true or false, text exactly as written otherwise; no two
labels that are written differently are ever one group, and a cell that cannot be a label is
refused by file, column and row. Each answer is held to `logitshift.fit_groups` on the same
rows in memory with the labels expected, and to `logitshift.fit` on each group's own rows."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift._sources.files
import logitshift.io

REPEATS = 6  # rows per label, both classes among them


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def rows_of(cells: list[str], repeats: int = REPEATS, seed: int = 0):
    """Each cell ``repeats`` times, interleaved, with labels of both classes and offsets."""
    rng = np.random.default_rng(seed)
    n = len(cells) * repeats
    written = [cells[i % len(cells)] for i in range(n)]
    y = (np.arange(n) // len(cells) + np.arange(n) // (3 * len(cells))) % 2  # 0 1 1 0 1 0
    offset = np.round(rng.normal(0.0, 1.0, n), 6)
    return written, y, offset


def csv_bytes(written: list[str], y, offset, *, newline: str = "\n", header: str = "y,g,f"
              ) -> bytes:
    """The rows as CSV, each group cell exactly as given (quotes and all)."""
    lines = [header] + [f"{a},{g},{float(f)!r}" for a, g, f in zip(y, written, offset)]
    return (newline.join(lines) + newline).encode("utf-8")


def labels_array(labels: list) -> np.ndarray:
    kinds = {type(label) for label in labels}
    if kinds == {int}:
        return np.array(labels, dtype=np.int64)
    if kinds == {bool}:
        return np.array(labels, dtype=bool)
    array = np.empty(len(labels), dtype=object)
    array[:] = labels
    return array


def assert_groups_are(actual, y, offset, labels: list) -> None:
    """The fit of the file is `fit_groups` of the rows with ``labels`` as their groups: the
    same groups, of the same type, the same rows in each, each shift to 1e-12; and each
    group's shift is `fit` on that group's rows."""
    groups = labels_array(labels)
    expected = quietly(logitshift.fit_groups, y, groups, offset)
    assert actual.groups.tolist() == expected.groups.tolist()
    assert [type(k) for k in actual.groups.tolist()] == \
        [type(k) for k in expected.groups.tolist()]
    assert actual.n_rows.tolist() == expected.n_rows.tolist()
    finite = np.isfinite(expected.shift)
    assert (actual.shift[~finite] == expected.shift[~finite]).all()
    assert np.max(np.abs(actual.shift[finite] - expected.shift[finite]), initial=0) <= 1e-12
    rows: dict = {}
    for row, label in enumerate(labels):
        rows.setdefault((type(label), label), []).append(row)
    for key, shift in zip(actual.groups.tolist(), actual.shift):
        mine = rows[type(key), key]
        alone = quietly(logitshift.fit, y[mine], offset[mine]).shift
        assert shift == pytest.approx(alone, abs=1e-9), key


def fit_file(path, **options):
    return quietly(logitshift.fit_groups_file, path, label="y", group="g", offset="f",
                   **options)


@pytest.fixture
def small_blocks(monkeypatch):
    """CSV read in blocks of 4 KB: a file of many batches, its group column's kind told from
    the first."""
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 12)
    monkeypatch.setattr(logitshift._sources.files, "_CSV_SAMPLE_BYTES", 1 << 11)


# -- the cases: labels that were merged ----------------------------------------------


@pytest.mark.parametrize("cells, labels", [
    pytest.param(["007", "7"], ["007", "7"], id="leading-zeros"),
    pytest.param(["0x1", "1"], ["0x1", "1"], id="hex"),
    pytest.param(["true", "false", "1", "0"], ["true", "false", "1", "0"],
                 id="booleans-beside-1-and-0"),
    pytest.param(["-0", "0"], ["-0", "0"], id="negative-zero"),
    pytest.param(["+1", "1"], ["+1", "1"], id="plus-sign"),
    pytest.param(["1.0", "1e0", "1", "1.00"], ["1.0", "1e0", "1", "1.00"], id="decimals"),
    pytest.param([" 1", "1", "1 "], [" 1", "1", "1 "], id="spaces-around-integers"),
    pytest.param(["\u0661", "1"], ["\u0661", "1"], id="arabic-indic-digit"),
    pytest.param(["1_000", "1000"], ["1_000", "1000"], id="underscore"),
    pytest.param(["inf", "-inf", "nan0"], ["inf", "-inf", "nan0"], id="float-words"),
])
def test_labels_written_differently_are_different_groups(tmp_path, cells, labels):
    written, y, offset = rows_of(cells)
    path = tmp_path / "g.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    expected = [labels[cells.index(cell)] for cell in written]
    assert_groups_are(fit_file(path), y, offset, expected)


def test_shifts_of_007_and_7_are_each_fit_on_their_own_rows(tmp_path):
    written, y, offset = rows_of(["007", "7"], repeats=40)
    path = tmp_path / "g.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    result = fit_file(path)
    assert result.groups.tolist() == ["007", "7"]
    for key in ("007", "7"):
        mine = np.array(written) == key
        assert result.fit_of(key).shift == pytest.approx(
            logitshift.fit(y[mine], offset[mine]).shift, abs=1e-12)


# -- what each kind is read as -----------------------------------------------------------------


@pytest.mark.parametrize("cells, labels", [
    pytest.param(["-5", "0", "12", "9223372036854775807", "-9223372036854775808"],
                 [-5, 0, 12, 2**63 - 1, -2**63], id="integers-to-int64-bounds"),
    pytest.param(['"1"', "1", "2"], [1, 1, 2], id="quoting-is-csv-syntax"),
    pytest.param(["true", "false"], [True, False], id="booleans"),
    pytest.param(["True", "true", "TRUE", "false", "FALSE"], [True, True, True, False, False],
                 id="booleans-in-every-case-are-one-label"),
    pytest.param(["9223372036854775808", "9223372036854775807"],
                 ["9223372036854775808", "9223372036854775807"], id="beyond-int64-is-text"),
    pytest.param(["tRue", "true"], ["tRue", "true"], id="mixed-case-true-is-text"),
    pytest.param(['"007"', "7"], ["007", "7"], id="quoted-leading-zeros"),
])
def test_each_kind_of_label(tmp_path, cells, labels):
    written, y, offset = rows_of(cells)
    path = tmp_path / "g.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    expected = [labels[cells.index(cell)] for cell in written]
    assert_groups_are(fit_file(path), y, offset, expected)


# -- hostile files ------------------------------------------------------------------------------


UNICODE = ["Zürich", "Zu\u0308rich", "zürich", "東京", "🙂", "İstanbul", "\u200b"]


@pytest.mark.parametrize("cells, labels", [
    pytest.param(UNICODE, UNICODE, id="unicode-nfc-nfd-and-case-apart"),
    pytest.param(['"a,b"', "a", "b"], ["a,b", "a", "b"], id="comma-in-quotes"),
    pytest.param(['"say ""hi"""', "say hi"], ['say "hi"', "say hi"], id="escaped-quotes"),
    pytest.param(['"a\nb"', "a", "b"], ["a\nb", "a", "b"], id="newline-in-quotes"),
    pytest.param(["x" * 10_000 + "a", "x" * 10_000 + "b"],
                 ["x" * 10_000 + "a", "x" * 10_000 + "b"], id="very-long-labels"),
    pytest.param(["FR", "FR ", " FR", "fr"], ["FR", "FR ", " FR", "fr"],
                 id="spaces-and-case-are-kept"),
    pytest.param(["0", "00", "000"], ["0", "00", "000"], id="zeros"),
    pytest.param(["1", "01", "-1", "-01"], ["1", "01", "-1", "-01"], id="signed-leading-zeros"),
    pytest.param(["12345678901234567890", "12345678901234567891"],
                 ["12345678901234567890", "12345678901234567891"], id="twenty-digit-ids"),
    pytest.param(["1", "1\u00a0"], ["1", "1\u00a0"], id="no-break-space"),
])
def test_hostile_labels_are_kept_as_written(tmp_path, cells, labels):
    written, y, offset = rows_of(cells)
    path = tmp_path / "g.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    expected = [labels[cells.index(cell)] for cell in written]
    assert_groups_are(fit_file(path), y, offset, expected)


def test_a_byte_order_mark_and_crlf_line_ends(tmp_path):
    # The BOM before the group column's name, \r\n after each row: neither reaches a label.
    written, y, offset = rows_of(["7", "007", "FR"])
    lines = ["g,y,f"] + [f"{g},{a},{float(f)!r}" for a, g, f in zip(y, written, offset)]
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    assert_groups_are(fit_file(path), y, offset, written)


@pytest.mark.parametrize("cells, labels", [
    pytest.param(["1", "2"], [1, 2], id="integers"),
    pytest.param(["007", "7"], ["007", "7"], id="text"),
])
def test_gzip(tmp_path, cells, labels):
    written, y, offset = rows_of(cells)
    path = tmp_path / "g.csv.gz"
    path.write_bytes(gzip.compress(csv_bytes(written, y, offset)))
    expected = [labels[cells.index(cell)] for cell in written]
    assert_groups_are(fit_file(path), y, offset, expected)


def _integers_then(cell: str, n_bytes: int, seed: int = 1):
    """Canonical integer labels for about ``n_bytes`` of CSV, then ``cell`` on the next two
    rows (one of each class), then integers again, some written as the cell's neighbours."""
    rng = np.random.default_rng(seed)
    n = n_bytes // 9 + 1  # rows take 10 to 14 bytes
    written = [str(k) for k in rng.integers(-50, 50, n)] + [cell, cell] + ["7", "-3"] * 20
    y = np.concatenate([rng.integers(0, 2, n), [0, 1], np.tile([0, 1], 20)])
    offset = np.round(rng.normal(0.0, 1.0, len(written)), 4)
    return written, y, offset


@pytest.mark.parametrize("cell", ["2.5", "FR", "007", "-0", "+7", "0x7", "1e3",
                                  "99999999999999999999"])
def test_integers_for_more_than_a_megabyte_then_another_label(tmp_path, cell):
    # Past the first MB (the sample) and, in a second case, past the first block: the whole
    # column is text, and each integer before the cell is the text it was written as.
    written, y, offset = _integers_then(cell, 1 << 20)
    path = tmp_path / "late.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    assert path.read_bytes().index(f",{cell},".encode()) > 1 << 20
    assert_groups_are(fit_file(path), y, offset, written)


@pytest.mark.parametrize("cell", ["2.5", "FR", "007", "-0"])
def test_integers_for_many_batches_then_another_label(tmp_path, small_blocks, cell):
    written, y, offset = _integers_then(cell, 40_000)
    path = tmp_path / "late.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    assert len(list(logitshift.io.iter_batches(path, ["g"], keys=["g"]))) > 5
    assert_groups_are(fit_file(path), y, offset, written)


def test_integers_read_in_batches_come_as_int64_until_a_cell_is_not_one(tmp_path,
                                                                         small_blocks):
    written, y, offset = _integers_then("FR", 40_000)
    path = tmp_path / "late.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    kinds = [batch["g"].type for batch in logitshift.io.iter_batches(path, ["g"], keys=["g"])]
    switch = kinds.index(pa.string())
    assert set(kinds[:switch]) == {pa.int64()} and set(kinds[switch:]) == {pa.string()}


# -- refused, by file, column and row ----------------------------------------------------------


@pytest.mark.parametrize("cell, what", [
    pytest.param("", "is missing", id="empty"),
    pytest.param('""', "is missing", id="quoted-empty"),
    pytest.param("NA", "is missing", id="NA"),
    pytest.param("null", "is missing", id="null"),
    pytest.param("NaN", "is missing", id="NaN"),
    pytest.param(" ", "= ' ' is blank (only whitespace)", id="space"),
    pytest.param("\t", "= '\\t' is blank (only whitespace)", id="tab"),
    pytest.param('"   "', "= '   ' is blank (only whitespace)", id="quoted-spaces"),
])
@pytest.mark.parametrize("others", [["1", "2"], ["FR", "DE"], ["true", "false"]],
                         ids=["integers", "text", "booleans"])
def test_a_missing_or_blank_group_is_refused_by_row(tmp_path, cell, what, others):
    written, y, offset = rows_of(others)
    written[7] = cell
    path = tmp_path / "holes.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    with pytest.raises(logitshift.InputError) as error:
        fit_file(path)
    assert str(error.value).startswith(f"{str(path)!r}: column 'g': group[7] {what}")
    assert str(error.value).endswith("every row needs a group")
    assert error.value.index == 7 and error.value.argument == "g"


def test_a_blank_group_after_many_batches_of_integers_is_refused_by_row(tmp_path,
                                                                        small_blocks):
    written, y, offset = _integers_then("  ", 40_000)
    path = tmp_path / "blank.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    with pytest.raises(logitshift.InputError) as error:
        fit_file(path)
    row = written.index("  ")
    assert str(error.value) == (f"{str(path)!r}: column 'g': group[{row}] = '  ' is blank "
                                "(only whitespace): every row needs a group")


def test_a_label_that_is_not_utf8_is_refused_by_row(tmp_path):
    written, y, offset = rows_of(["Bern", "Genf"])
    data = csv_bytes(written, y, offset).replace(b"Genf", "Gen\u00e8ve".encode("latin-1"), 1)
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    with pytest.raises(logitshift.InputError) as error:
        fit_file(path)
    assert str(error.value) == (f"{str(path)!r}: column 'g': group[1] = b'Gen\\xe8ve' is not "
                                "UTF-8 text: save the file as UTF-8")
    assert error.value.index == 1


def test_booleans_then_another_label_in_a_later_batch_are_refused_as_a_change_of_type(
        tmp_path, small_blocks):
    # True and true are one label: the booleans cannot be turned back into what was
    # written, so the later cell is refused, by row, saying how to read the column as text.
    n = 3000
    written = ["true", "false", "TRUE"] * n + ["maybe", "true"]
    y = np.tile([0, 1], len(written) // 2)
    offset = np.zeros(len(written))
    path = tmp_path / "late.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    with pytest.raises(logitshift.InputError) as error:
        fit_file(path)
    message = str(error.value)
    assert message.startswith(f"{str(path)!r}: column 'g': group[{3 * n}] = 'maybe' is not "
                              "true or false: the group column's type changed. It was read "
                              "as booleans from its first rows (about 4 KB)")
    assert message.endswith("to read it as text from the start, put a row with another label "
                            "first")
    assert error.value.index == 3 * n and error.value.argument == "g"


def test_booleans_then_another_label_in_the_first_block_are_text(tmp_path):
    written, y, offset = rows_of(["true", "false", "maybe"])
    path = tmp_path / "g.csv"
    path.write_bytes(csv_bytes(written, y, offset))
    assert_groups_are(fit_file(path), y, offset, written)


# -- several files ------------------------------------------------------------------------------


def _two_files(tmp_path, first: list[str], second: list[str]):
    parts = []
    for name, cells, seed in (("a.csv", first, 1), ("b.csv", second, 2)):
        written, y, offset = rows_of(cells, seed=seed)
        (tmp_path / name).write_bytes(csv_bytes(written, y, offset))
        parts.append((written, y, offset))
    (first_cells, first_y, first_offset), (second_cells, second_y, second_offset) = parts
    return (first_cells + second_cells, np.concatenate([first_y, second_y]),
            np.concatenate([first_offset, second_offset]))


@pytest.mark.parametrize("first, second", [
    pytest.param(["7", "8"], ["007", "8"], id="integers-then-text"),
    pytest.param(["007", "8"], ["7", "8"], id="text-then-integers"),
    pytest.param(["7", "8"], ["FR", "8"], id="integers-then-words"),
])
def test_integers_in_one_csv_beside_text_in_another_are_text(tmp_path, first, second):
    written, y, offset = _two_files(tmp_path, first, second)
    result = fit_file([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert_groups_are(result, y, offset, written)


def test_integers_in_two_csvs_stay_integers(tmp_path):
    written, y, offset = _two_files(tmp_path, ["7", "8"], ["8", "-9"])
    result = fit_file([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert_groups_are(result, y, offset, [int(cell) for cell in written])


@pytest.mark.parametrize("first, second", [(["true", "false"], ["1", "0"]),
                                           (["1", "0"], ["true", "false"]),
                                           (["true", "false"], ["yes", "no"])])
def test_booleans_in_one_csv_beside_other_labels_in_another_are_refused(tmp_path, first,
                                                                         second):
    _two_files(tmp_path, first, second)
    with pytest.raises(logitshift.InputError) as error:
        fit_file([tmp_path / "a.csv", tmp_path / "b.csv"])
    message = str(error.value)
    assert message.startswith(f"{str(tmp_path / 'b.csv')!r}: column 'g': its group labels are")
    assert f"those of {str(tmp_path / 'a.csv')!r}" in message
    assert "must hold labels of one kind in every file" in message


def test_csv_integers_beside_parquet_text_are_text(tmp_path):
    written, y, offset = rows_of(["7", "8"])
    (tmp_path / "a.csv").write_bytes(csv_bytes(written, y, offset))
    text, y2, offset2 = rows_of(["007", "8"], seed=5)
    pq.write_table(pa.table({"y": y2, "g": text, "f": offset2}), tmp_path / "b.parquet")
    for order in ([tmp_path / "a.csv", tmp_path / "b.parquet"],
                  [tmp_path / "b.parquet", tmp_path / "a.csv"]):
        result = fit_file(order)
        first_csv = order[0].suffix == ".csv"
        labels = written + text if first_csv else text + written
        assert_groups_are(result, np.concatenate([y, y2] if first_csv else [y2, y]),
                          np.concatenate([offset, offset2] if first_csv else [offset2, offset]),
                          labels)


def test_csv_integers_beside_parquet_integers_stay_integers(tmp_path):
    written, y, offset = rows_of(["7", "8"])
    (tmp_path / "a.csv").write_bytes(csv_bytes(written, y, offset))
    pq.write_table(pa.table({"y": y, "g": np.array([int(c) for c in written]), "f": offset}),
                   tmp_path / "b.parquet")
    result = fit_file([tmp_path / "a.csv", tmp_path / "b.parquet"])
    assert_groups_are(result, np.concatenate([y, y]), np.concatenate([offset, offset]),
                      [int(c) for c in written] * 2)


# -- standard input -------------------------------------------------------------------------------


def test_standard_input_integers_then_text_past_the_first_block(monkeypatch, small_blocks):
    written, y, offset = _integers_then("FR", 40_000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        csv_bytes(written, y, offset))))
    assert_groups_are(fit_file("-"), y, offset, written)


def _cli(stdin: bytes, *extra: str) -> subprocess.CompletedProcess:
    source = str(Path(logitshift.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "logitshift", "fit", "-", "--label", "y",
                           "--offset", "f", "--group", "g", *extra],
                          input=stdin, capture_output=True, timeout=120, env=env)


def test_cli_on_standard_input_integers_then_fr_past_the_first_block():
    # The case: integer groups for more than a block (16 MB) of standard input, then
    # FR. Every label is text, as written, and the shifts are `fit` on each group's rows.
    pattern = [("1", "5", "0.25"), ("0", "5", "-1.5"), ("0", "12", "0.75"),
               ("1", "12", "2.0"), ("0", "5", "0.5")]
    chunk = "".join(",".join(row) + "\n" for row in pattern).encode()
    times = (17 << 20) // len(chunk)
    tail = b"1,FR,0.5\n0,FR,-0.5\n1,FR,1.5\n0,12,0.1\n"
    done = _cli(b"y,g,f\n" + chunk * times + tail, "--json")
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["group"] == ["12", "5", "FR"]
    y = np.array([int(row[0]) for row in pattern] * times + [1, 0, 1, 0])
    g = np.array([row[1] for row in pattern] * times + ["FR", "FR", "FR", "12"])
    f = np.array([float(row[2]) for row in pattern] * times + [0.5, -0.5, 1.5, 0.1])
    for key, shift, n_rows in zip(result["group"], result["shift"], result["n_rows"]):
        mine = g == key
        assert n_rows == mine.sum()
        assert shift == pytest.approx(logitshift.fit(y[mine], f[mine]).shift, abs=1e-9)


def test_cli_on_standard_input_booleans_then_fr_names_column_row_and_the_change():
    rows = (17 << 20) // 9 + 1
    stdin = b"y,g,f\n" + b"1,true,0\n0,false,1\n" * (rows // 2) + b"1,FR,0\n"
    done = _cli(stdin)
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"logitshift: error: standard input: column 'g': "
                               f"group[{rows // 2 * 2}] = 'FR' is not true or false: the group "
                               "column's type changed")


def test_cli_on_standard_input_refuses_a_missing_group_by_row():
    done = _cli(b"y,g,f\n1,007,0\n0,7,1\n1,NA,0\n")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "logitshift: error: standard input: column 'g': group[2] is missing: every row needs "
        "a group"]


# -- the sketch's relabelling, which the above rests on --------------------------------------


def test_relabelled_carries_each_groups_rows_to_its_new_key_and_refuses_a_merge():
    from logitshift._summary.group_sketch import GroupSketch

    written, y, offset = rows_of(["2", "10", "-3"], repeats=30)
    ints = np.array([int(cell) for cell in written])
    sketch = GroupSketch().update(y, ints, offset)
    text = sketch.relabelled([str(key) for key in sketch.keys.tolist()])
    assert text.keys.tolist() == ["-3", "10", "2"]
    for key in (2, 10, -3):
        before, after = sketch.sketch_of(key), text.sketch_of(str(key))
        assert after.solve().shift == before.solve().shift
        assert after.n_rows == before.n_rows
    with pytest.raises(logitshift.InputError, match="relabelling would merge groups"):
        sketch.relabelled(["a", "a", "b"])
    with pytest.raises(logitshift.InputError, match="keys has 2 labels, the sketch 3 groups"):
        sketch.relabelled(["a", "b"])
