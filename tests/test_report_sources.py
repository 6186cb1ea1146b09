"""``validate`` and ``fit_slope`` from every source: tables, files and standard input (Dask in
test_dask.py), with ``offset_is="probability"``, against the same functions on the arrays in
memory."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift._sources.files
import logitshift.io
from logitshift import InputError

N = 12_000

REPORT_NUMBERS = ("brier", "brier_scaled", "spiegelhalter_z", "spiegelhalter_pvalue",
                  "log_loss", "ici", "e50", "e90")


@pytest.fixture(scope="module")
def data():
    """Scores miscalibrated in both senses (intercept 0.4, slope 0.8), weighted."""
    rng = np.random.default_rng(21)
    scores = rng.normal(-0.5, 1.8, N)
    labels = (rng.random(N) < 1 / (1 + np.exp(-(0.4 + 0.8 * scores)))).astype(np.int8)
    weights = rng.exponential(1.0, N) * (rng.random(N) > 0.1)
    return labels, scores, weights


def probabilities(scores):
    return 1 / (1 + np.exp(-scores))


def logit(probability):
    """The conversion ``offset_is="probability"`` makes, for the reference."""
    with np.errstate(divide="ignore"):
        return np.log(probability) - np.log1p(-probability)


def assert_same_slope(actual, expected):
    for name in ("intercept", "slope", "se_intercept", "se_slope", "loss"):
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-12), name
    assert actual.status == expected.status and actual.n_rows == expected.n_rows


def assert_same_report(streamed, in_memory):
    """The in-memory report to 1e-12, but for the c-statistic, which must lie within the
    streamed bound of the exact one."""
    for name in REPORT_NUMBERS:
        assert getattr(streamed, name) == pytest.approx(getattr(in_memory, name), rel=1e-12,
                                                        abs=1e-14), name
    assert streamed.shift.shift == pytest.approx(in_memory.shift.shift, rel=1e-12)
    assert streamed.shift.se == pytest.approx(in_memory.shift.se, rel=1e-12)
    assert_same_slope(streamed.slope, in_memory.slope)
    assert tuple(streamed.miller) == pytest.approx(tuple(in_memory.miller), rel=1e-12)
    for name in ("predicted", "observed", "weight", "low", "high"):
        np.testing.assert_allclose(getattr(streamed.curve, name), getattr(in_memory.curve, name),
                                   rtol=1e-12, err_msg=name)
    assert in_memory.c_statistic_bound == 0.0
    assert streamed.c_statistic_bound >= 0
    assert abs(streamed.c_statistic - in_memory.c_statistic) <= streamed.c_statistic_bound


def write_parquet(path, columns, row_group_size=2_500):
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def csv_bytes(columns) -> bytes:
    return pd.DataFrame(columns).to_csv(index=False, float_format="%.17g").encode()


@pytest.fixture
def counted_reads(monkeypatch):
    """Every file the streaming source opens, and the rows it reads from each."""
    opened = []
    original = logitshift._sources.files.iter_batches

    def counting(source, columns, **options):
        opened.append(0)
        for batch in original(source, columns, **options):
            opened[-1] += len(next(iter(batch.values())))
            yield batch

    monkeypatch.setattr(logitshift._sources.files, "iter_batches", counting)
    return opened


# -- tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [pd.DataFrame, pa.table, dict],
                         ids=["pandas", "pyarrow", "mapping"])
def test_validate_frame_is_validate_on_its_columns(data, make):
    labels, scores, weights = data
    frame = make({"died": labels, "risk": probabilities(scores), "w": weights})
    expected = logitshift.validate(labels, probabilities(scores), weights,
                                   offset_is="probability", bins=7, level=0.9)
    report = logitshift.validate_frame(frame, "died", "risk", "w", offset_is="probability",
                                       bins=7, level=0.9)
    assert report.to_dict() == expected.to_dict()
    assert report.c_statistic_bound == 0.0  # in memory: exact
    slope = logitshift.fit_slope_frame(frame, "died", "risk", "w", offset_is="probability")
    assert slope.to_dict() == logitshift.fit_slope(labels, probabilities(scores), weights,
                                                   offset_is="probability").to_dict()


def test_probabilities_give_the_report_of_their_log_odds(data):
    labels, scores, weights = data
    p = probabilities(scores)
    assert (logitshift.validate(labels, p, weights, offset_is="probability").to_dict()
            == logitshift.validate(labels, logit(p), weights).to_dict())
    assert (logitshift.fit_slope(labels, p, weights, offset_is="probability").to_dict()
            == logitshift.fit_slope(labels, logit(p), weights).to_dict())


def test_frame_errors_name_the_column(data):
    labels, scores, _ = data
    p = probabilities(scores)
    p[17] = 1.25
    frame = pd.DataFrame({"died": labels, "risk": p})
    with pytest.raises(InputError, match=r"column 'risk': probability offset\[17\] = 1.25 is "
                                         r"outside \[0, 1\]"):
        logitshift.validate_frame(frame, "died", "risk", offset_is="probability")
    with pytest.raises(InputError, match="no column 'score'"):
        logitshift.fit_slope_frame(frame, "died", "score")
    with pytest.raises(InputError, match="offset must name the column"):
        logitshift.validate_frame(frame, "died", None)


# -- files and standard input ---------------------------------------------------------------------


@pytest.mark.parametrize("offset_is", ["logit", "probability"])
def test_validate_file_equals_validate_in_one_pass(tmp_path, data, counted_reads, offset_is):
    labels, scores, weights = data
    offsets = scores if offset_is == "logit" else probabilities(scores)
    path = write_parquet(tmp_path / "scores.parquet", {"y": labels, "f": offsets, "w": weights})
    report = logitshift.validate_file(path, "y", "f", "w", offset_is=offset_is,
                                      batch_rows=1_000)
    assert counted_reads == [N]  # one file, read once, every row
    assert report.n_rows == N and report.shift.passes == 1 and report.slope.passes == 1
    # Pairs that share a sub-bin of the histogram are not ordered: the bound says so.
    assert 0 < report.c_statistic_bound <= 1e-4
    assert_same_report(report, logitshift.validate(labels, offsets, weights,
                                                   offset_is=offset_is))


def test_fit_slope_file_equals_fit_slope_in_one_pass(tmp_path, data, counted_reads):
    labels, scores, weights = data
    path = write_parquet(tmp_path / "scores.parquet",
                         {"y": labels, "p": probabilities(scores), "w": weights})
    slope = logitshift.fit_slope_file(path, "y", "p", "w", offset_is="probability",
                                      batch_rows=3_000)
    assert counted_reads == [N]
    assert slope.method == "sketch" and slope.passes == 1
    assert_same_slope(slope, logitshift.fit_slope(labels, probabilities(scores), weights,
                                                  offset_is="probability"))


def test_validate_reads_probabilities_from_standard_input(data, monkeypatch):
    labels, scores, _ = data
    p = probabilities(scores)
    stdin = io.TextIOWrapper(io.BytesIO(csv_bytes({"y": labels, "p": p})))
    monkeypatch.setattr("sys.stdin", stdin)
    report = logitshift.validate_file("-", "y", "p", offset_is="probability")
    # CSV holds the probabilities to the last digit (repr): the same numbers as in memory.
    assert_same_report(report, logitshift.validate(labels, p, offset_is="probability"))


def test_fit_takes_probabilities_from_every_source(tmp_path, data):
    labels, scores, weights = data
    p = probabilities(scores)
    expected = logitshift.fit(labels, logit(p), weights)
    assert logitshift.fit(labels, p, weights, offset_is="probability") == expected
    frame = pd.DataFrame({"y": labels, "p": p, "w": weights})
    assert logitshift.fit_frame(frame, "y", "p", "w", offset_is="probability") == expected
    path = write_parquet(tmp_path / "scores.parquet", {"y": labels, "p": p, "w": weights})
    streamed = logitshift.fit_file(path, "y", "p", "w", offset_is="probability",
                                   batch_rows=4_000)
    assert streamed.shift == pytest.approx(expected.shift, rel=1e-13)
    assert streamed.se == pytest.approx(expected.se, rel=1e-12)
    # A constant probability is the constant offset of its log-odds.
    assert (logitshift.fit(labels, 0.25, offset_is="probability").shift
            == pytest.approx(logitshift.fit(labels, math.log(1 / 3)).shift, rel=1e-15))


def test_certain_probabilities_are_infinite_offsets_checked_against_their_labels(tmp_path):
    labels = np.array([0, 1, 0, 1, 1, 0, 1, 0] * 50)
    p = np.tile([0.0, 1.0, 0.3, 0.6, 0.8, 0.1, 0.45, 0.55], 50)
    path = write_parquet(tmp_path / "certain.parquet", {"y": labels, "p": p},
                         row_group_size=100)
    in_memory = logitshift.validate(labels, p, offset_is="probability")
    streamed = logitshift.validate_file(path, "y", "p", offset_is="probability",
                                        batch_rows=100)
    assert streamed.brier == pytest.approx(np.mean((labels - p) ** 2), rel=1e-12)
    assert_same_report(streamed, in_memory)

    # In a later batch: the row is numbered from the start of the file.
    wrong = p.copy()
    wrong[250] = 1.0  # certain, but labelled 0
    assert labels[250] == 0
    write_parquet(path, {"y": labels, "p": wrong}, row_group_size=100)
    with pytest.raises(InputError, match=r"'.*certain.parquet': column 'p': offset\[250\] = inf "
                                         r"with label y\[250\] = 0"):
        logitshift.validate_file(path, "y", "p", offset_is="probability", batch_rows=100)
    wrong[250] = -0.5
    write_parquet(path, {"y": labels, "p": wrong}, row_group_size=100)
    with pytest.raises(InputError, match=r"column 'p': probability offset\[250\] = -0.5 is "
                                         r"outside \[0, 1\]") as error:
        logitshift.fit_file(path, "y", "p", offset_is="probability", batch_rows=100)
    assert error.value.index == 250


@pytest.mark.parametrize(("options", "message"), [
    ({"offset_is": "odds"}, "offset_is = 'odds'"),
    ({"bins": 0}, "bins = 0"),
    ({"level": 1.5}, "level = 1.5"),
])
def test_options_are_checked_before_any_file_is_opened(tmp_path, options, message):
    absent = tmp_path / "absent.parquet"
    with pytest.raises(InputError, match=message):
        logitshift.validate_file(absent, "y", "f", **options)
    if "offset_is" in options:
        with pytest.raises(InputError, match=message):
            logitshift.fit_slope_file(absent, "y", "f", **options)
        with pytest.raises(InputError, match=message):
            logitshift.fit_file(absent, "y", "f", **options)
        with pytest.raises(InputError, match=message):
            logitshift.fit([0, 1], [0.2, 0.4], **options)


# -- one class only -------------------------------------------------------------------------------


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_a_report_that_says_so(label):
    """No pairs to order and no slope: the c-statistic, the scaled Brier score and the two
    tests that need the slope are NaN, never a number."""
    scores = np.linspace(-2.0, 2.0, 40)
    labels = np.full(40, label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reports = [logitshift.validate(labels, scores),
                   logitshift.Sketch().update(labels, scores).validate()]
    for report in reports:
        assert math.isnan(report.c_statistic) and math.isnan(report.brier_scaled)
        assert math.isnan(report.miller.joint) and math.isnan(report.miller.slope)
        assert math.isnan(report.miller.joint_pvalue)
        assert report.miller.intercept == pytest.approx(
            2 * 40 * (report.shift.loss_at_zero - report.shift.loss), rel=1e-12)
        assert report.brier == pytest.approx(np.mean((labels - probabilities(scores)) ** 2),
                                             rel=1e-12)
        assert report.slope.status == ("all_negative" if label == 0 else "all_positive")
