"""Robust (sandwich, HC0) standard errors, ``se_type="robust"``: against statsmodels'
``GLM(var_weights=w).fit(cov_type="HC0")``, from every source, and the sketch's w² tables."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import logitshift
import logitshift.cli
from logitshift import InputError, Sketch

N = 6_000


@pytest.fixture(scope="module")
def data():
    """Soft labels, sampling weights and offsets miscalibrated in both senses."""
    rng = np.random.default_rng(5)
    offsets = rng.normal(-0.3, 1.7, N)
    labels = np.clip(1 / (1 + np.exp(-(0.4 + 0.8 * offsets))) + rng.normal(0, 0.1, N), 0, 1)
    weights = rng.exponential(1.0, N) * (rng.random(N) > 0.05)
    return labels, offsets, weights


def _glm(labels, design, weights, offset=None):
    # Rows of weight 0 are left out: statsmodels' sandwich turns them into nan.
    keep = weights > 0
    labels, design, weights = labels[keep], design[keep], weights[keep]
    offset = None if offset is None else offset[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about non-integer counts
        return sm.GLM(labels, design, family=sm.families.Binomial(), offset=offset,
                      var_weights=weights).fit(cov_type="HC0", tol=1e-14)


def test_shift_matches_statsmodels_hc0(data):
    labels, offsets, weights = data
    reference = _glm(labels, np.ones((N, 1)), weights, offsets)
    for method in ("auto", "newton"):
        result = logitshift.fit(labels, offsets, weights, method=method, se_type="robust")
        assert result.se_type == "robust"
        assert result.shift == pytest.approx(reference.params[0], rel=1e-12)
        assert result.se == pytest.approx(reference.bse[0], rel=1e-10)
        # The interval is Wald's with the robust se, as statsmodels gives it.
        assert result.confint() == pytest.approx(tuple(reference.conf_int()[0]), rel=1e-10)
    model = logitshift.fit(labels, offsets, weights)
    assert model.se != pytest.approx(result.se, rel=1e-3)  # the two differ on these data


def test_constant_offset_matches_statsmodels_hc0(data):
    labels, _, weights = data
    reference = _glm(labels, np.ones((N, 1)), weights, np.full(N, 0.25))
    result = logitshift.fit(labels, 0.25, weights, se_type="robust")
    assert result.status == "closed_form"
    assert result.se == pytest.approx(reference.bse[0], rel=1e-10)


def test_slope_matches_statsmodels_hc0(data):
    labels, offsets, weights = data
    reference = _glm(labels, sm.add_constant(offsets), weights)
    result = logitshift.fit_slope(labels, offsets, weights, se_type="robust")
    assert (result.intercept, result.slope) == pytest.approx(tuple(reference.params), rel=1e-11)
    np.testing.assert_allclose(result.covariance, reference.cov_params(), rtol=1e-9)
    intervals = result.confint()
    np.testing.assert_allclose([intervals.intercept, intervals.slope], reference.conf_int(),
                               rtol=1e-9)
    # The exact passes (offsets too steep for the sketch) give the same sandwich.
    exact = logitshift.fit_slope(labels, offsets * 3, weights, se_type="robust")
    reference = _glm(labels, sm.add_constant(offsets * 3), weights)
    np.testing.assert_allclose(exact.covariance, reference.cov_params(), rtol=1e-9)


def test_frequency_weights_leave_the_robust_se_unchanged_in_scale(data):
    # Weights times 2**k change the model's se by 2**(-k/2) and leave the sandwich alone,
    # even at scales where the sums need units of their own.
    labels, offsets, weights = data
    base = logitshift.fit(labels, offsets, weights, se_type="robust")
    slope = logitshift.fit_slope(labels, offsets, weights, se_type="robust")
    for k in (-900, 40, 900):
        scaled = np.ldexp(weights, k)
        assert logitshift.fit(labels, offsets, scaled, se_type="robust").se == pytest.approx(
            base.se, rel=1e-12)
        np.testing.assert_allclose(
            logitshift.fit_slope(labels, offsets, scaled, se_type="robust").covariance,
            slope.covariance, rtol=1e-12)


def test_pseudo_rows_count_in_the_sandwich(data):
    labels, offsets, weights = data
    result = logitshift.fit(labels, offsets, weights, pseudo_count=3.0, se_type="robust")
    rows = np.r_[labels, 1.0, 0.0]
    mean = np.average(offsets, weights=weights)
    reference = _glm(rows, np.ones((N + 2, 1)), np.r_[weights, 3.0, 3.0],
                     np.r_[offsets, mean, mean])
    assert result.shift == pytest.approx(reference.params[0], rel=1e-11)
    assert result.se == pytest.approx(reference.bse[0], rel=1e-9)


def test_every_source_gives_the_arrays_robust_se(data, tmp_path):
    labels, offsets, weights = data
    expected = logitshift.fit(labels, offsets, weights, se_type="robust")
    expected_slope = logitshift.fit_slope(labels, offsets, weights, se_type="robust")
    frame = pd.DataFrame({"y": labels, "f": offsets, "w": weights})
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    fits = [logitshift.fit_frame(frame, "y", "f", "w", se_type="robust"),
            logitshift.fit_file(path, "y", "f", "w", se_type="robust", batch_rows=1000)]
    slopes = [logitshift.fit_slope_frame(frame, "y", "f", "w", se_type="robust"),
              logitshift.fit_slope_file(path, "y", "f", "w", se_type="robust",
                                        batch_rows=1000)]
    reports = [logitshift.validate(labels, offsets, weights, se_type="robust"),
               logitshift.validate_file(path, "y", "f", "w", se_type="robust")]
    for result in fits + [report.shift for report in reports]:
        assert result.se_type == "robust"
        assert result.se == pytest.approx(expected.se, rel=1e-12)
    record = reports[1].to_dict()
    assert record["se_type"] == "robust" and record["shift_se"] == reports[1].shift.se
    assert (record["shift_ci_low"], record["shift_ci_high"]) == reports[1].shift.confint(
        method="wald")
    for result in slopes + [report.slope for report in reports]:
        assert result.se_type == "robust"
        np.testing.assert_allclose(result.covariance, expected_slope.covariance, rtol=1e-11)


def test_the_w2_tables_merge_and_move(data):
    labels, offsets, weights = data
    whole = Sketch(robust=True).update(labels, offsets, weights)
    parts = [Sketch(robust=True).update(labels[i::3], offsets[i::3], weights[i::3])
             for i in range(3)]
    merged = sum(parts)
    moved = Sketch.from_bytes(merged.to_bytes())
    copied = Sketch.from_dict(merged.to_dict())
    for sketch in (merged, moved, copied):
        assert sketch.robust
        assert sketch.robust_meat(0.3) == pytest.approx(whole.robust_meat(0.3), rel=1e-12)
        np.testing.assert_allclose(sketch.robust_meat_slope(0.2, 0.9),
                                   whole.robust_meat_slope(0.2, 0.9), rtol=1e-12)


def test_the_w2_sums_match_the_rows(data):
    labels, offsets, weights = data
    sketch = Sketch(robust=True).update(labels, offsets, weights)
    z = 0.2 + 0.9 * offsets
    residual = weights ** 2 * (labels - 1 / (1 + np.exp(-z))) ** 2
    np.testing.assert_allclose(
        sketch.robust_meat_slope(0.2, 0.9),
        [residual.sum(), (residual * offsets).sum(), (residual * offsets ** 2).sum()],
        rtol=1e-13)
    # Rows of infinite offset agree with their label: they add nothing.
    with_certain = Sketch(robust=True).update(np.r_[labels, 1.0, 0.0],
                                              np.r_[offsets, np.inf, -np.inf],
                                              np.r_[weights, 5.0, 5.0])
    assert with_certain.robust_meat(0.1) == pytest.approx(sketch.robust_meat(0.1), rel=1e-14)


def test_robust_needs_the_w2_tables():
    sketch = Sketch().update(np.array([0, 1, 1]), np.array([-1.0, 0.5, 1.0]))
    with pytest.raises(InputError, match=r"Sketch\(robust=True\)") as error:
        sketch.solve(se_type="robust")
    assert error.value.argument == "se_type"
    with pytest.raises(InputError, match="robust=True"):
        sketch + Sketch(robust=True)
    for bad in ("sandwich", None, 1):
        with pytest.raises(InputError, match="se_type") as error:
            logitshift.fit(np.array([0, 1]), np.array([0.0, 1.0]), se_type=bad)
        assert error.value.argument == "se_type"
    with pytest.raises(InputError, match="robust") as error:
        Sketch(robust="yes")
    assert error.value.argument == "robust"


def test_cli_se_type(data, capsys, monkeypatch):
    labels, offsets, weights = data
    text = pd.DataFrame({"y": labels, "f": offsets, "w": weights}).to_csv(index=False)
    expected = logitshift.fit(labels, offsets, weights, se_type="robust")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert logitshift.cli.main(["fit", "-", "--label", "y", "--offset", "f", "--weight", "w",
                                "--se-type", "robust", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["se_type"] == "robust"
    assert record["se"] == pytest.approx(expected.se, rel=1e-12)
    assert record["ci_low"] == pytest.approx(expected.confint(method="wald")[0], rel=1e-12)
    with pytest.raises(SystemExit) as stopped:  # argparse's own refusal, one line
        logitshift.cli.main(["fit", "-", "--label", "y", "--se-type", "huge"])
    assert stopped.value.code == 2
    assert "--se-type" in capsys.readouterr().err


@pytest.mark.parametrize("labels_kind", ["int8", "bool", "soft"])
def test_optional_tables_match_the_numpy_reference(labels_kind):
    # Offsets on cell edges, negative, float32 and far out (the sparse cells), weights with
    # zeros: each row lands in its cell's w² moments and in its sub-bin of the histogram.
    rng = np.random.default_rng(9)
    n = 5_000
    width = logitshift._summary.sketch.DEFAULT_WIDTH
    offsets = np.concatenate([rng.normal(0, 3, n - 40), np.arange(-20, 20) * width])
    offsets[:6] = [3e38, -3e38, 3e5, -3e5, 1e-300, -0.0]  # float32 holds them all
    soft = rng.random(n)
    labels = {"int8": (soft < 0.4).astype(np.int8), "bool": soft < 0.4, "soft": soft}[
        labels_kind]
    weights = rng.exponential(1.0, n) * (rng.random(n) > 0.1)
    sketch = Sketch(robust=True, histogram=True, max_cells=1 << 20).update(
        labels, offsets.astype(np.float32) if labels_kind == "bool" else offsets, weights)
    f = (offsets.astype(np.float32) if labels_kind == "bool" else offsets).astype(float)
    y, keep = labels.astype(float), weights > 0
    with np.errstate(over="ignore"):
        centres = (np.floor(f / width) + 0.5) * width
    centres = np.where(np.isfinite(centres), centres, f)
    cell = np.searchsorted(sketch._centres, centres)
    assert np.array_equal(sketch._centres[cell[keep]], centres[keep])
    d = f - centres
    expected = np.zeros_like(sketch._squared)
    for part, value in enumerate([(1 - y) ** 2, y * (1 - y), y ** 2]):
        for j in range(sketch.order):
            np.add.at(expected[:, part, j], cell[keep], (weights ** 2 * value * d ** j)[keep])
    np.testing.assert_allclose(sketch._squared, expected, rtol=1e-12, atol=1e-300)
    bins = sketch.histogram_bins
    sub_bin = np.clip(np.floor((d / width + 0.5) * bins).astype(int), 0, bins - 1)
    histogram = np.zeros_like(sketch._histogram)
    np.add.at(histogram[:, :, 0], (cell[keep], sub_bin[keep]), (weights * (1 - y))[keep])
    np.add.at(histogram[:, :, 1], (cell[keep], sub_bin[keep]), (weights * y)[keep])
    np.testing.assert_allclose(sketch._histogram, histogram, rtol=1e-12, atol=1e-300)
