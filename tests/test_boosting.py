"""``logitshift.boosting`` against the real XGBoost and LightGBM.

Each booster is trained for one round that changes nothing (XGBoost ``eta=0``; LightGBM
refuses 0, so the tiniest rate), so its own training log loss is the log loss of the margin it
starts from: it must be ``fit.loss`` after the shift and ``fit.loss_at_zero`` before it.
"""

from __future__ import annotations

import math
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import logitshift
from logitshift import InputError
from logitshift.boosting import shift_dataset, shift_dmatrix

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
N_ROWS = 3000
# LightGBM refuses a learning rate of 0 and accepts any positive one; at this one the tree
# moves no score by a single bit.
LIGHTGBM_NO_LEARNING = 1e-300


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    offset = rng.normal(0.0, 2.0, N_ROWS)
    return {
        "features": rng.normal(size=(N_ROWS, 3)),
        "offset": offset,
        "label": (rng.random(N_ROWS) < logitshift.sigmoid(offset - 2.0)).astype(np.float64),
        "weight": rng.uniform(0.2, 3.0, N_ROWS),
    }


WEIGHTED = pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])


def test_import_loads_neither_library() -> None:
    code = ("import sys, logitshift, logitshift.boosting; "
            "print(sorted({'xgboost', 'lightgbm'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("function, library", [(shift_dmatrix, "xgboost"),
                                                (shift_dataset, "lightgbm")])
def test_missing_library_names_the_extra(monkeypatch, function, library) -> None:
    monkeypatch.setitem(sys.modules, library, None)   # what Python does for an absent module
    with pytest.raises(ImportError, match=rf'pip install "logitshift\[{library}\]"'):
        function(object())


# --- XGBoost -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xgb():
    return pytest.importorskip("xgboost", reason="shift_dmatrix needs xgboost")


def xgboost_train_logloss(xgb, dmatrix) -> float:
    history: dict = {}
    xgb.train({"objective": "binary:logistic", "eta": 0.0, "eval_metric": "logloss",
               "nthread": 1}, dmatrix, 1, evals=[(dmatrix, "train")], evals_result=history,
              verbose_eval=False)
    return history["train"]["logloss"][0]


