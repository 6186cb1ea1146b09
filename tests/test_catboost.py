"""CatBoost: ``shift_pool`` against ``logitshift.fit`` on the Pool's columns, and
``shift_catboost`` against the real model's raw predictions."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import logitshift
from logitshift import InputError
from logitshift.boosting import ShiftedModel, shift_catboost, shift_pool

catboost = pytest.importorskip("catboost")


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.normal(size=(n, 3))
    scores = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(scores + X[:, 0] - 1.0)))).astype(int)
    return {"X": X, "scores": scores, "y": y, "weight": rng.exponential(size=n)}


@pytest.fixture(scope="module")
def model(rows):
    half = rows["y"].size // 2
    return catboost.CatBoostClassifier(iterations=30, depth=3, verbose=0, thread_count=1,
                                       allow_writing_files=False,
                                       random_seed=0).fit(rows["X"][:half], rows["y"][:half])


def test_shift_pool_fits_the_baseline_and_moves_it(rows):
    pool = catboost.Pool(rows["X"], label=rows["y"], weight=rows["weight"],
                         baseline=rows["scores"])
    # CatBoost keeps weights and baselines as float32: the shift is fitted on those.
    stored_weight = np.asarray(pool.get_weight())
    stored_baseline = pool.get_baseline().ravel().copy()
    assert not np.array_equal(stored_weight, rows["weight"])
    result = shift_pool(pool)
    expected = logitshift.fit(rows["y"], stored_baseline, stored_weight)
    assert result.shift == pytest.approx(expected.shift, rel=1e-13, abs=1e-13)
    moved = stored_baseline + result.shift
    np.testing.assert_allclose(pool.get_baseline().ravel(), moved, rtol=0,
                               atol=2.0 ** -24 * np.abs(moved).max())
    # Fitting again finds nothing left to move but the float32 rounding of the stored
    # baseline, which moves each row, and so the optimum, by at most half a float32 ulp.
    assert abs(shift_pool(pool).shift) <= 2.0 ** -24 * np.abs(moved).max()


def test_shift_pool_without_a_baseline_is_the_log_odds(rows):
    pool = catboost.Pool(rows["X"], label=rows["y"])
    result = shift_pool(pool)
    m = rows["y"].sum()
    assert result.shift == pytest.approx(np.log(m / (rows["y"].size - m)), rel=1e-12)
    np.testing.assert_allclose(pool.get_baseline().ravel(), result.shift)


def test_shift_pool_refuses_by_name(rows):
    with pytest.raises(InputError, match="pool has no label"):
        shift_pool(catboost.Pool(rows["X"]))
    wide = catboost.Pool(rows["X"], label=rows["y"] + (rows["X"][:, 1] > 1),
                         baseline=np.zeros((rows["y"].size, 3)))
    with pytest.raises(InputError, match="baseline of pool has 3 columns"):
        shift_pool(wide)
    with pytest.raises(InputError, match="catboost.Pool"):
        shift_pool(rows["X"])
    with pytest.raises(InputError, match="every label of pool is 0"), \
            pytest.warns(RuntimeWarning, match="every label is 0"):
        shift_pool(catboost.Pool(rows["X"], label=np.zeros(rows["y"].size, dtype=int)))


def test_shift_catboost_moves_every_raw_prediction_by_the_shift(rows, model):
    half = rows["y"].size // 2
    X_new, y_new, w_new = rows["X"][half:], rows["y"][half:], rows["weight"][half:]
    scale_before = model.get_scale_and_bias()
    raw = model.predict(X_new, prediction_type="RawFormulaVal")
    result = shift_catboost(model, X_new, y_new, w_new)
    assert isinstance(result, ShiftedModel)
    assert type(result.model) is type(model) and result.model is not model
    expected = logitshift.fit(y_new, raw, w_new)
    assert result.fit.shift == pytest.approx(expected.shift, rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(result.model.predict(X_new, prediction_type="RawFormulaVal"),
                               raw + result.fit.shift, rtol=0, atol=1e-12)
    # The caller's model is unchanged.
    assert model.get_scale_and_bias() == scale_before
    np.testing.assert_array_equal(model.predict(X_new, prediction_type="RawFormulaVal"), raw)
    # Labels and weights from a Pool: its float32 weights.
    pool = catboost.Pool(X_new, label=y_new, weight=w_new)
    stored = logitshift.fit(y_new, raw, np.asarray(pool.get_weight()))
    assert shift_catboost(model, pool).fit.shift == pytest.approx(stored.shift, rel=1e-13,
                                                                  abs=1e-13)


def test_shift_catboost_refuses_by_name(rows, model):
    labels = (rows["y"] + (rows["X"][:, 1] > 1)).astype(int)
    multi = catboost.CatBoostClassifier(iterations=3, verbose=0, thread_count=1,
                                        allow_writing_files=False,
                                        loss_function="MultiClass").fit(rows["X"], labels)
    with pytest.raises(InputError, match="'MultiClass'.*multiclass recalibration"):
        shift_catboost(multi, rows["X"], rows["y"])
    regressor = catboost.CatBoostRegressor(iterations=3, verbose=0, allow_writing_files=False,
                                           thread_count=1).fit(rows["X"], rows["y"])
    with pytest.raises(InputError, match="'RMSE'"):
        shift_catboost(regressor, rows["X"], rows["y"])
    with pytest.raises(InputError, match="y is missing"):
        shift_catboost(model, rows["X"])
    with pytest.raises(InputError, match="CatBoost model"):
        shift_catboost(object(), rows["X"], rows["y"])


def test_the_example_moves_the_model_to_the_new_population(capsys):
    pytest.importorskip("statsmodels")
    path = Path(__file__).resolve().parents[1] / "examples" / "catboost_shift.py"
    outcome = runpy.run_path(str(path))["main"]()
    assert f"shift {outcome['shift']:+.3f}" in capsys.readouterr().out
    # The Pool keeps its baseline as float32: the same shift to about 1e-7.
    assert outcome["shift"] > 0.5
    assert outcome["pool_shift"] == pytest.approx(outcome["shift"], abs=1e-5)
    assert outcome["held_out_after"] < outcome["held_out_before"] - 0.05
