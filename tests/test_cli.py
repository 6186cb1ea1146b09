"""The ``logitshift`` command line: ``demo``, ``fit`` and ``validate``, in-process and as a
real process."""

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
import logitshift._sources.files
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
    monkeypatch.setattr(logitshift._sources.files, "DEFAULT_BATCH_ROWS", 100)
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


def _plot_argv(command: str, path) -> list[str]:
    if command == "demo":
        return ["demo"]
    if command == "fit":
        return ["fit", str(path), "--label", "clicked"]
    return ["validate", str(path), "--label", "clicked", "--offset", "margin"]


@pytest.mark.parametrize("command", ["demo", "fit", "validate"])
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
    err = _plot_error(capsys, [*_plot_argv(command, path), "--plot", str(out)])
    assert "matplotlib" in err and 'pip install "logitshift[plot]"' in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["demo", "fit", "validate"])
def test_plot_to_an_unwritable_path_exits_2(tmp_path, capsys, data, command):
    _needs_matplotlib()
    path = tmp_path / "scores.csv"
    _write_csv(path, data)
    argv = _plot_argv(command, path)
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


# -- validate -------------------------------------------------------------------------------------

#: The statistics ``val.prob`` prints, by its names, that the text report lists.
VAL_PROB_NAMES = ("Dxy", "C (ROC)", "U:Chi-sq", "U:p", "Brier", "Intercept", "Slope", "E90",
                  "S:z", "S:p")


@pytest.fixture(scope="module")
def risks(data) -> dict[str, np.ndarray]:
    """The fixture's scores as probabilities, with a few certain ones that agree with their
    labels."""
    p = 1 / (1 + np.exp(-data["margin"]))
    labels = data["clicked"]
    p[:6] = labels[:6].astype(float)
    return {"clicked": labels, "margin": data["margin"], "risk": p, "w": data["w"]}


def _report_lines(text: str) -> dict[str, str]:
    lines = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition("  ")
        lines[name] = value.strip()
    return lines