def _float32(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else values.astype(np.float32)


@WEIGHTED
@pytest.mark.parametrize("kind", ["DMatrix", "QuantileDMatrix"])
def test_dmatrix_margin_gives_xgboost_the_fitted_loss(xgb, data, weighted, kind) -> None:
    weight = data["weight"] if weighted else None
    margin = data["offset"].copy()
    matrix = getattr(xgb, kind)
    dtrain = matrix(data["features"], label=data["label"], weight=weight, base_margin=margin)

    result = shift_dmatrix(dtrain)

    assert np.array_equal(margin, data["offset"])   # the user's array is untouched
    # XGBoost keeps float32: the shift is logitshift.fit's on exactly what it stores.
    stored = logitshift.fit(_float32(data["label"]), offset=_float32(margin),
                            weight=_float32(weight))
    assert result.shift == stored.shift and result.loss == stored.loss
    exact = logitshift.fit(data["label"], offset=margin, weight=weight)
    assert result.shift == pytest.approx(exact.shift, abs=1e-6)
    assert result.shift == pytest.approx(-2.0, abs=0.3)
    assert np.array_equal(dtrain.get_base_margin(),
                          (_float32(margin).astype(np.float64) + result.shift).astype(np.float32))

    shifted_loss = xgboost_train_logloss(xgb, dtrain)
    unshifted_loss = xgboost_train_logloss(
        xgb, matrix(data["features"], label=data["label"], weight=weight, base_margin=margin))
    assert shifted_loss == pytest.approx(result.loss, abs=1e-6)
    assert unshifted_loss == pytest.approx(result.loss_at_zero, abs=1e-6)
    assert shifted_loss < unshifted_loss - 0.1


@WEIGHTED
def test_dmatrix_without_margin_gets_the_constant_shift(xgb, data, weighted) -> None:
    weight = data["weight"] if weighted else None
    dtrain = xgb.DMatrix(data["features"], label=data["label"], weight=weight)

    result = shift_dmatrix(dtrain)

    expected = logitshift.fit(_float32(data["label"]), weight=_float32(weight))
    assert result.status == "closed_form" and result.shift == expected.shift
    assert result.loss_at_zero == pytest.approx(math.log(2.0))
    margin = dtrain.get_base_margin()
    assert margin.shape == (N_ROWS,) and np.all(margin == np.float32(result.shift))
    assert xgboost_train_logloss(xgb, dtrain) == pytest.approx(result.loss, abs=1e-6)


def test_dmatrix_passes_fit_options(xgb, data) -> None:
    dtrain = xgb.DMatrix(data["features"], label=data["label"], base_margin=data["offset"])
    result = shift_dmatrix(dtrain, method="newton", tol=1e-8, pseudo_count=2.0)
    assert result.method == "newton" and result.pseudo_count == 2.0
    expected = logitshift.fit(_float32(data["label"]), offset=_float32(data["offset"]),
                              method="newton", tol=1e-8, pseudo_count=2.0)
    assert result.shift == expected.shift


def test_dmatrix_refuses_an_infinite_shift(xgb, data) -> None:
    margin = data["offset"][:100]
    dtrain = xgb.DMatrix(data["features"][:100], label=np.zeros(100), base_margin=margin)
    with pytest.warns(RuntimeWarning) as warned, \
            pytest.raises(InputError, match="pseudo_count") as error:
        shift_dmatrix(dtrain)
    assert warned[0].filename == __file__
    assert error.value.argument == "dmatrix" and error.value.value == -math.inf
    assert np.array_equal(dtrain.get_base_margin(), margin.astype(np.float32))

    result = shift_dmatrix(dtrain, pseudo_count=0.5)
    assert math.isfinite(result.shift) and result.shift < 0
    assert np.all(np.isfinite(dtrain.get_base_margin()))


def test_dmatrix_errors(xgb, data) -> None:
    features, label = data["features"][:50], data["label"][:50]
    multi_output = xgb.DMatrix(features, label=label, base_margin=np.zeros((50, 3)))
    with pytest.raises(InputError, match=r"base margin of dmatrix has shape \(50, 3\)"):
        shift_dmatrix(multi_output)
    assert np.all(multi_output.get_base_margin() == 0.0)   # refused: left as it was
    with pytest.raises(InputError, match=r"label of dmatrix has shape \(50, 2\)"):
        shift_dmatrix(xgb.DMatrix(features, label=np.c_[label, label]))
    with pytest.raises(InputError, match="dmatrix has no label") as error:
        shift_dmatrix(xgb.DMatrix(features))
    assert error.value.argument == "dmatrix"
    with pytest.raises(InputError, match="must be an xgboost.DMatrix, got ndarray"):
        shift_dmatrix(features)
    with pytest.raises(InputError, match=r"label y\[0\] = 2.0 is outside \[0, 1\]"):
        shift_dmatrix(xgb.DMatrix(features, label=np.full(50, 2.0)))


# --- LightGBM ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lgb():
    return pytest.importorskip("lightgbm", reason="shift_dataset needs lightgbm")


LIGHTGBM_PARAMS = {"objective": "binary", "metric": "binary_logloss", "verbose": -1,
                   "num_threads": 1}


def lightgbm_train_logloss(lgb, dataset, **params) -> float:
    history: dict = {}
    lgb.train({**LIGHTGBM_PARAMS, "learning_rate": LIGHTGBM_NO_LEARNING, **params}, dataset, 1,
              valid_sets=[dataset], valid_names=["train"],
              callbacks=[lgb.record_evaluation(history)])
    return float(history["train"]["binary_logloss"][0])


def _dataset(lgb, data, weight, init_score, constructed: bool):
    dataset = lgb.Dataset(data["features"], label=data["label"], weight=weight,
                          init_score=init_score, params=LIGHTGBM_PARAMS)
    # construct() frees the raw features (free_raw_data=True); LightGBM keeps the fields.
    return dataset.construct() if constructed else dataset


@WEIGHTED
@pytest.mark.parametrize("constructed", [False, True], ids=["lazy", "constructed"])
def test_dataset_init_score_gives_lightgbm_the_fitted_loss(lgb, data, weighted,
                                                          constructed) -> None:
    weight = data["weight"] if weighted else None
    init_score = data["offset"].copy()
    dataset = _dataset(lgb, data, weight, init_score, constructed)

    result = shift_dataset(dataset)

    assert np.array_equal(init_score, data["offset"])   # the user's array is untouched
    exact = logitshift.fit(data["label"], offset=init_score, weight=weight)
    if constructed:   # LightGBM's float32 copy of the weights
        assert result.shift == pytest.approx(exact.shift, abs=1e-6)
    else:
        assert result.shift == exact.shift and result.loss == exact.loss
        with pytest.raises(Exception, match="before construct"):
            dataset.get_field("label")   # still lazy
    assert result.shift == pytest.approx(-2.0, abs=0.3)
    assert np.array_equal(dataset.get_init_score(), init_score + result.shift)

    shifted_loss = lightgbm_train_logloss(lgb, dataset)
    unshifted_loss = lightgbm_train_logloss(lgb, _dataset(lgb, data, weight, init_score,
                                                          constructed))
    assert shifted_loss == pytest.approx(result.loss, abs=1e-6)
    assert unshifted_loss == pytest.approx(result.loss_at_zero, abs=1e-6)
    assert shifted_loss < unshifted_loss - 0.1


@WEIGHTED
def test_dataset_without_init_score_starts_where_boost_from_average_would(lgb, data,
                                                                         weighted) -> None:
    weight = data["weight"] if weighted else None
    dataset = _dataset(lgb, data, weight, None, constructed=False)

    result = shift_dataset(dataset)

    expected = logitshift.fit(data["label"], weight=weight)
    assert result.status == "closed_form" and result.shift == expected.shift
    assert np.all(dataset.get_init_score() == result.shift)
    shifted_loss = lightgbm_train_logloss(lgb, dataset)
    assert shifted_loss == pytest.approx(result.loss, abs=1e-6)
    # With an init score, boost_from_average is skipped; without one it finds the same start.
    averaged = lightgbm_train_logloss(lgb, _dataset(lgb, data, weight, None, False),
                                      boost_from_average=True)
    assert averaged == pytest.approx(shifted_loss, abs=1e-6)


def test_dataset_from_a_file_or_a_subset_is_read_once_constructed(lgb, data,
                                                                   tmp_path) -> None:
    path = tmp_path / "train.csv"
    np.savetxt(path, np.c_[data["label"], data["features"]], delimiter=",")
    dataset = lgb.Dataset(str(path), params=LIGHTGBM_PARAMS)
    not_yet = r"no label until it is constructed.*dataset\.construct\(\)"
    with pytest.raises(InputError, match=not_yet):
        shift_dataset(dataset)

    result = shift_dataset(dataset.construct())

    assert result.shift == logitshift.fit(data["label"]).shift
    assert lightgbm_train_logloss(lgb, dataset) == pytest.approx(result.loss, abs=1e-6)

    subset = dataset.subset(np.arange(500))   # it takes its rows of the shifted init score
    with pytest.raises(InputError, match=not_yet):
        shift_dataset(subset)
    further = shift_dataset(subset.construct()).shift
    assert result.shift + further == pytest.approx(logitshift.fit(data["label"][:500]).shift,
                                                   abs=1e-12)


def test_dataset_refuses_an_infinite_shift(lgb, data) -> None:
    init_score = data["offset"][:100]
    dataset = lgb.Dataset(data["features"][:100], label=np.ones(100), init_score=init_score)
    with pytest.warns(RuntimeWarning) as warned, \
            pytest.raises(InputError, match="pseudo_count") as error:
        shift_dataset(dataset)
    assert warned[0].filename == __file__
    assert error.value.argument == "dataset" and error.value.value == math.inf
    assert dataset.get_init_score() is init_score   # refused: left as it was

    result = shift_dataset(dataset, pseudo_count=0.5)
    assert math.isfinite(result.shift) and result.shift > 0


def test_dataset_errors(lgb, data) -> None:
    features, label = data["features"][:50], data["label"][:50]
    multi_class = lgb.Dataset(features, label=label, init_score=np.zeros((50, 3)))
    with pytest.raises(InputError, match=r"init score of dataset has shape \(50, 3\)") as error:
        shift_dataset(multi_class)
    assert error.value.argument == "dataset"
    with pytest.raises(InputError, match="must be a lightgbm.Dataset, got ndarray"):
        shift_dataset(features)
    with pytest.raises(InputError, match=r"weight\[3\] = -1.0"):
        shift_dataset(lgb.Dataset(features, label=label,
                                  weight=np.where(np.arange(50) == 3, -1.0, 1.0)))


@pytest.mark.parametrize("options", [{}, {"pseudo_count": 0.5}], ids=["plain", "pseudo_count"])
def test_dataset_constructed_without_a_label_is_refused(lgb, data, options) -> None:
    features, offsets = data["features"][:60], data["offset"][:60]
    dataset = lgb.Dataset(features, init_score=offsets,
                          params={"verbose": -1}).construct()
    # LightGBM's default label, which a fit would take for 60 negatives.
    assert not dataset.get_label().any()
    with pytest.raises(InputError, match="every label of dataset is 0: LightGBM gives a "
                                         "Dataset constructed without a label zeros") as error:
        shift_dataset(dataset, **options)
    assert error.value.argument == "dataset"
    assert dataset.get_init_score() is offsets or np.array_equal(dataset.get_init_score(),
                                                                 offsets)
    # Not constructed: no label at all.
    with pytest.raises(InputError, match="dataset has no label until it is constructed"):
        shift_dataset(lgb.Dataset(features, init_score=offsets), **options)


# --- Examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("script, library", [("xgboost_base_margin.py", "xgboost"),
                                             ("lightgbm_init_score.py", "lightgbm")])
def test_example_runs(capsys, script, library) -> None:
    pytest.importorskip(library, reason=f"the example uses {library}")
    outcome = runpy.run_path(str(EXAMPLES / script))["main"]()
    printed = capsys.readouterr().out
    assert f"shift {outcome['shift']:.3f}" in printed
    assert outcome["shift"] == pytest.approx(-2.0, abs=0.3)
    assert outcome["loss_after"] < outcome["loss_before"] - 0.1
    # The booster that starts from the shifted scores is ahead after the same rounds.
    assert outcome["valid_from_shifted"] < outcome["valid_from_scores"] - 0.01
