"""``logitshift.boosting.refit_leaves`` against the real XGBoost and LightGBM: each refitted
leaf against ``logitshift.fit`` on the leaf's rows, the written model's margins against base
plus leaves, and one tree against XGBoost's ``refresh`` updater and LightGBM's ``refit``."""

from __future__ import annotations

import json
import math
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest

import logitshift
from logitshift import InputError
from logitshift.boosting import LeafRefit, refit_leaves

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: float32's unit roundoff.
U32 = 2.0 ** -24

# Leaves reached by one class only keep their value (tested on its own below).
pytestmark = pytest.mark.filterwarnings("ignore:.*leaves kept their value:RuntimeWarning",
                                        "ignore:.*specified the `updater`:UserWarning")


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Training rows and new rows from another population (the labels' log-odds moved by
    0.8 and a feature's effect changed), with weights."""
    rng = np.random.default_rng(2023)
    n = 6000
    X = rng.normal(size=(2 * n, 4))
    logit = X[:, 0] + 0.5 * X[:, 1] ** 2 - 0.5
    logit[n:] += 0.8 + 0.5 * X[n:, 2]
    y = (rng.random(2 * n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return {"X": X[:n], "y": y[:n], "X_new": X[n:], "y_new": y[n:],
            "w_new": rng.exponential(size=n)}


@pytest.fixture(scope="module")
def booster(data):
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3,
                      "lambda": 2.0, "base_score": 0.5},
                     xgb.DMatrix(data["X"], label=data["y"]), 12)


@pytest.fixture(scope="module")
def lgb_booster(data):
    return lgb.train({"objective": "binary", "learning_rate": 0.2, "num_leaves": 8,
                      "lambda_l2": 2.0, "verbose": -1},
                     lgb.Dataset(data["X"], data["y"]), 12)


def xgb_trees(model) -> list[dict]:
    return json.loads(bytes(model.save_raw("json")))["learner"]["gradient_booster"][
        "model"]["trees"]


def xgb_values(model) -> list[np.ndarray]:
    return [np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
            for tree in xgb_trees(model)]


def lgb_values(model) -> list[np.ndarray]:
    info = model.dump_model()["tree_info"]
    return [np.array([model.get_leaf_output(t, leaf) for leaf in range(tree["num_leaves"])])
            for t, tree in enumerate(info)]


def check_leaves_against_fit(leaves, values, base, y, weight, tolerance):
    """Each tree's new leaf value is ``logitshift.fit`` on the leaf's rows, with the base
    plus the earlier (new) trees as offset; returns the margin of base plus all trees."""
    margin = base.astype(np.float64).copy()
    checked = 0
    for t, value in enumerate(values):
        leaf = leaves[:, t]
        for node in np.unique(leaf):
            rows = leaf == node
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shift = logitshift.fit(y[rows], margin[rows],
                                       None if weight is None else weight[rows]).shift
            if not math.isfinite(shift):
                continue
            assert abs(value[node] - shift) <= tolerance(shift), (t, node, value[node], shift)
            checked += 1
        margin += value[leaf]
    assert checked >= 3 * len(values)
    return margin


def test_xgboost_leaves_are_the_exact_fit_of_their_rows(data, booster):
    result = refit_leaves(booster, data["X_new"], data["y_new"], data["w_new"],
                          learning_rate=1.0, l2=0.0, decay=0.0)
    dnew = xgb.DMatrix(data["X_new"])
    leaves = result.model.predict(dnew, pred_leaf=True).astype(np.int64)
    values = xgb_values(result.model)
    # base_score 0.5 is margin 0. XGBoost stores float32: the exact value within 1e-13
    # then rounded, half a float32 ulp.
    margin = check_leaves_against_fit(
        leaves, values, np.zeros(len(data["y_new"])), data["y_new"], data["w_new"],
        lambda s: 1e-13 * max(1.0, abs(s)) + U32 * abs(s))
    # The written model predicts base + leaves, within the float32 sum's bound.
    predicted = result.model.predict(dnew, output_margin=True).astype(np.float64)
    magnitude = sum(np.abs(v[leaves[:, t]]) for t, v in enumerate(values))
    assert np.all(np.abs(predicted - margin) <= (len(values) + 1) * U32 * magnitude)
    assert result.loss_after == pytest.approx(
        np.sum(data["w_new"] * logitshift._core.losses.loss(data["y_new"], margin))
        / np.sum(data["w_new"]), rel=1e-12)


def test_lightgbm_leaves_are_the_exact_fit_of_their_rows(data, lgb_booster):
    result = refit_leaves(lgb_booster, data["X_new"], data["y_new"], learning_rate=1.0,
                          l2=0.0, decay=0.0)
    leaves = result.model.predict(data["X_new"], pred_leaf=True).astype(np.int64)
    values = lgb_values(result.model)
    margin = check_leaves_against_fit(leaves, values, np.zeros(len(data["y_new"])),
                                      data["y_new"], None, lambda s: 1e-13 * max(1.0, abs(s)))
    np.testing.assert_allclose(result.model.predict(data["X_new"], raw_score=True), margin,
                               rtol=1e-13, atol=1e-13)


def test_a_base_margin_is_the_start_of_both_libraries(data, booster, lgb_booster):
    """XGBoost adds a base margin in place of base_score, LightGBM's predict never adds the
    init score: either way the first tree's leaves fit on top of it."""
    start = np.random.default_rng(1).normal(0.0, 1.0, len(data["y_new"]))
    for model, keyword in ((booster, "base_margin"), (lgb_booster, "init_score")):
        result = refit_leaves(model, data["X_new"], data["y_new"], learning_rate=1.0,
                              l2=0.0, trees=[0], **{keyword: start})
        if keyword == "base_margin":
            leaf = result.model[0:1].predict(xgb.DMatrix(data["X_new"]),
                                             pred_leaf=True).astype(np.int64).ravel()
            value = xgb_values(result.model)[0]
        else:
            leaf = result.model.predict(data["X_new"], pred_leaf=True)[:, 0]
            value = lgb_values(result.model)[0]
        base = start.astype(np.float32).astype(np.float64) if keyword == "base_margin" \
            else start
        for node in np.unique(leaf):
            rows = leaf == node
            shift = logitshift.fit(data["y_new"][rows], base[rows]).shift
            assert abs(value[node] - shift) <= 1e-13 + U32 * abs(shift)
    # The DMatrix's own base margin is the same start.
    dnew = xgb.DMatrix(data["X_new"], base_margin=start)
    same = refit_leaves(booster, dnew, data["y_new"], learning_rate=1.0, l2=0.0, trees=[0])
    other = refit_leaves(booster, data["X_new"], data["y_new"], learning_rate=1.0, l2=0.0,
                         trees=[0], base_margin=start)
    assert xgb_values(same.model)[0].tolist() == xgb_values(other.model)[0].tolist()


@pytest.mark.parametrize("objective", ["binary:logistic", "binary:logitraw"])
def test_base_score_is_the_start_without_a_base_margin(data, objective):
    """A base_score that is not 0.5 enters the margins as XGBoost's predict adds it: a
    probability for binary:logistic, a margin for binary:logitraw."""
    model = xgb.train({"objective": objective, "max_depth": 2, "base_score": 0.2},
                      xgb.DMatrix(data["X"], label=data["y"]), 3)
    result = refit_leaves(model, data["X_new"], data["y_new"], learning_rate=1.0, l2=0.0)
    dnew = xgb.DMatrix(data["X_new"])
    leaves = result.model.predict(dnew, pred_leaf=True).astype(np.int64)
    values = xgb_values(result.model)
    base = (np.float32(np.log(np.float32(0.2) / np.float32(0.8)))
            if objective == "binary:logistic" else np.float32(0.2))
    check_leaves_against_fit(leaves, values, np.full(len(data["y_new"]), float(base)),
                             data["y_new"], None,
                             lambda s: 1e-6 * max(1.0, abs(s)) + U32 * abs(s))


def penalised_loss(y, margin, value, l2):
    z = margin + value
    return float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * value * value


@pytest.mark.parametrize("l2", [0.0, 1.0, 30.0])
def test_one_tree_beats_xgboost_refresh_on_the_training_loss(data, l2):
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 1.0, "lambda": l2,
              "base_score": 0.5, "min_child_weight": 0.0}
    model = xgb.train(params, xgb.DMatrix(data["X"], label=data["y"]), 1)
    dnew = xgb.DMatrix(data["X_new"], label=data["y_new"])
    refreshed = xgb.train({**params, "process_type": "update", "updater": "refresh",
                           "refresh_leaf": True}, dnew, 1, xgb_model=model)
    result = refit_leaves(model, dnew)  # eta and lambda: the model's
    assert result.l2 == l2 and result.learning_rate.tolist() == [1.0]
    leaf = model.predict(dnew, pred_leaf=True).astype(np.int64).ravel()
    ours, theirs = xgb_values(result.model)[0], xgb_values(refreshed)[0]
    y = data["y_new"]
    margin = np.zeros(y.size)
    for node in np.unique(leaf):
        rows = leaf == node
        mine = penalised_loss(y[rows], margin[rows], ours[node], l2)
        other = penalised_loss(y[rows], margin[rows], theirs[node], l2)
        assert mine <= other + 1e-6 * abs(other)
    total = (lambda v: sum(penalised_loss(y[leaf == k], 0.0, v[k], l2) for k in np.unique(leaf)))
    assert total(ours) < total(theirs)


