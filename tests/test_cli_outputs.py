"""What the command line writes: never over its own inputs, always whole (atomically), JSON
that strict parsers read, per-group profile intervals; and hostile command lines, each
refused in one line (exit status 2) or answered as the library answers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import logitshift
from logitshift._core.jsonsafe import json_safe
from logitshift.cli import main

FIT = ["--label", "y", "--offset", "f", "--group", "g", "--quiet"]


def _rows(n: int = 600, groups: int = 6, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n)
    offset = rng.normal(size=n)
    effect = rng.normal(0, 0.7, groups)[group]
    label = (rng.random(n) < 1 / (1 + np.exp(-(offset - 1 + effect)))).astype(int)
    label[group == 0] = 0  # one degenerate group: its shift is -inf
    return pd.DataFrame({"y": label, "f": offset, "g": group, "w": rng.random(n) + 0.5})


@pytest.fixture()
def data(tmp_path):
    """A folder with the rows as CSV and as a Parquet dataset (a directory), and odd files."""
    rows = _rows()
    rows.to_csv(tmp_path / "ev.csv", index=False)
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False),
                   tmp_path / "ds" / "part-0.parquet")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("y,f,g\n")
    (tmp_path / "garbage.csv").write_bytes(np.random.default_rng(0).bytes(4000))
    pq.write_table(pa.table({"y": ["a", "b"], "f": ["x", "y"], "g": [1, 2]}),
                   tmp_path / "strings.parquet")
    pq.write_table(pa.table({"y": [0, 1], "f": [0.5, 1.5], "g": [[1], [2]]}),
                   tmp_path / "lists.parquet")
    return tmp_path


def _run(argv) -> int:
    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exc:
        return exc.code


def _refused(capsys, argv, *phrases: str) -> str:
    """Exit status 2, nothing on stdout, exactly one line on stderr (no traceback) holding
    every phrase; the line."""
    status = _run(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2, captured.err
    assert captured.out == ""
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("logitshift") and ": error: " in lines[0]  # argparse's too
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def _strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _reference(rows: pd.DataFrame, **options) -> logitshift.GroupShiftFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return logitshift.fit_groups(rows["y"].to_numpy(float), rows["g"].to_numpy(),
                                     offset=rows["f"].to_numpy(), **options)


# -- item 10: an output is never an input ---------------------------------------------------------

def test_output_over_its_input_is_refused_in_a_real_process(data):
    """The report's case: ``--output ev.csv`` over the input ``ev.csv`` used to replace the
    data with the group table and exit 0."""
    before = (data / "ev.csv").read_bytes()
    done = subprocess.run([sys.executable, "-m", "logitshift", "fit", "ev.csv", *FIT,
                           "--output", "ev.csv"], cwd=data, capture_output=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        "logitshift: error: --output ev.csv: is an input file (ev.csv); writing it would "
        "overwrite the data: name another file"]
    assert (data / "ev.csv").read_bytes() == before


@pytest.mark.parametrize("inputs, flag, output, phrase", [
    pytest.param(["ev.csv"], "--output", "./ev.csv", "is an input file", id="dot-path"),
    pytest.param(["ev.csv"], "--output", "link.csv", "is an input file", id="symlink"),
    pytest.param(["ev.csv"], "--output", "hard.csv", "is an input file", id="hard-link"),
    pytest.param(["rows.png", "--format", "csv"], "--plot", "rows.png", "is an input file",
                 id="plot-over-input"),
    pytest.param(["ev.csv"], "--plot", "ev.csv", "cannot write the format 'csv'",
                 id="plot-over-csv-input"),
    pytest.param(["ds"], "--output", "ds/part-0.parquet", "is an input file",
                 id="file-of-input-directory"),
    pytest.param(["ds"], "--output", "ds/groups.parquet", "lies in the input directory",
                 id="new-parquet-in-input-directory"),
    pytest.param(["ds"], "--output", "ds/deeper/groups.pq", "lies in the input directory",
                 id="parquet-in-input-subdirectory"),
    pytest.param(["*.csv"], "--output", "groups.csv", "matches the input pattern",
                 id="new-file-matching-glob"),
    pytest.param(["*.csv"], "--output", "ev.csv", "is an input file", id="file-of-glob"),
    pytest.param(["header.csv", "ev.csv"], "--output", "ev.csv", "is an input file",
                 id="second-of-several"),
])
def test_an_output_that_is_or_would_be_an_input_is_refused(data, capsys, monkeypatch, inputs,
                                                            flag, output, phrase):
    monkeypatch.chdir(data)
    os.symlink("ev.csv", "link.csv")
    (data / "rows.png").write_bytes((data / "ev.csv").read_bytes())
    os.link("ev.csv", "hard.csv")
    (data / "ds" / "deeper").mkdir()
    before = {path: path.read_bytes() for path in data.rglob("*") if path.is_file()}
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    argv = ["fit", *inputs, "--label", "y", "--offset", "f", "--group", "g", "--quiet",
            flag, output]
    _refused(capsys, argv, f"{flag} {output}:", phrase)
    after = {path: path.read_bytes() for path in data.rglob("*") if path.is_file()}
    assert after == before  # nothing written, nothing removed


def test_outputs_beside_the_inputs_are_written(data, capsys, monkeypatch):
    """What is not an input is written: a CSV table in the Parquet input directory (only
    Parquet files are read from it), a file that a pattern of other files does not match."""
    monkeypatch.chdir(data)
    assert _run(["fit", "ds", *FIT, "--output", "ds/groups.csv"]) == 0
    assert _run(["fit", "ev*.csv", *FIT, "--output", "groups.parquet"]) == 0
    capsys.readouterr()
    expected = _reference(_rows())
    for table in (pacsv.read_csv("ds/groups.csv"), pq.read_table("groups.parquet")):
        assert table["group"].to_pylist() == expected.groups.tolist()
        np.testing.assert_array_equal(table["shift"].to_numpy(), expected.shift)


def test_plot_and_output_naming_one_file_are_refused(data, capsys):
    """Their extensions differ (matplotlib writes no CSV), but a link may join them."""
    pytest.importorskip("matplotlib")
    (data / "out.png").symlink_to("out.csv")
    _refused(capsys, ["fit", data / "ev.csv", *FIT, "--output", data / "out.csv", "--plot",
                      data / "out.png"], "--plot", "--output names the same file")
    assert not (data / "out.csv").exists()


def test_validate_plot_over_its_input_is_refused(data, capsys):
    pytest.importorskip("matplotlib")
    (data / "rows.png").write_bytes((data / "ev.csv").read_bytes())
    _refused(capsys, ["validate", data / "rows.png", "--format", "csv", "--label", "y",
                      "--offset", "f", "--quiet", "--plot", data / "rows.png"],
             "is an input file")
    _refused(capsys, ["fit", data / "rows.png", "--format", "csv", "--label", "y", "--offset",
                      "f", "--quiet", "--plot", data / "rows.png"], "is an input file")


# -- item 10: outputs are written whole or not at all ---------------------------------------------

@pytest.mark.parametrize("name, writer", [("out.csv", "csv"), ("out.parquet", "parquet")])
def test_a_failed_write_leaves_no_partial_file(data, capsys, monkeypatch, name, writer):
    """The writer fails halfway (a full disk): the old table stays as it was, and no
    temporary file is left beside it."""
    def half_then_fail(table, where, *args, **kwargs):
        with open(where, "wb") as file:
            file.write(b"half a table")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pacsv if writer == "csv" else pq,
                        "write_csv" if writer == "csv" else "write_table", half_then_fail)
    target = data / name
    target.write_bytes(b"the previous table")
    argv = ["fit", data / "ev.csv", *FIT, "--pseudo-count", "1", "--output", target]
    line = _refused(capsys, argv)
    assert "No space left on device" in line
    assert target.read_bytes() == b"the previous table"
    assert sorted(path.name for path in data.iterdir() if path.name.startswith(".")) == []
    target.unlink()
    _refused(capsys, argv)
    assert not target.exists()


def test_outputs_replace_old_files_keep_their_permissions_and_links(data, capsys):
    expected = _reference(_rows())
    target = data / "table.csv"
    target.write_text("old")
    target.chmod(0o640)
    link = data / "link-to-table.csv"
    link.symlink_to(target.name)
    assert _run(["fit", data / "ev.csv", *FIT, "--output", link]) == 0
    capsys.readouterr()
    assert link.is_symlink()  # written through the link, not replaced by a file
    assert (target.stat().st_mode & 0o777) == 0o640
    np.testing.assert_array_equal(pacsv.read_csv(target)["shift"].to_numpy(), expected.shift)
    assert [path.name for path in data.iterdir() if path.name.startswith(".")] == []


def test_the_plot_is_written_whole(data, capsys):
    pytest.importorskip("matplotlib")
    path = data / "groups.png"
    assert _run(["fit", data / "ev.csv", *FIT, "--plot", path]) == 0
    capsys.readouterr()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []


# -- item 14: JSON-safe results ------------------------------------------------------------------

def _same(value, original) -> bool:
    """A JSON-safe value equals the original: strings for non-finite floats."""
    if isinstance(original, dict):
        return original.keys() == value.keys() and all(
            _same(value[key], item) for key, item in original.items())
    if isinstance(original, (list, tuple, np.ndarray)):
        return len(value) == len(original) and all(map(_same, value, original))
    if isinstance(original, (float, np.floating)) and not math.isfinite(original):
        return isinstance(value, str) and (math.isnan(float(value)) if math.isnan(original)
                                           else float(value) == original)
    return value == original and type(value) is not np.generic


def _results() -> dict:
    rows = _rows()
    y, f = rows["y"].to_numpy(float), rows["f"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "degenerate ShiftFit": logitshift.fit(np.zeros(5), np.arange(5.0)),
            "ShiftFit": logitshift.fit(y, f),
            "degenerate SlopeFit": logitshift.fit_slope(np.zeros(5), np.arange(5.0)),
            "CalibrationReport": logitshift.validate(y, f),
            "degenerate CalibrationReport": logitshift.validate(np.zeros(5), np.arange(5.0)),
            "GroupShiftFit": _reference(rows),
            "random GroupShiftFit": _reference(rows, shrinkage="random"),
        }


def test_to_dict_json_safe_is_strict_json_and_the_same_values():
    for name, result in _results().items():
        plain = result.to_dict()
        safe = result.to_dict(json_safe=True)
        text = json.dumps(safe, allow_nan=False)  # bare inf or nan would raise here
        assert _same(json.loads(text), plain), name
        assert _same(safe, plain), name
    # The default form keeps its floats (and bare infinities), as before.
    degenerate = _results()["degenerate ShiftFit"].to_dict()
    assert degenerate["shift"] == -math.inf
    with pytest.raises(ValueError):
        json.dumps(degenerate, allow_nan=False)


def test_json_safe_leaves_its_input_alone_and_converts_numpy():
    record = {"a": np.float64(np.inf), "b": [np.nan, np.int64(3)], "c": (np.bool_(True),),
              "d": np.array([1.0, -np.inf]), "e": np.datetime64("2024-01-02")}
    copy = dict(record)
    safe = json_safe(record)
    assert record == copy and record["b"][0] != record["b"][0]
    assert safe == {"a": "inf", "b": ["nan", 3], "c": [True], "d": [1.0, "-inf"],
                    "e": "2024-01-02"}
    assert type(safe["b"][1]) is int and type(safe["c"][0]) is bool


def test_cli_json_is_the_library_json_safe_form(data, capsys):
    rows = _rows()
    assert _run(["fit", data / "ev.csv", *FIT, "--json"]) == 0
    record = _strict_json(capsys.readouterr().out)
    expected = _reference(rows).to_dict(json_safe=True)
    assert {key: record[key] for key in expected} == expected
    assert record["shift"][0] == "-inf" and record["level"] == 0.95


# -- item 14: one name for the column of groups ---------------------------------------------------

def test_table_and_to_dict_name_the_same_columns():
    result = _reference(_rows(), shrinkage="random")
    table, plain = result.table(), result.to_dict()
    assert list(table.columns) == [name for name in plain if name in set(table.columns)]
    assert set(table.columns) <= set(plain) and "groups" not in plain
    for name in table.columns:
        assert len(plain[name]) == len(table) and all(
            a == b or (a != a and b != b) for a, b in zip(plain[name], table[name].tolist()))


# -- item 14: per-group profile intervals --------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"pseudo_count": 0.5}, {"shrinkage": "random"}],
                         ids=["ml", "pseudo", "random"])
@pytest.mark.parametrize("level", [0.95, 0.5, 1 - 1e-9])
def test_group_confint_is_each_groups_own_fit(options, level):
    """Every group's profile interval, all at once, equals ``fit_of(key).confint``: finite
    groups, the degenerate group (one infinite end) and every level."""
    result = _reference(_rows(), **options)
    low, high = result.confint(level)
    wald = result.confint(level, method="wald")
    for i, key in enumerate(result.groups.tolist()):
        single = result.fit_of(key)
        assert (low[i], high[i]) == pytest.approx(single.confint(level), rel=1e-12,
                                                  abs=1e-12)
        assert (wald[0][i], wald[1][i]) == pytest.approx(single.confint(level, "wald"),
                                                         rel=1e-12, abs=1e-12)
    assert math.isinf(result.shift[0]) == ("pseudo_count" not in options)
    some = result.groups[[3, 0]].tolist()
    picked = result.confint(level, keys=some)
    assert np.array_equal(picked[0], low[[3, 0]]) and np.array_equal(picked[1], high[[3, 0]])
    with pytest.raises(KeyError):
        result.confint(level, keys=["no such group"])


def test_group_confint_with_many_groups_against_single_fits():
    rng = np.random.default_rng(7)
    n, groups = 20_000, 2_000
    g = rng.integers(0, groups, n)
    f = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-f))).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = logitshift.fit_groups(y, g, offset=f)
    low, high = result.confint(0.9)
    assert np.isinf(result.shift).sum() > 10  # degenerate groups among them
    for i in range(0, groups, 97):
        expected = result.fit_of(result.groups[i].item()).confint(0.9)
        assert (low[i], high[i]) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_cli_prints_profile_intervals_per_group(data, capsys):
    rows = _rows()
    assert _run(["fit", data / "ev.csv", *FIT, "--level", "0.9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if "groups of largest" in line)
    assert "90% CI (profile)" in lines[header + 1] and "Wald" not in "\n".join(lines)
    expected = _reference(rows)
    for line in lines[header + 2:]:
        key = int(line.split()[0])
        low, high = expected.fit_of(key).confint(0.9)
        assert f"[{low:.6g}, {high:.6g}]" in line


# -- hostile command lines ------------------------------------------------------------------------

HOSTILE = [
    pytest.param(["fit", "ev.csv", "--label", "nope", "--group", "g"], ["no column 'nope'"],
                 id="missing-label-column"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--group", "nope"], ["no column 'nope'"],
                 id="missing-group-column"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--offset", "nope", "--group", "g"],
                 ["no column 'nope'"], id="missing-offset-column"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--group", "y"],
                 ["group names the column 'y', which is also the label"],
                 id="group-is-the-label"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--offset", "f", "--group", "f"],
                 ["which is also the offset"], id="group-is-the-offset"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "ds"], ["--output ds:"],
                 id="output-is-a-directory"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "ds.csv/"], ["--output ds.csv/:"],
                 id="output-with-a-slash"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "/proc/groups.csv"],
                 ["--output /proc/groups.csv: cannot write it"], id="output-unwritable"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "no/such/dir/groups.csv"],
                 ["there is no directory 'no/such/dir'"], id="output-in-missing-directory"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "groups.txt"],
                 ["--output groups.txt: name a .csv or .parquet file"],
                 id="output-unknown-extension"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "groups"],
                 ["name a .csv or .parquet file"], id="output-without-extension"),
    pytest.param(["fit", "ev.csv", *FIT, "--output", "-"], ["--output -:"],
                 id="output-to-stdout"),
    pytest.param(["fit", "ev.csv", *FIT, "--top", "0"], ["--top 0 must be a positive"],
                 id="top-0"),
    pytest.param(["fit", "ev.csv", *FIT, "--top", "-1"], ["--top -1 must be a positive"],
                 id="top-negative"),
    pytest.param(["fit", "ev.csv", *FIT, "--top", "1.5"], ["--top", "invalid int value"],
                 id="top-not-an-integer"),
    pytest.param(["fit", "ev.csv", *FIT, "--nagq", "3"], ["--nagq applies to --shrink only"],
                 id="nagq-without-shrink"),
    pytest.param(["fit", "ev.csv", *FIT, "--shrink", "--nagq", "0"],
                 ["--nagq 0 must be a positive integer"], id="nagq-0"),
    pytest.param(["fit", "ev.csv", *FIT, "--shrink", "--nagq", "101"],
                 ["--nagq 101 must be at most 100"], id="nagq-too-many"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--offset", "f", "--shrink"],
                 ["--shrink applies to per-group fits"], id="shrink-without-group"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--output", "o.csv"],
                 ["--output applies to per-group fits"], id="output-without-group"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--top", "3"],
                 ["--top applies to per-group fits"], id="top-without-group"),
    pytest.param(["fit", "ev.csv", *FIT, "--se-type", "robust"],
                 ["--se-type robust does not apply to per-group fits"], id="robust-groups"),
    pytest.param(["fit", "ev.csv", *FIT, "--level", "1"], ["--level 1.0 must be between"],
                 id="level-1-groups"),
    pytest.param(["fit", "ev.csv", "--label", "y", "--group", "g", "--offset-is",
                  "probability"], ["--offset-is probability needs --offset"],
                 id="probability-without-offset"),
    pytest.param(["fit", "ev.csv", *FIT, "--pseudo-count", "-1"],
                 ["--pseudo-count -1.0 must be"], id="negative-pseudo-count"),
    pytest.param(["fit", "empty.csv", *FIT], ["empty.csv"], id="empty-file"),
    pytest.param(["fit", "header.csv", *FIT], ["y is empty"], id="header-only"),
    pytest.param(["fit", "garbage.csv", *FIT], ["garbage.csv"], id="binary-garbage"),
    pytest.param(["fit", "strings.parquet", *FIT],
                 ["column 'y' of 'strings.parquet' must be numeric, got string"],
                 id="parquet-string-labels"),
    pytest.param(["fit", "missing.csv", *FIT], ["missing.csv"], id="missing-file"),
    pytest.param(["fit", "nothing*.csv", *FIT], ["no files match 'nothing*.csv'"],
                 id="glob-without-match"),
    pytest.param(["fit", "ev.csv", *FIT, "--plot", "groups.xyz"],
                 ["cannot write the format 'xyz'"], id="plot-unknown-format"),
    pytest.param(["fit", "ev.csv", *FIT, "--plot", "ds"], ["--plot ds: is a directory"],
                 id="plot-is-a-directory"),
    pytest.param(["fit", "-", "ev.csv", *FIT], ["standard input ('-') cannot be read along"],
                 id="stdin-with-files"),
]


@pytest.mark.parametrize("argv, phrases", HOSTILE)
def test_hostile_command_lines_are_refused_in_one_line(data, capsys, monkeypatch, argv,
                                                       phrases):
    if "--plot" in argv:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(data)
    before = sorted(path.name for path in data.rglob("*"))
    _refused(capsys, argv, *phrases)
    assert sorted(path.name for path in data.rglob("*")) == before  # nothing left behind


def test_huge_top_lists_every_group_and_json_with_output_writes_both(data, capsys):
    rows = _rows()
    expected = _reference(rows)
    assert _run(["fit", data / "ev.csv", *FIT, "--top", str(10 ** 18)]) == 0
    out = capsys.readouterr().out
    finite = int(np.isfinite(expected.shift).sum())
    assert f"the {finite} groups of largest |shift|" in out
    target = data / "groups.parquet"
    assert _run(["fit", data / "ev.csv", *FIT, "--json", "--output", target]) == 0
    record = _strict_json(capsys.readouterr().out)
    table = pq.read_table(target)
    assert record["group"] == table["group"].to_pylist() == expected.groups.tolist()
    np.testing.assert_array_equal(table["shift"].to_numpy(), expected.shift)


def test_hostile_inputs_in_real_processes(data):
    """As a shell runs them: garbage on standard input, an output over a file of the input
    directory, and a Parquet file of the wrong types; one line each, status 2."""
    cases = [
        (["fit", "-", *FIT], np.random.default_rng(1).bytes(5000), "standard input"),
        (["fit", "ds", *FIT, "--output", "ds/part-0.parquet"], None, "is an input file"),
        (["fit", "strings.parquet", *FIT, "--json"], None, "must be numeric, got string"),
    ]
    for argv, stdin, phrase in cases:
        done = subprocess.run([sys.executable, "-m", "logitshift", *argv], cwd=data,
                              input=stdin, capture_output=True, timeout=120)
        err = done.stderr.decode(errors="replace")
        assert done.returncode == 2, err
        assert done.stdout == b""
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert phrase in err, err
