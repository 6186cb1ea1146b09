"""The ``logitshift`` command line: ``demo`` and ``fit``, in-process and as a real process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift.io
from logitshift.cli import main

SHIFT_A = -2.1113349054557897
SHIFT_B = -2.481084411309477


def _strict_json(text: str) -> dict:
    """Parse one JSON object; bare Infinity / -Infinity / NaN are not JSON and fail."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in JSON output")

    value = json.loads(text, parse_constant=refuse)
    assert isinstance(value, dict)
    return value


def _run(argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether it returns it or argparse raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _subprocess(args: list[str], cwd, stdin: bytes | None = None):
    return subprocess.run(
        [sys.executable, "-m", "logitshift", *args],
        cwd=cwd, input=stdin, capture_output=True, timeout=60,
    )


def _seed_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)  # the seed notebook's legacy generator, seed 0
    labels = rng.binomial(1, 0.1, 1000)
    offsets = rng.normal(0, 1, 1000)
    return labels, offsets


# -- demo -----------------------------------------------------------------------------------------


def test_seed_numbers_are_the_closed_form_and_the_fit():
    labels, offsets = _seed_data()
    m, k = int(labels.sum()), int((1 - labels).sum())
    assert (m, k) == (108, 892)
    assert math.log(m / k) == SHIFT_A
    assert logitshift.fit(labels).shift == SHIFT_A
    assert logitshift.fit(labels, offsets).shift == SHIFT_B