def test_one_tree_beats_lightgbm_refit_on_the_training_loss(data):
    """LightGBM's first tree carries boost_from_average's start (shrinkage 1): its refit
    takes one Newton step from 0, refit_leaves the exact minimiser."""
    params = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 12,
              "lambda_l2": 5.0, "verbose": -1}
    model = lgb.train(params, lgb.Dataset(data["X"], data["y"]), 1)
    theirs_model = model.refit(data["X_new"], data["y_new"], decay_rate=0.0)
    result = refit_leaves(model, data["X_new"], data["y_new"])
    assert result.learning_rate.tolist() == [1.0] and result.l2 == 5.0
    leaf = model.predict(data["X_new"], pred_leaf=True)[:, 0]
    ours, theirs = lgb_values(result.model)[0], lgb_values(theirs_model)[0]
    y = data["y_new"]
    for node in np.unique(leaf):
        rows = leaf == node
        assert (penalised_loss(y[rows], 0.0, ours[node], 5.0)
                <= penalised_loss(y[rows], 0.0, theirs[node], 5.0) + 1e-9)
    assert result.loss_after < result.loss_before


def test_the_callers_models_are_unchanged(data, booster, lgb_booster):
    raw, text = bytes(booster.save_raw("json")), lgb_booster.model_to_string()
    classifier = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(data["X"], data["y"])
    lgb_classifier = lgb.LGBMClassifier(n_estimators=4, verbose=-1).fit(data["X"], data["y"])
    raw_c = bytes(classifier.get_booster().save_raw("json"))
    text_c = lgb_classifier.booster_.model_to_string()
    X, y = data["X_new"].copy(), data["y_new"].copy()
    for model in (booster, lgb_booster, classifier, lgb_classifier):
        result = refit_leaves(model, data["X_new"], data["y_new"])
        assert type(result.model) is type(model) and result.model is not model
        assert result.leaves_changed.sum() > 0
    assert bytes(booster.save_raw("json")) == raw and lgb_booster.model_to_string() == text
    assert bytes(classifier.get_booster().save_raw("json")) == raw_c
    assert lgb_classifier.booster_.model_to_string() == text_c
    np.testing.assert_array_equal(X, data["X_new"])
    np.testing.assert_array_equal(y, data["y_new"])


