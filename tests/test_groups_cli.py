"""``logitshift fit --group``: per-group shifts from the command line, against
`logitshift.fit_groups` on the same rows in memory."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logitshift.cli import main
from test_groups_sources import make_rows, reference


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return make_rows(n=2000, groups=15, seed=11)


@pytest.fixture(scope="module")
def files(rows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("groups")
    rows.to_csv(folder / "rows.csv", index=False)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "rows.parquet",
                   row_group_size=500)
    holed = rows.astype({"site": object})
    holed.loc[1500, "site"] = None
    holed.to_csv(folder / "holes.csv", index=False)
    return folder


def run(argv) -> int:
    try:
        return main([str(arg) for arg in argv])
    except SystemExit as exc:
        return exc.code


def strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def as_float(value) -> float:
    return float(value) if isinstance(value, str) else value


FIT = ["--label", "y", "--offset", "f", "--weight", "w", "--group", "site"]


@pytest.mark.parametrize("shrink", [[], ["--shrink", "--nagq", "3"]], ids=["ml", "random"])
@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet"])
def test_json_is_fit_groups_on_the_same_rows(files, rows, capsys, name, shrink):
    assert run(["fit", files / name, *FIT, *shrink, "--json", "--level", "0.9"]) == 0
    record = strict_json(capsys.readouterr().out)
    options = {"shrinkage": "random", "nagq": 3} if shrink else {}
    expected = reference(rows, "site", **options)
    assert record["group"] == expected.groups.tolist()
    assert record["status"] == expected.status.tolist()
    shifts = np.array([as_float(value) for value in record["shift"]])
    finite = np.isfinite(expected.shift)
    assert (shifts[~finite] == expected.shift[~finite]).all()
    assert np.max(np.abs(shifts[finite] - expected.shift[finite])) <= 1e-12
    assert record["lr_statistic"] == pytest.approx(expected.lr_test().statistic, rel=1e-9)
    assert record["level"] == 0.9
    if shrink:
        assert abs(record["mean"] - expected.mean) <= 1e-9
        assert abs(record["tau"] - expected.tau) <= 1e-9
        assert record["nagq"] == 3
        low, high = expected.tau_confint(0.9)
        assert record["tau_ci_low"] == pytest.approx(low, abs=1e-7)
        assert record["tau_ci_high"] == pytest.approx(high, abs=1e-7)
        assert 0 < record["tau_ci_low"] < record["tau"] < record["tau_ci_high"]
    else:
        assert "tau" not in record and "tau_ci_low" not in record


def _listed(out: str) -> list[str]:
    """The groups of the text report's list, in its order."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("group "))
    return [line.split()[0] for line in lines[start + 1:]]


def test_text_reports_the_summary_and_the_groups_of_largest_shift(files, rows, capsys):
    assert run(["fit", files / "rows.csv", *FIT, "--quiet"]) == 0
    captured = capsys.readouterr()
    expected = reference(rows, "site")
    degenerate = int(np.isin(expected.status, ["all_negative", "all_positive"]).sum())
    assert degenerate == 1
    assert f"  groups        15, {degenerate} degenerate" in captured.out
    assert f"pooled shift  {expected.pooled.shift:.6g}" in captured.out
    finite = np.flatnonzero(np.isfinite(expected.shift))
    order = finite[np.argsort(-np.abs(expected.shift[finite]), kind="stable")][:10]
    assert _listed(captured.out) == expected.groups[order].tolist()
    assert "(the 1 of infinite shift left out)" in captured.out
    # The one warning, counting the groups of one class, on one line.
    assert captured.err.count("\n") == 1 and "1 of 15 groups" in captured.err