@pytest.mark.parametrize("filename", list(WRITERS), ids=["csv", "parquet"])
def test_validate_json_is_the_streamed_report(tmp_path, capsys, risks, filename):
    path = tmp_path / filename
    WRITERS[filename](path, risks)
    assert _run(["validate", str(path), "--label", "clicked", "--offset", "risk", "--weight",
                 "w", "--offset-is", "probability", "--bins", "6", "--level", "0.9",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1
    record = _strict_json(captured.out)
    expected = logitshift.validate_file(path, "clicked", "risk", "w", offset_is="probability",
                                        bins=6, level=0.9)
    for key, value in expected.to_dict().items():
        if key not in ("shift_ci_low", "shift_ci_high"):  # at --level, below
            assert record[key] == value, key
    assert record["level"] == 0.9 and len(record["curve"]["weight"]) == 6
    assert (record["shift_ci_low"], record["shift_ci_high"]) == expected.shift.confint(0.9)
    intervals = expected.slope.confint(0.9)
    assert (record["slope_low"], record["slope_high"]) == intervals.slope
    assert (record["intercept_low"], record["intercept_high"]) == intervals.intercept
    # And the arrays in memory, to 1e-12 (the c-statistic within its bound).
    in_memory = logitshift.validate(risks["clicked"], risks["risk"], risks["w"],
                                    offset_is="probability", bins=6, level=0.9)
    for key in ("brier", "spiegelhalter_z", "intercept", "slope", "miller_joint",
                "calibration_in_the_large"):
        assert record[key] == pytest.approx(in_memory.to_dict()[key], rel=1e-12), key
    assert abs(record["c_statistic"] - in_memory.c_statistic) <= record["c_statistic_bound"]


def test_validate_text_lists_the_statistics_as_val_prob_does(tmp_path, capsys, risks):
    path = tmp_path / "scores.parquet"
    _write_parquet(path, risks)
    assert _run(["validate", str(path), "--label", "clicked", "--offset", "margin"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = _report_lines(captured.out)
    for name in VAL_PROB_NAMES:
        assert name in lines, name
    names = [name for name in lines if name in VAL_PROB_NAMES]
    assert names == list(VAL_PROB_NAMES)  # in val.prob's order
    report = logitshift.validate_file(path, "clicked", "margin")
    assert float(lines["Brier"]) == pytest.approx(report.brier, rel=1e-5)
    assert float(lines["Slope"].split()[0]) == pytest.approx(report.slope.slope, rel=1e-5)
    assert float(lines["U:Chi-sq"]) == pytest.approx(report.miller.joint, rel=1e-5)
    assert lines["C (ROC)"].startswith(f"{report.c_statistic:.6g} ± ")
    intervals = report.slope.confint()
    assert "[{:.6g}, {:.6g}]".format(*intervals.intercept) in lines["Intercept"]
    assert "[{:.6g}, {:.6g}]".format(*intervals.slope) in lines["Slope"]
    assert "Miller a=0,b=1" in lines and "In the large" in lines
    assert "calibration curve (10 bins of about equal weight, 95% Wilson intervals):" in lines


def test_validate_from_stdin(tmp_path, risks):
    source = tmp_path / "scores.csv"
    _write_csv(source, risks)
    done = _subprocess(["validate", "-", "--label", "clicked", "--offset", "risk",
                        "--offset-is", "probability", "--json"], tmp_path,
                       stdin=source.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    record = _strict_json(done.stdout.decode())
    expected = logitshift.validate(risks["clicked"], risks["risk"], offset_is="probability")
    assert record["n_rows"] == 300
    assert record["brier"] == pytest.approx(expected.brier, rel=1e-12)
    assert record["slope"] == pytest.approx(expected.slope.slope, rel=1e-12)


def test_validate_of_one_class_reports_nan_as_strings(tmp_path, capsys):
    path = tmp_path / "flat.csv"
    _write_csv(path, {"clicked": np.zeros(4, dtype=np.int64),
                      "margin": np.array([0.5, -1.0, 2.0, 0.0])})
    assert _run(["validate", str(path), "--label", "clicked", "--offset", "margin",
                 "--json"]) == 0
    captured = capsys.readouterr()
    record = _strict_json(captured.out)
    assert record["c_statistic"] == "nan" and record["miller_joint"] == "nan"
    assert record["calibration_in_the_large"] == "-inf" and record["slope_status"] == "all_negative"
    assert "every label is 0" in captured.err
    assert all(line.startswith("logitshift: warning:") for line in captured.err.splitlines())


def test_fit_takes_probabilities(tmp_path, capsys, risks):
    path = tmp_path / "scores.parquet"
    _write_parquet(path, risks)
    assert _run(["fit", str(path), "--label", "clicked", "--offset", "risk", "--weight", "w",
                 "--offset-is", "probability", "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    expected = logitshift.fit(risks["clicked"], risks["risk"], risks["w"],
                              offset_is="probability")
    assert report["shift"] == pytest.approx(expected.shift, rel=1e-13)
    assert report["se"] == pytest.approx(expected.se, rel=1e-12)


@pytest.fixture
def bad_risks(tmp_path):
    _write_csv(tmp_path / "risks.csv", {"clicked": np.array([0, 1, 1, 0]),
                                        "risk": np.array([0.1, 0.7, 1.5, 0.2])})
    _write_csv(tmp_path / "certain.csv", {"clicked": np.array([0, 1, 1, 0]),
                                          "risk": np.array([0.1, 0.7, 0.5, 1.0])})
    _write_csv(tmp_path / "ok.csv", {"clicked": np.array([0, 1, 1, 0]),
                                     "risk": np.array([0.1, 0.7, 0.5, 0.2])})
    return tmp_path


VALIDATE_ERRORS = [
    pytest.param(["validate", "ok.csv", "--label", "clicked"], "--offset", id="no-offset"),
    pytest.param(["validate", "ok.csv", "--label", "clicked", "--offset", "risk", "--bins", "0"],
                 "--bins 0 must be a positive integer", id="zero-bins"),
    pytest.param(["validate", "ok.csv", "--label", "clicked", "--offset", "risk", "--bins",
                  "many"], "--bins", id="bins-not-a-number"),
    pytest.param(["validate", "ok.csv", "--label", "clicked", "--offset", "risk", "--level",
                  "1"], "level", id="level-one"),
    pytest.param(["validate", "ok.csv", "--label", "clicked", "--offset", "risk",
                  "--offset-is", "odds"], "--offset-is", id="unknown-offset-is"),
    pytest.param(["validate", "risks.csv", "--label", "clicked", "--offset", "risk",
                  "--offset-is", "probability"],
                 "column 'risk': probability offset[2] = 1.5 is outside [0, 1]",
                 id="probability-above-1"),
    pytest.param(["validate", "certain.csv", "--label", "clicked", "--offset", "risk",
                  "--offset-is", "probability"],
                 "column 'risk': offset[3] = inf with label y[3] = 0", id="certain-but-wrong"),
    pytest.param(["validate", "absent.csv", "--label", "clicked", "--offset", "risk"],
                 "absent.csv", id="missing-file"),
    pytest.param(["validate", "ok.csv", "--label", "clicked", "--offset", "score"],
                 "no column 'score'", id="missing-column"),
    pytest.param(["fit", "ok.csv", "--label", "clicked", "--offset-is", "probability"],
                 "--offset-is probability needs --offset", id="fit-probability-without-offset"),
    pytest.param(["fit", "risks.csv", "--label", "clicked", "--offset", "risk", "--offset-is",
                  "probability"], "probability offset[2] = 1.5", id="fit-probability-above-1"),
]


@pytest.mark.parametrize(("argv", "fragment"), VALIDATE_ERRORS)
def test_validate_errors_exit_2_with_one_line(bad_risks, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(bad_risks)
    assert _run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("logitshift")
    assert "Traceback" not in captured.err
    assert fragment in captured.err


def test_validate_plot_writes_the_report_figure(tmp_path, capsys, risks):
    _needs_matplotlib()
    path = tmp_path / "scores.parquet"
    _write_parquet(path, risks)
    out = tmp_path / "report.png"
    assert _run(["validate", str(path), "--label", "clicked", "--offset", "risk",
                 "--offset-is", "probability", "--json", "--plot", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert _strict_json(captured.out)["n_rows"] == 300
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_validate_plot_is_checked_before_the_pass(tmp_path, capsys, risks, monkeypatch):
    _needs_matplotlib()
    path = tmp_path / "scores.csv"
    _write_csv(path, risks)
    monkeypatch.setattr(logitshift.io, "sketch_file",
                        lambda *args, **kwargs: pytest.fail("the pass began"))
    argv = ["validate", str(path), "--label", "clicked", "--offset", "margin"]
    err = _plot_error(capsys, [*argv, "--plot", str(tmp_path / "no-such-folder" / "a.png")])
    assert "no-such-folder" in err
    err = _plot_error(capsys, [*argv, "--plot", str(tmp_path / "out.frobnicate")])
    assert "--plot" in err and "'frobnicate'" in err


@pytest.mark.parametrize("level, label", [("0.9999999999999999", "99.99999999999999% CI"),
                                          ("0.95", "95% CI"), ("1e-8", "0.000001% CI")])
def test_the_level_is_printed_with_the_digits_it_was_given(tmp_path, capsys, level, label):
    path = tmp_path / "rows.csv"
    path.write_text("y,f\n0,0.1\n1,0.5\n0,-0.3\n1,1.2\n0,0.2\n")
    assert _run(["fit", str(path), "--label", "y", "--offset", "f", "--level", level]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " CI " in line]
    assert len(lines) == 1 and lines[0].split()[0] + " CI" == label
    low, high = (float(v) for v in lines[0].split("[")[1].split("]")[0].split(","))
    assert low <= high