def test_the_wrappers_predict_with_the_new_leaves(data):
    classifier = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(data["X"], data["y"])
    result = refit_leaves(classifier, data["X_new"], data["y_new"])
    booster = result.model.get_booster()
    np.testing.assert_allclose(result.model.predict_proba(data["X_new"])[:, 1],
                               booster.predict(xgb.DMatrix(data["X_new"])), rtol=1e-6)
    loss = np.mean(np.logaddexp(0.0, booster.predict(xgb.DMatrix(data["X_new"]),
                                                     output_margin=True))
                   - data["y_new"] * booster.predict(xgb.DMatrix(data["X_new"]),
                                                     output_margin=True))
    assert loss == pytest.approx(result.loss_after, rel=1e-5)


def test_trees_decay_and_unreached_leaves(data, booster):
    old = xgb_values(booster)
    some = refit_leaves(booster, data["X_new"], data["y_new"], trees=[2, 5])
    new = xgb_values(some.model)
    assert some.trees.tolist() == [2, 5]
    for t in range(len(old)):
        assert (new[t] == old[t]).all() == (t not in (2, 5))
    kept = refit_leaves(booster, data["X_new"], data["y_new"], decay=1.0)
    assert kept.leaves_changed.sum() == 0
    assert [v.tolist() for v in xgb_values(kept.model)] == [v.tolist() for v in old]
    full = xgb_values(refit_leaves(booster, data["X_new"], data["y_new"], trees=0).model)[0]
    half = xgb_values(refit_leaves(booster, data["X_new"], data["y_new"], trees=0,
                                   decay=0.5).model)[0]
    assert np.allclose(half, 0.5 * old[0] + 0.5 * full, rtol=0, atol=4 * U32 * np.abs(old[0]
                                                                                   + full))
    # Rows that reach only some leaves: the others keep their values.
    few = refit_leaves(booster, data["X_new"][:5], data["y_new"][:5], l2=1.0)
    leaves = booster.predict(xgb.DMatrix(data["X_new"][:5]), pred_leaf=True).astype(int)
    for t, (before, after) in enumerate(zip(old, xgb_values(few.model))):
        unreached = np.setdiff1d(np.arange(before.size), leaves[:, t])
        assert (after[unreached] == before[unreached]).all()
        assert few.leaves_changed[t] <= np.unique(leaves[:, t]).size