def test_text_with_shrink_reports_tau_with_its_interval_and_mu_with_its_se(files, rows,
                                                                          capsys):
    assert run(["fit", files / "rows.parquet", *FIT, "--shrink", "--top", "4"]) == 0
    out = capsys.readouterr().out
    expected = reference(rows, "site", shrinkage="random")
    low, high = expected.tau_confint()
    assert f"mean          {expected.mean:.6g} (se {expected.mean_se:.3g})" in out
    assert f"tau           {expected.tau:.6g} (95% CI [{low:.6g}, {high:.6g}]" in out
    order = np.argsort(-np.abs(expected.shrunk), kind="stable")[:4]
    assert _listed(out) == expected.groups[order].tolist()
    # The group of one class has an infinite shift but a finite shrunk one, the farthest.
    assert expected.status[order[0]] == "all_negative"
    assert _listed(out)[0] == expected.groups[order[0]] and "all_negative" in out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_output_writes_the_whole_table(files, rows, tmp_path, capsys, suffix):
    out = tmp_path / f"groups{suffix}"
    assert run(["fit", files / "rows.csv", *FIT, "--shrink", "--output", out, "--json"]) == 0
    capsys.readouterr()
    table = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    expected = reference(rows, "site", shrinkage="random").table()
    assert list(table.columns) == list(expected.columns)
    assert table["group"].tolist() == expected["group"].tolist()
    assert table["status"].tolist() == expected["status"].tolist()
    for column in ("shift", "se", "shrunk", "shrunk_se", "weight_sum", "loss"):
        np.testing.assert_allclose(table[column], expected[column], rtol=1e-12, atol=1e-12,
                                   err_msg=column)


def test_standard_input(rows, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        rows.to_csv(index=False).encode())))
    assert run(["fit", "-", "--label", "y", "--offset", "f", "--group", "code", "--json"]) == 0
    record = strict_json(capsys.readouterr().out)
    expected = reference(rows, "code", weight=None)
    assert record["group"] == expected.groups.tolist()  # integers, as in memory
    finite = np.isfinite(expected.shift)
    shifts = np.array([as_float(value) for value in record["shift"]])
    assert np.max(np.abs(shifts[finite] - expected.shift[finite])) <= 1e-12


def test_plot_writes_the_group_figure(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "groups.png"
    assert run(["fit", files / "rows.parquet", *FIT, "--shrink", "--plot", out]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    assert "tau" in capsys.readouterr().out


ERRORS = [
    pytest.param(["--nagq", "3"], "--nagq applies to --shrink only", id="nagq-without-shrink"),
    pytest.param(["--shrink", "--nagq", "0"], "--nagq 0 must be a positive integer",
                 id="nagq-zero"),
    pytest.param(["--top", "0"], "--top 0 must be a positive integer", id="top-zero"),
    pytest.param(["--output", "groups.txt"], "--output groups.txt: name a .csv or .parquet",
                 id="output-extension"),
    pytest.param(["--output", "absent/groups.csv"], "there is no directory 'absent'",
                 id="output-directory"),
    pytest.param(["--group", "country"], "no column 'country' in", id="missing-group-column"),
]


@pytest.mark.parametrize(("flags", "fragment"), ERRORS)
def test_errors_exit_2_with_one_line(files, capsys, monkeypatch, flags, fragment):
    monkeypatch.chdir(files)
    argv = ["fit", "rows.csv", "--label", "y", "--offset", "f"]
    if "--group" not in flags:
        argv += ["--group", "site"]
    assert run([*argv, *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("logitshift: error: ") and captured.err.count("\n") == 1
    assert fragment in captured.err and "Traceback" not in captured.err
    assert not (files / "groups.txt").exists()


@pytest.mark.parametrize("flag", [["--shrink"], ["--nagq", "2"], ["--output", "g.csv"],
                                  ["--top", "3"]], ids=lambda flag: flag[0])
def test_group_flags_without_group_exit_2(files, capsys, monkeypatch, flag):
    monkeypatch.chdir(files)
    assert run(["fit", "rows.csv", "--label", "y", *flag]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag[0]} applies to per-group fits" in err


def test_a_missing_group_is_named_by_its_row(files, capsys, tmp_path):
    out = tmp_path / "groups.csv"
    assert run(["fit", files / "holes.csv", *FIT, "--output", out]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err == (f"logitshift: error: {str(files / 'holes.csv')!r}: column 'site': "
                            "group[1500] is missing: every row needs a group\n")


def test_robust_errors_are_refused_for_groups(tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text("y,f,g\n0,0.1,a\n1,0.5,b\n1,-0.2,a\n0,0.3,b\n")
    status = main(["fit", str(path), "--label", "y", "--offset", "f",
                  "--group", "g", "--se-type", "robust"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--se-type robust does not apply" in err