def test_demo_prints_both_shifts(capsys):
    assert _run(["demo"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    shifts = [line.split()[1] for line in lines if line.split()[:1] == ["shift"]]
    assert shifts == [repr(SHIFT_A), repr(SHIFT_B)]
    a = next(i for i, line in enumerate(lines) if line.startswith("scenario A"))
    b = next(i for i, line in enumerate(lines) if line.startswith("scenario B"))
    assert a < b
    assert repr(SHIFT_A) in "\n".join(lines[a:b])
    assert repr(SHIFT_B) in "\n".join(lines[b:])


def test_demo_json(capsys):
    assert _run(["demo", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1
    report = _strict_json(captured.out)
    assert set(report) == {"scenario_a", "scenario_b"}
    for scenario in report.values():
        assert {"shift", "se", "loss", "iterations"} <= set(scenario)
    assert report["scenario_a"]["shift"] == SHIFT_A
    assert report["scenario_b"]["shift"] == SHIFT_B

    labels, offsets = _seed_data()
    for key, result in (("scenario_a", logitshift.fit(labels)),
                        ("scenario_b", logitshift.fit(labels, offsets))):
        got = report[key]
        assert got["se"] == result.se
        assert got["loss"] == result.loss
        assert got["iterations"] == result.iterations
    assert report["scenario_a"]["iterations"] == 0  # closed form
    assert report["scenario_a"]["loss"] == pytest.approx(
        -(108 * math.log(108 / 1000) + 892 * math.log(892 / 1000)) / 1000, rel=1e-14)


def test_demo_as_a_process(tmp_path):
    done = _subprocess(["demo", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    report = _strict_json(done.stdout.decode())
    assert (report["scenario_a"]["shift"], report["scenario_b"]["shift"]) == (SHIFT_A, SHIFT_B)


# -- fit ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 300
    offsets = rng.normal(0.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(offsets - 1.0)))).astype(np.int64)
    weights = rng.uniform(0.0, 3.0, n)
    return {"clicked": labels, "margin": offsets, "w": weights}


def _write_csv(path, data: dict[str, np.ndarray]) -> None:
    names = list(data)
    rows = zip(*(data[name].tolist() for name in names))
    path.write_text(
        ",".join(names) + "\n" + "".join(",".join(map(repr, row)) + "\n" for row in rows)
    )


def _write_parquet(path, data: dict[str, np.ndarray]) -> None:
    pq.write_table(pa.table({name: pa.array(values) for name, values in data.items()}), path,
                   row_group_size=64)


WRITERS = {"scores.csv": _write_csv, "scores.parquet": _write_parquet}

FIT_OPTIONS = [
    pytest.param([], {}, id="label-only"),
    pytest.param(["--offset", "margin"], {"offset": "margin"}, id="offset"),
    pytest.param(["--offset", "margin", "--weight", "w"], {"offset": "margin", "weight": "w"},
                 id="offset-weight"),
    pytest.param(["--weight", "w", "--pseudo-count", "0.5"], {"weight": "w", "pseudo_count": 0.5},
                 id="weight-pseudo"),
    pytest.param(["--offset", "margin", "--weight", "w", "--pseudo-count", "2"],
                 {"offset": "margin", "weight": "w", "pseudo_count": 2.0}, id="all"),
]
REQUIRED_KEYS = {"shift", "se", "loss", "loss_at_zero", "iterations", "n_rows", "status"}


def _expected(data, options) -> logitshift.ShiftFit:
    return logitshift.fit(
        data["clicked"],
        data[options["offset"]] if "offset" in options else None,
        data[options["weight"]] if "weight" in options else None,
        pseudo_count=options.get("pseudo_count", 0.0),
    )


@pytest.mark.parametrize(("flags", "options"), FIT_OPTIONS)
@pytest.mark.parametrize("filename", list(WRITERS), ids=["csv", "parquet"])
def test_fit_json_matches_the_library(tmp_path, capsys, data, filename, flags, options):
    path = tmp_path / filename
    WRITERS[filename](path, data)
    assert _run(["fit", str(path), "--label", "clicked", *flags, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1
    report = _strict_json(captured.out)
    assert REQUIRED_KEYS <= set(report)

    expected = _expected(data, options)
    assert math.isfinite(expected.shift)
    # The command streams the file through a sketch; fit() may take the closed form: the two
    # agree to rounding.
    for key in ("shift", "se", "loss", "loss_at_zero"):
        assert report[key] == pytest.approx(getattr(expected, key), rel=1e-13, abs=1e-15)
    assert report["iterations"] == expected.iterations
    assert report["status"] == expected.status
    assert report["n_rows"] == 300
    assert report["pseudo_count"] == options.get("pseudo_count", 0.0)
    if "offset" not in options:
        assert report["status"] == "closed_form"
        w = data["w"] if "weight" in options else np.ones(300)
        a = options.get("pseudo_count", 0.0)
        m = float(np.sum(w * data["clicked"]))
        k = float(np.sum(w * (1 - data["clicked"])))
        assert report["shift"] == pytest.approx(math.log((m + a) / (k + a)), rel=1e-14)


@pytest.mark.parametrize("filename", list(WRITERS), ids=["csv", "parquet"])
def test_fit_text_report(tmp_path, capsys, data, filename):
    path = tmp_path / filename
    WRITERS[filename](path, data)
    assert _run(["fit", str(path), "--label", "clicked", "--offset", "margin"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    shift_line = next(line for line in captured.out.splitlines()
                      if line.split()[:1] == ["shift"])
    assert float(shift_line.split()[1]) == _expected(data, {"offset": "margin"}).shift


def test_fit_level_changes_the_interval(tmp_path, capsys, data):
    path = tmp_path / "scores.parquet"
    _write_parquet(path, data)
    reports = {}
    for level in ("0.5", "0.99"):
        assert _run(["fit", str(path), "--label", "clicked", "--offset", "margin",
                     "--level", level, "--json"]) == 0
        reports[level] = _strict_json(capsys.readouterr().out)
    assert reports["0.5"]["level"] == 0.5 and reports["0.99"]["level"] == 0.99
    expected = _expected(data, {"offset": "margin"})
    assert (reports["0.99"]["ci_low"], reports["0.99"]["ci_high"]) == expected.confint(0.99)
    assert reports["0.99"]["ci_low"] < reports["0.5"]["ci_low"] < expected.shift
    assert expected.shift < reports["0.5"]["ci_high"] < reports["0.99"]["ci_high"]


def test_fit_from_stdin(tmp_path, data):
    source = tmp_path / "scores.csv"
    _write_csv(source, data)
    done = _subprocess(["fit", "-", "--label", "clicked", "--offset", "margin", "--weight", "w",
                        "--json"], tmp_path, stdin=source.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    report = _strict_json(done.stdout.decode())
    assert report["shift"] == _expected(data, {"offset": "margin", "weight": "w"}).shift
    assert report["n_rows"] == 300


@pytest.mark.parametrize(
    ("labels", "shift", "status", "warning"),
    [
        pytest.param([0, 0, 0, 0], "-inf", "all_negative", "every label is 0", id="all-zero"),
        pytest.param([1, 1, 1, 1], "inf", "all_positive", "every label is 1", id="all-one"),
    ],
)
def test_degenerate_labels_give_infinity_as_a_string(tmp_path, capsys, labels, shift, status,
                                                     warning):
    path = tmp_path / "flat.csv"
    _write_csv(path, {"clicked": np.array(labels), "margin": np.array([0.5, -1.0, 2.0, 0.0])})
    assert _run(["fit", str(path), "--label", "clicked", "--offset", "margin", "--json"]) == 0
    captured = capsys.readouterr()
    report = _strict_json(captured.out)  # fails on bare Infinity / NaN
    assert report["shift"] == shift
    assert report["status"] == status
    assert report["se"] == "inf"
    assert "Infinity" not in captured.out and "NaN" not in captured.out
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("logitshift: warning:") and warning in captured.err


def test_pseudo_count_makes_all_zero_labels_finite(tmp_path, capsys):
    path = tmp_path / "flat.csv"
    _write_csv(path, {"clicked": np.zeros(6, dtype=np.int64)})
    assert _run(["fit", str(path), "--label", "clicked", "--pseudo-count", "0.5", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    report = _strict_json(captured.out)
    assert report["shift"] == pytest.approx(math.log(0.5 / 6.5), rel=1e-14)
    assert report["shift"] == logitshift.fit(np.zeros(6), pseudo_count=0.5).shift


def test_boolean_label_column(tmp_path, capsys, data):
    path = tmp_path / "bools.parquet"
    labels = data["clicked"].astype(bool)
    _write_parquet(path, {"clicked": labels, "margin": data["margin"]})
    assert _run(["fit", str(path), "--label", "clicked", "--offset", "margin", "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    assert report["shift"] == logitshift.fit(labels, data["margin"]).shift
    assert report["positives"] == float(labels.sum())


# -- errors ---------------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    _write_csv(tmp_path / "ok.csv", {"clicked": np.array([0, 1, 1, 0]),
                                     "margin": np.array([0.1, -0.2, 0.3, 0.0])})
    _write_csv(tmp_path / "range.csv", {"clicked": np.array([0.0, 1.0, 2.0, 0.0]),
                                        "margin": np.array([0.1, -0.2, 0.3, 0.0])})
    _write_parquet(tmp_path / "range.parquet", {"clicked": np.array([0, 1, -1, 0])})
    (tmp_path / "holes.csv").write_text("clicked,margin\n0,0.1\n1,\n")
    (tmp_path / "ok.json").write_text("{}")
    (tmp_path / "header.csv").write_text("clicked,margin\n")
    return tmp_path


ERRORS = [
    pytest.param(["fit", "absent.csv", "--label", "clicked"], "absent.csv", id="missing-file"),
    pytest.param(["fit", "absent.parquet", "--label", "clicked"], "absent.parquet",
                 id="missing-parquet-file"),
    pytest.param(["fit", "ok.csv", "--label", "clicks"], "no column 'clicks'",
                 id="missing-label-column"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--offset", "score"],
                 "no column 'score'", id="missing-offset-column"),
    pytest.param(["fit", "range.csv", "--label", "clicked"],
                 "column 'clicked': label y[2] = 2.0 is outside [0, 1]", id="label-out-of-range"),
    pytest.param(["fit", "range.parquet", "--label", "clicked"],
                 "column 'clicked': label y[2] = -1 is outside [0, 1]",
                 id="label-out-of-range-parquet"),
    pytest.param(["fit", "holes.csv", "--label", "clicked", "--offset", "margin"],
                 "column 'margin' row 1 of 'holes.csv' is missing", id="empty-cell"),
    pytest.param(["fit", "header.csv", "--label", "clicked"], "column 'clicked': y is empty",
                 id="no-rows"),
    pytest.param(["fit", "ok.json", "--label", "clicked"], "cannot tell the format",
                 id="unknown-extension"),
    pytest.param(["fit", "ok.csv", "--offset", "margin"], "--label", id="missing-label-arg"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--level", "1.5"], "level",
                 id="level-above-1"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--level", "0", "--json"], "level",
                 id="level-zero-json"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--level", "high"], "--level",
                 id="level-not-a-number"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--pseudo-count", "-1"],
                 "--pseudo-count -1.0 must be finite", id="negative-pseudo-count"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--offset", "clicked",
                  "--weight", "margin"],
                 "column 'margin': weight[1] = -0.2 must be finite and non-negative",
                 id="negative-weight-column"),
    pytest.param(["frobnicate"], "invalid choice", id="unknown-command"),
    pytest.param([], "command", id="no-command"),
]


@pytest.mark.parametrize(("argv", "fragment"), ERRORS)
def test_errors_exit_2_with_one_line(bad_files, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(bad_files)
    assert _run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("logitshift")
    assert "error" in captured.err
    assert "Traceback" not in captured.err
    assert fragment in captured.err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["fit", "absent.csv", "--label", "clicked"], b"absent.csv",
                     id="missing-file"),
        pytest.param(["fit", "range.csv", "--label", "clicked"], b"column 'clicked'",
                     id="label-out-of-range"),
        pytest.param(["fit", "ok.csv", "--offset", "margin"], b"--label",
                     id="missing-label-arg"),
        pytest.param(["fit", "ok.csv", "--label", "clicked", "--level", "2"], b"level",
                     id="bad-level"),
    ],
)
def test_errors_as_a_process(bad_files, argv, fragment):
    done = _subprocess(argv, bad_files)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.count(b"\n") == 1 and done.stderr.endswith(b"\n"), done.stderr
    assert done.stderr.startswith(b"logitshift")
    assert b"Traceback" not in done.stderr
    assert fragment in done.stderr


def test_fit_streams_batches_and_numbers_rows_from_the_file_start(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr(logitshift.io, "DEFAULT_BATCH_ROWS", 100)
    rng = np.random.default_rng(3)
    offsets = rng.normal(0, 1, 350)
    labels = (rng.random(350) < 0.3).astype(float)
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"y": labels, "f": offsets}), path, row_group_size=100)
    assert len(list(logitshift.io.iter_batches(path, ["y", "f"]))) == 4  # really in pieces
    assert _run(["fit", str(path), "--label", "y", "--offset", "f", "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    assert report["shift"] == pytest.approx(logitshift.fit(labels, offsets).shift, rel=1e-14)
    assert report["n_rows"] == 350 and report["passes"] == 1

    labels[250] = 3.0
    pq.write_table(pa.table({"y": labels, "f": offsets}), path, row_group_size=100)
    assert _run(["fit", str(path), "--label", "y", "--offset", "f"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "y[250] = 3.0 is outside [0, 1]" in err


# -- plot -----------------------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _needs_matplotlib():
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (logitshift[plot])")


def test_demo_plot_writes_a_png_and_the_same_report(tmp_path, capsys):
    _needs_matplotlib()
    out = tmp_path / "demo.png"
    assert _run(["demo", "--json", "--plot", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    report = _strict_json(captured.out)
    assert (report["scenario_a"]["shift"], report["scenario_b"]["shift"]) == (SHIFT_A, SHIFT_B)
    assert out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("filename", list(WRITERS), ids=["csv", "parquet"])
def test_fit_plot_writes_a_png(tmp_path, capsys, data, filename):
    _needs_matplotlib()
    path = tmp_path / filename
    WRITERS[filename](path, data)
    out = tmp_path / "fit.png"
    assert _run(["fit", str(path), "--label", "clicked", "--offset", "margin", "--weight", "w",
                 "--json", "--plot", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    report = _strict_json(captured.out)
    assert report["shift"] == pytest.approx(
        _expected(data, {"offset": "margin", "weight": "w"}).shift, rel=1e-13)
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_fit_plot_of_degenerate_labels(tmp_path, capsys):
    _needs_matplotlib()
    path = tmp_path / "flat.csv"
    _write_csv(path, {"clicked": np.zeros(4, dtype=np.int64),
                      "margin": np.array([0.5, -1.0, 2.0, 0.0])})
    out = tmp_path / "flat.svg"
    assert _run(["fit", str(path), "--label", "clicked", "--offset", "margin",
                 "--plot", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "every label is 0" in captured.err
    assert out.read_bytes().lstrip().startswith((b"<?xml", b"<svg"))


def _plot_error(capsys, argv) -> str:
    assert _run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("logitshift: error:")
    return captured.err


@pytest.mark.parametrize("command", ["demo", "fit"])
def test_plot_without_matplotlib_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch,
                                                           data, command):
    # As if matplotlib were not installed: its modules cannot be imported, nor can ours that
    # needs it, even where an earlier test imported them.
    for name in [name for name in sys.modules if name.partition(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "logitshift.plot", raising=False)
    monkeypatch.delattr(logitshift, "plot", raising=False)
    path = tmp_path / "scores.csv"
    _write_csv(path, data)
    out = tmp_path / "out.png"
    argv = ["demo"] if command == "demo" else ["fit", str(path), "--label", "clicked"]
    err = _plot_error(capsys, [*argv, "--plot", str(out)])
    assert "matplotlib" in err and 'pip install "logitshift[plot]"' in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["demo", "fit"])
def test_plot_to_an_unwritable_path_exits_2(tmp_path, capsys, data, command):
    _needs_matplotlib()
    path = tmp_path / "scores.csv"
    _write_csv(path, data)
    argv = ["demo"] if command == "demo" else ["fit", str(path), "--label", "clicked"]
    out = tmp_path / "no-such-folder" / "out.png"
    err = _plot_error(capsys, [*argv, "--plot", str(out)])
    assert str(out) in err
    err = _plot_error(capsys, [*argv, "--plot", str(tmp_path / "out.frobnicate")])
    assert "--plot" in err and "'frobnicate'" in err and "png" in err


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`logitshift demo | head -1`: the reader has gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "logitshift", "demo"], cwd=tmp_path,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr == b""
    assert done.returncode == 1