def test_a_leaf_of_one_class_keeps_its_value_without_a_penalty(data, booster):
    rows = 40  # few rows: some leaves are reached by one class only
    with pytest.warns(RuntimeWarning, match="leaves kept their value"):
        result = refit_leaves(booster, data["X_new"][:rows], data["y_new"][:rows],
                              learning_rate=1.0, l2=0.0)
    assert result.kept
    old, new = xgb_values(booster), xgb_values(result.model)
    for tree, leaf in result.kept:
        assert new[tree][leaf] == old[tree][leaf]
    assert all(np.isfinite(v).all() for v in new)
    # With a penalty every reached leaf has a finite minimiser.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert refit_leaves(booster, data["X_new"][:rows], data["y_new"][:rows],
                            l2=1.0).kept == ()


def test_the_report(data, booster):
    result = refit_leaves(booster, data["X_new"], data["y_new"], data["w_new"])
    assert isinstance(result, LeafRefit)
    out = result.to_dict(json_safe=True)
    json.dumps(out, allow_nan=False)
    assert out["trees"] == list(range(12)) and len(out["largest_change"]) == 12
    assert result.learning_rate == pytest.approx(np.full(12, 0.3)) and result.l2 == 2.0
    margin = booster.predict(xgb.DMatrix(data["X_new"]), output_margin=True).astype(float)
    w, y = data["w_new"], data["y_new"]
    before = np.sum(w * (np.logaddexp(0.0, margin) - y * margin)) / np.sum(w)
    assert result.loss_before == pytest.approx(before, rel=1e-5)
    assert "LeafRefit(trees=12" in repr(result)


def test_refused_models_and_inputs(data, booster):
    X, y = data["X"], data["y"]
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
                      xgb.DMatrix(X, label=(y + (X[:, 0] > 1)).astype(int)), 2)
    with pytest.raises(InputError, match="'multi:softprob'.*multiclass recalibration"):
        refit_leaves(multi, X, y)
    squared = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(X, label=y), 2)
    with pytest.raises(InputError, match="'reg:squarederror'"):
        refit_leaves(squared, X, y)
    dart = xgb.train({"objective": "binary:logistic", "booster": "dart"},
                     xgb.DMatrix(X, label=y), 2)
    with pytest.raises(InputError, match="'dart'"):
        refit_leaves(dart, X, y)
    lgb_multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                          lgb.Dataset(X, (y + (X[:, 0] > 1)).astype(int)), 2)
    with pytest.raises(InputError, match="multiclass"):
        refit_leaves(lgb_multi, X, y)
    with pytest.raises(InputError, match="lightgbm.Dataset"):
        refit_leaves(lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 2),
                     lgb.Dataset(X, y), y)
    with pytest.raises(InputError, match="XGBoost or LightGBM model"):
        refit_leaves(object(), X, y)
    cases = [
        (dict(y=y[:-1]), "y has 5999 rows, data has 6000"),
        (dict(y=np.where(np.arange(y.size) == 7, 2.0, y)), r"y\[7\] = 2.0"),
        (dict(weight=-np.ones(y.size)), "weight"),
        (dict(trees=[12]), r"trees\[0\] = 12 is not a tree"),
        (dict(trees=["a"]), r"trees\[0\] = 'a'"),
        (dict(decay=1.5), "decay = 1.5"),
        (dict(learning_rate=0.0), "learning_rate = 0.0"),
        (dict(l2=-1.0), "l2 = -1.0"),
        (dict(base_margin=np.full(y.size, np.nan)), r"base_margin\[0\]"),
        (dict(base_margin=np.zeros(y.size), init_score=np.zeros(y.size)), "not both"),
    ]
    for extra, message in cases:
        arguments = {"y": y, **extra}
        with pytest.raises(InputError, match=message):
            refit_leaves(booster, X, **arguments)
    with pytest.raises(InputError, match="set its base margin"):
        refit_leaves(booster, xgb.DMatrix(X), y, base_margin=np.zeros(y.size))


def test_the_example_adapts_the_model_to_the_new_population(capsys):
    pytest.importorskip("statsmodels")
    outcome = runpy.run_path(str(EXAMPLES / "refit_leaves.py"))["main"]()
    assert "held-out log loss" in capsys.readouterr().out
    assert outcome["loss_after"] < outcome["loss_before"] - 0.1
    assert outcome["refit_leaves"] < outcome["as trained"] - 0.1
