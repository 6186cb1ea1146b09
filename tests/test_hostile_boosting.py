"""Odd inputs to ``fit_groups(..., l2=)``, ``refit_leaves``, ``shift_pool`` and
``shift_catboost``, as a new user tries them. Each answer is checked against a reference
(a numpy Newton per group or per leaf, ``logitshift.fit`` on a leaf's rows with the earlier
trees' margin as offset, the model's own ``predict`` of its margin after the refit) or is an
``InputError`` that names the argument and its value."""

from __future__ import annotations

import importlib
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logitshift
from logitshift import InputError
import logitshift.boosting
from logitshift.boosting import refit_leaves, shift_catboost
from reference import penalised_shift

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

pytestmark = pytest.mark.filterwarnings("ignore:.*leaves kept their value:RuntimeWarning",
                                        "ignore:.*groups have labels of one class",
                                        "ignore:every label is:RuntimeWarning",
                                        "ignore:model was trained with monotone_constraints",
                                        "ignore:The argument 'eval_set' is deprecated",
                                        "ignore::UserWarning")

N = 400
FEATURES = ["age", "dose", "site"]


def mean_loss(y: np.ndarray, margin: np.ndarray, weight: np.ndarray | None) -> float:
    per_row = np.logaddexp(0.0, margin) - y * margin
    return float(np.average(per_row, weights=weight))


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    """Training rows and new rows whose log-odds are moved by 0.7."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(2 * N, 3))
    logit = X[:, 0] - 0.5 * X[:, 1] - 0.3
    logit[N:] += 0.7
    y = (rng.random(2 * N) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return {"X": X[:N], "y": y[:N], "X_new": X[N:], "y_new": y[N:],
            "w_new": rng.exponential(size=N), "margin_new": rng.normal(0.0, 0.5, N)}


@pytest.fixture(scope="module")
def models(rows) -> dict[str, object]:
    """Tiny models of every kind the battery refits, trained once."""
    X, y = rows["X"], rows["y"]
    frame = pd.DataFrame(X, columns=FEATURES)
    ints = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    small = {"max_depth": 2, "eta": 0.4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {
            "xgb": xgb.train({"objective": "binary:logistic", **small},
                             xgb.DMatrix(X, label=y), 4),
            "xgb_clf": xgb.XGBClassifier(n_estimators=4, max_depth=2,
                                         learning_rate=0.4).fit(X, y),
            "xgb_frame": xgb.XGBClassifier(n_estimators=4, max_depth=2,
                                           learning_rate=0.4).fit(frame, y),
            "lgb": lgb.train({"objective": "binary", "num_leaves": 4, "learning_rate": 0.4,
                              "verbose": -1}, lgb.Dataset(X, y), 4),
            "lgb_clf": lgb.LGBMClassifier(n_estimators=4, num_leaves=4, learning_rate=0.4,
                                          verbose=-1).fit(X, y),
            "lgb_frame": lgb.LGBMClassifier(n_estimators=4, num_leaves=4, learning_rate=0.4,
                                            verbose=-1).fit(frame, y),
            "xgb_multi": xgb.XGBClassifier(n_estimators=2, max_depth=2).fit(X, ints),
            "lgb_multi": lgb.LGBMClassifier(n_estimators=2, num_leaves=4,
                                            verbose=-1).fit(X, ints),
            "xgb_regression": xgb.train({"objective": "reg:squarederror", **small},
                                        xgb.DMatrix(X, label=y), 2),
            "lgb_regression": lgb.train({"objective": "regression", "num_leaves": 4,
                                         "verbose": -1}, lgb.Dataset(X, y), 2),
        }
    return out


# -- the reference of a refit ------------------------------------------------------------------

def _parts(model, X, base_margin=None):
    """The model's own margin on ``X`` (its ``predict``), each row's leaf per tree and each
    tree's leaf values, read from the library, not from logitshift."""
    if isinstance(model, (xgb.Booster, xgb.XGBModel)):
        booster = model if isinstance(model, xgb.Booster) else model.get_booster()
        data = xgb.DMatrix(X, base_margin=base_margin)
        if isinstance(model, xgb.Booster):
            own = model.predict(data, output_margin=True)
        else:
            own = model.predict(X, output_margin=True, base_margin=base_margin)
        trees = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"][
            "model"]["trees"]
        leaves = booster.predict(data, pred_leaf=True).reshape(np.shape(X)[0], -1)
        values = [np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)
                  for t in trees]
        return np.asarray(own, dtype=np.float64), leaves.astype(int), values
    booster = model if isinstance(model, lgb.Booster) else model.booster_
    own = np.asarray(model.predict(X, raw_score=True), dtype=np.float64)
    if base_margin is not None:
        own = own + base_margin
    leaves = np.asarray(booster.predict(X, pred_leaf=True)).reshape(np.shape(X)[0], -1)
    info = booster.dump_model()["tree_info"]
    values = [np.array([booster.get_leaf_output(t, j) for j in range(tree["num_leaves"])])
              for t, tree in enumerate(info)]
    return own, leaves.astype(int), values


def check_refit(old_model, result, X, y, weight=None, base_margin=None, *, learning_rate,
                l2, decay=0.0, trees=None, n_used=None) -> None:
    """The new model's own margin is base plus its leaves, and each refitted leaf is
    ``decay·old + (1 - decay)·learning_rate·s*``, ``s*`` the numpy (penalised) Newton of
    the leaf's rows (``logitshift.fit`` where ``l2 = 0``) with base plus the earlier new
    trees as offset."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    old_own, old_leaves, old_values = _parts(old_model, X, base_margin)
    own, leaves, values = _parts(result.model, X, base_margin)
    n_used = len(values) if n_used is None else n_used
    np.testing.assert_array_equal(leaves, old_leaves)  # the structure is kept
    old_sum = sum(old_values[t][old_leaves[:, t]] for t in range(n_used))
    base = old_own - old_sum
    stored = np.float32 if isinstance(old_model, (xgb.Booster, xgb.XGBModel)) else np.float64
    tolerance = 4e-6 if stored is np.float32 else 1e-9
    chosen = np.zeros(len(values), dtype=bool)
    chosen[:n_used] = True if trees is None else False
    if trees is not None:
        chosen[np.asarray(trees, dtype=int)] = True
    if learning_rate is None:  # the model's own: LightGBM's per-tree shrinkage, eta
        if stored is np.float64:
            booster = old_model if isinstance(old_model, lgb.Booster) else old_model.booster_
            rates = [tree["shrinkage"] for tree in booster.dump_model()["tree_info"]]
        else:
            booster = (old_model if isinstance(old_model, xgb.Booster)
                       else old_model.get_booster())
            config = json.loads(booster.save_config())
            rates = [float(config["learner"]["gradient_booster"]["tree_train_param"]["eta"])
                     ] * len(values)
    else:
        rates = [learning_rate] * len(values)
    margin = base.copy()
    for t in range(n_used):
        leaf = leaves[:, t]
        for j in np.unique(leaf):
            if not chosen[t]:
                assert values[t][j] == old_values[t][j]
                continue
            rows = leaf == j
            if not w[rows].sum() > 0:
                assert values[t][j] == old_values[t][j]
                continue
            if l2 > 0:
                s = penalised_shift(y[rows], margin[rows], w[rows], l2)[0]
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = logitshift.fit(y[rows], margin[rows], w[rows]).shift
            if not math.isfinite(s):  # one class without a penalty: kept
                assert values[t][j] == old_values[t][j]
                continue
            expected = decay * old_values[t][j] + (1.0 - decay) * rates[t] * s
            assert abs(values[t][j] - expected) <= tolerance * max(1.0, abs(expected)), (
                t, j, values[t][j], expected)
        margin += values[t][leaf]
    # Trees past the ones predict uses are kept as they were.
    for t in range(n_used, len(values)):
        np.testing.assert_array_equal(values[t], old_values[t])
    scale = np.abs(base) + sum(np.abs(values[t][leaves[:, t]]) for t in range(n_used))
    assert np.all(np.abs(own - margin) <= (n_used + 2) * 2.0 ** -22 * (1.0 + scale))
    assert result.loss_after == pytest.approx(mean_loss(y, own, w), rel=1e-5)
    assert result.loss_before == pytest.approx(mean_loss(y, old_own, w), rel=1e-5)


def refused(call, argument: str, *fragments: str) -> InputError:
    """``call()`` raises an InputError naming ``argument`` and each fragment."""
    with pytest.raises(InputError) as info:
        call()
    assert info.value.argument == argument, (info.value.argument, str(info.value))
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    return info.value


# -- options of refit_leaves ---------------------------------------------------------------------

#: (id, keyword arguments, the argument named, a fragment of the message)
BAD_OPTIONS = [
    ("trees-float", {"trees": 2.0}, "trees", "2.0"),
    ("trees-str", {"trees": "2"}, "trees", "'2'"),
    ("trees-past-end", {"trees": 4}, "trees", "4"),
    ("trees-negative-past-start", {"trees": [-5]}, "trees", "-5"),
    ("trees-bool", {"trees": [True]}, "trees", "True"),
    ("trees-mask", {"trees": np.array([True, False, True, False])}, "trees", "True"),
    ("trees-2d", {"trees": np.array([[1, 2]])}, "trees", "[1, 2]"),
    ("trees-none-inside", {"trees": [None]}, "trees", "None"),
    ("trees-float-array", {"trees": np.array([1.0])}, "trees", "1.0"),
    ("decay-negative", {"decay": -0.1}, "decay", "-0.1"),
    ("decay-above-one", {"decay": 1.5}, "decay", "1.5"),
    ("decay-nan", {"decay": math.nan}, "decay", "nan"),
    ("decay-inf", {"decay": math.inf}, "decay", "inf"),
    ("decay-str", {"decay": "0.5"}, "decay", "'0.5'"),
    ("decay-bool", {"decay": True}, "decay", "True"),
    ("lr-zero", {"learning_rate": 0}, "learning_rate", "0"),
    ("lr-negative", {"learning_rate": -0.3}, "learning_rate", "-0.3"),
    ("lr-nan", {"learning_rate": math.nan}, "learning_rate", "nan"),
    ("lr-inf", {"learning_rate": math.inf}, "learning_rate", "inf"),
    ("lr-str", {"learning_rate": "0.1"}, "learning_rate", "'0.1'"),
    ("lr-bool", {"learning_rate": True}, "learning_rate", "True"),
    ("lr-overflows-leaves", {"learning_rate": 1e300}, "learning_rate", "1e+300"),
    ("l2-negative", {"l2": -1.0}, "l2", "-1.0"),
    ("l2-nan", {"l2": math.nan}, "l2", "nan"),
    ("l2-inf", {"l2": math.inf}, "l2", "inf"),
    ("l2-str", {"l2": "1"}, "l2", "'1'"),
    ("l2-bool", {"l2": True}, "l2", "True"),
    ("l2-huge-int", {"l2": 10 ** 400}, "l2", "inf"),
    ("l2-list", {"l2": [1.0]}, "l2", "[1.0]"),
]


@pytest.mark.parametrize("library", ["xgb", "lgb"])
@pytest.mark.parametrize("options, argument, fragment",
                         [case[1:] for case in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS])
def test_bad_options_are_refused_by_name(rows, models, library, options, argument,
                                         fragment):
    refused(lambda: refit_leaves(models[library], rows["X_new"], rows["y_new"], **options),
            argument, fragment)


#: (id, keyword arguments): every one is a refit the reference checks.
GOOD_OPTIONS = [
    ("defaults", {}),
    ("trees-empty", {"trees": []}),
    ("trees-negative", {"trees": -1}),
    ("trees-duplicated-unsorted", {"trees": [2, 0, 2]}),
    ("trees-numpy", {"trees": np.array([3, 1])}),
    ("trees-0d-numpy", {"trees": np.array(2)}),
    ("trees-range", {"trees": range(2)}),
    ("trees-set", {"trees": {3, 0}}),
    ("trees-generator", {"trees": (t for t in [1])}),
    ("trees-uint64", {"trees": np.array([2], dtype=np.uint64)}),
    ("trees-numpy-int-negative", {"trees": np.int64(-2)}),
    ("decay-one", {"decay": 1.0}),
    ("decay-half", {"decay": 0.5}),
    ("lr-one-l2-zero", {"learning_rate": 1.0, "l2": 0.0}),
    ("lr-tiny", {"learning_rate": 1e-300}),
    ("l2-tiny", {"l2": 1e-300}),
    ("l2-huge", {"l2": 1e300}),
    ("l2-numpy-float32", {"l2": np.float32(2.0)}),
    ("l2-numpy-int", {"l2": np.int64(3)}),
]


@pytest.mark.parametrize("library", ["xgb", "lgb"])
@pytest.mark.parametrize("options", [case[1] for case in GOOD_OPTIONS],
                         ids=[c[0] for c in GOOD_OPTIONS])
def test_odd_but_valid_options_refit_as_the_reference(rows, models, library, options):
    model = models[library]
    trees = options.get("trees")
    if trees is not None and not isinstance(trees, np.ndarray):  # a generator runs once
        trees = list(trees) if isinstance(trees, (range, set)) else trees
    if hasattr(trees, "__next__"):
        trees = [1]
        options = {**options, "trees": (t for t in trees)}
    result = refit_leaves(model, rows["X_new"], rows["y_new"], **options)
    default_l2 = 1.0 if library == "xgb" else 0.0
    lr = options.get("learning_rate")
    if trees is not None:
        trees = np.atleast_1d(np.asarray(trees)).astype(np.int64)
        trees = np.unique(np.where(trees < 0, trees + 4, trees))
    check_refit(model, result, rows["X_new"], rows["y_new"], learning_rate=lr,
                l2=float(options.get("l2", default_l2)), decay=options.get("decay", 0.0),
                trees=trees)


# -- data, labels, weights and margins given to refit_leaves -------------------------------------

def _frame(X, order=FEATURES):
    return pd.DataFrame(X, columns=FEATURES)[list(order)]


#: (id, a function of the rows giving refit_leaves' arguments after the model, the argument
#: named, a fragment of the message)
BAD_DATA = [
    ("fewer-features", lambda r: dict(data=r["X_new"][:, :2], y=r["y_new"]), "data", "2"),
    ("more-features", lambda r: dict(data=np.c_[r["X_new"], r["X_new"][:, :1]],
                                     y=r["y_new"]), "data", "4"),
    ("one-dimensional", lambda r: dict(data=r["X_new"][:, 0], y=r["y_new"]), "data",
     "(400,)"),
    ("ragged-lists", lambda r: dict(data=[[1.0, 2.0, 3.0], [1.0]], y=[0, 1]), "data",
     "(2,)"),
    ("text-features", lambda r: dict(data=np.full((N, 3), "a"), y=r["y_new"]), "data",
     "cannot read data"),
    ("y-short", lambda r: dict(data=r["X_new"], y=r["y_new"][:-1]), "y", "399"),
    ("y-long", lambda r: dict(data=r["X_new"], y=np.r_[r["y_new"], 1.0]), "y", "401"),
    ("y-two-columns", lambda r: dict(data=r["X_new"], y=np.c_[r["y_new"], r["y_new"]]), "y",
     "(400, 2)"),
    ("y-minus-one-one", lambda r: dict(data=r["X_new"], y=2 * r["y_new"] - 1), "y", "-1.0"),
    ("y-text", lambda r: dict(data=r["X_new"], y=np.where(r["y_new"] > 0, "yes", "no")), "y",
     "numeric"),
    ("y-nan", lambda r: dict(data=r["X_new"], y=np.r_[np.nan, r["y_new"][1:]]), "y", "nan"),
    ("y-missing", lambda r: dict(data=r["X_new"]), "y", "missing"),
    ("no-rows", lambda r: dict(data=r["X_new"][:0], y=r["y_new"][:0]), "y", "empty"),
    ("weight-negative", lambda r: dict(data=r["X_new"], y=r["y_new"], weight=-r["w_new"]),
     "weight", "weight[0]"),
    ("weight-nan", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                  weight=np.r_[r["w_new"][:5], np.nan, r["w_new"][6:]]),
     "weight", "weight[5]"),
    ("weight-inf", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                  weight=np.r_[math.inf, r["w_new"][1:]]), "weight", "inf"),
    ("weight-short", lambda r: dict(data=r["X_new"], y=r["y_new"], weight=r["w_new"][:9]),
     "weight", "9"),
    ("weight-zero", lambda r: dict(data=r["X_new"], y=r["y_new"], weight=np.zeros(N)),
     "weight", "zero"),
    ("weight-scalar", lambda r: dict(data=r["X_new"], y=r["y_new"], weight=2.0), "weight",
     "weight = 2.0 must be an array"),
    ("y-scalar", lambda r: dict(data=r["X_new"], y=1.0), "y", "y = 1.0 must be an array"),
    ("data-none", lambda r: dict(data=None, y=r["y_new"]), "data", "()"),
    ("three-dimensional", lambda r: dict(data=r["X_new"][:, :, None], y=r["y_new"]), "data",
     "(400, 3, 1)"),
    ("object-frame", lambda r: dict(data=_frame(r["X_new"]).astype(object), y=r["y_new"]),
     "data", "cannot read data"),
    ("margin-short", lambda r: dict(data=r["X_new"], y=r["y_new"], base_margin=np.zeros(7)),
     "base_margin", "7"),
    ("margin-nan", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                  base_margin=np.r_[np.nan, np.zeros(N - 1)]),
     "base_margin", "nan"),
    ("margin-inf", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                  init_score=np.r_[np.zeros(3), -math.inf, np.zeros(N - 4)]),
     "init_score", "init_score[3]"),
    ("margin-bool", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                   base_margin=np.ones(N, dtype=bool)), "base_margin",
     "boolean"),
    ("margin-two-columns", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                          base_margin=np.zeros((N, 2))), "base_margin",
     "(400, 2)"),
    ("margin-and-init-score", lambda r: dict(data=r["X_new"], y=r["y_new"],
                                             base_margin=np.zeros(N), init_score=np.zeros(N)),
     "init_score", "not both"),
]


@pytest.mark.parametrize("library", ["xgb", "lgb"])
@pytest.mark.parametrize("make, argument, fragment", [case[1:] for case in BAD_DATA],
                         ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_refused_by_name(rows, models, library, make, argument, fragment):
    refused(lambda: refit_leaves(models[library], **make(rows)), argument, fragment)


@pytest.mark.parametrize("library", ["xgb_frame", "lgb_frame"])
@pytest.mark.parametrize("order", [["site", "age", "dose"], ["dose", "age", "site"]],
                         ids=["rotated", "swapped"])
def test_a_frame_with_the_columns_in_another_order_is_refused(rows, models, library, order):
    """XGBoost's own predict refuses it; LightGBM's reads it by position, which would
    silently refit other features' splits."""
    refused(lambda: refit_leaves(models[library], _frame(rows["X_new"], order),
                                 rows["y_new"]), "data", "another order", repr(FEATURES))


def test_xgboosts_own_refusal_is_quoted_without_its_cpp_prefix(rows, models):
    error = refused(lambda: refit_leaves(models["xgb"], np.where(rows["X_new"] > 1.5, math.inf,
                                                                 rows["X_new"]),
                                         rows["y_new"]), "data", "`inf`")
    assert "Check failed" not in str(error) and ".cc:" not in str(error)
    assert len(str(error).splitlines()) == 1


def test_a_frame_with_other_names_is_refused_as_xgboost_refuses_it(rows, models):
    frame = _frame(rows["X_new"]).set_axis(["a", "b", "c"], axis=1)
    with pytest.raises(ValueError, match="feature_names mismatch"):
        models["xgb_frame"].predict(frame)
    refused(lambda: refit_leaves(models["xgb_frame"], frame, rows["y_new"]), "data",
            "['a', 'b', 'c']")


#: (id, a function of the rows giving refit_leaves' data, y, weight, and the margin the model
#: boosts from, which the reference adds as XGBoost's base_margin or LightGBM's init_score)
GOOD_DATA = [
    ("lists", lambda r: (r["X_new"].tolist(), r["y_new"].tolist(), None, None)),
    ("polars", lambda r: (pytest.importorskip("polars").DataFrame(r["X_new"]),
                          pytest.importorskip("polars").Series(r["y_new"]), None, None)),
    ("sparse", lambda r: (__import__("scipy.sparse").sparse.csr_matrix(
        np.where(np.abs(r["X_new"]) < 0.3, 0.0, r["X_new"])), r["y_new"], None, None)),
    ("missing-values", lambda r: (np.where(r["X_new"] > 1.0, np.nan, r["X_new"]),
                                  r["y_new"], None, None)),
    ("float32-features", lambda r: (r["X_new"].astype(np.float32), r["y_new"], None, None)),
    ("soft-labels", lambda r: (r["X_new"], 0.2 + 0.6 * r["y_new"], None, None)),
    ("bool-labels", lambda r: (r["X_new"], r["y_new"] > 0, None, None)),
    ("int8-labels", lambda r: (r["X_new"], r["y_new"].astype(np.int8), None, None)),
    ("series-labels-odd-index", lambda r: (r["X_new"], pd.Series(r["y_new"],
                                                                index=np.arange(N)[::-1] * 3),
                                           None, None)),
    ("column-labels", lambda r: (r["X_new"], r["y_new"][:, None], None, None)),
    ("weights", lambda r: (r["X_new"], r["y_new"], r["w_new"], None)),
    ("weights-2**600", lambda r: (r["X_new"], r["y_new"], np.ldexp(r["w_new"], 600), None)),
    ("weights-2**-600", lambda r: (r["X_new"], r["y_new"], np.ldexp(r["w_new"], -600), None)),
    ("some-zero-weights", lambda r: (r["X_new"], r["y_new"],
                                     np.where(r["X_new"][:, 0] > 0.5, 0.0, r["w_new"]), None)),
    ("one-row", lambda r: (r["X_new"][:1], r["y_new"][:1], None, None)),
    ("one-class", lambda r: (r["X_new"], np.ones(N), None, None)),
    ("margin", lambda r: (r["X_new"], r["y_new"], r["w_new"], r["margin_new"])),
    ("margin-float32", lambda r: (r["X_new"], r["y_new"], None,
                                  r["margin_new"].astype(np.float32))),
]


#: The scikit-learn wrappers take the cases where their predict differs from a Booster's.
GOOD_DATA_CASES = ([(library, case) for case in GOOD_DATA for library in ("xgb", "lgb")]
                   + [(library, case) for case in GOOD_DATA
                      if case[0] in ("lists", "weights", "margin", "one-class")
                      for library in ("xgb_clf", "lgb_clf")])


@pytest.mark.parametrize("library, case", GOOD_DATA_CASES,
                         ids=[f"{case[0]}-{library}" for library, case in GOOD_DATA_CASES])
def test_odd_but_valid_data_refit_as_the_reference(rows, models, library, case):
    data, y, weight, margin = case[1](rows)
    model = models[library]
    keyword = "base_margin" if library.startswith("xgb") else "init_score"
    result = refit_leaves(model, data, y, weight,
                          **({} if margin is None else {keyword: margin}))
    # A sparse matrix goes to the reference as it is: its zeros are zeros, not missing.
    table = data if hasattr(data, "toarray") else np.asarray(data, dtype=float)
    if hasattr(data, "to_numpy"):
        table = data.to_numpy()
    check_refit(model, result, table, np.ravel(np.asarray(y, dtype=float)), weight,
                None if margin is None else np.asarray(margin, dtype=np.float32 if
                                                       library.startswith("xgb") else float),
                learning_rate=None, l2=1.0 if library.startswith("xgb") else 0.0)


# -- models refit_leaves refuses, by name --------------------------------------------------------

#: (id, a function of the models giving the model, a fragment of the message)
BAD_MODELS = [
    ("not-a-model", lambda m: "model.json", "str"),
    ("a-numpy-array", lambda m: np.zeros(3), "ndarray"),
    ("unfitted-xgb", lambda m: xgb.XGBClassifier(), "not fitted"),
    ("unfitted-lgb", lambda m: lgb.LGBMClassifier(), "not fitted"),
    ("xgb-multiclass", lambda m: m["xgb_multi"], "multiclass"),
    ("lgb-multiclass", lambda m: m["lgb_multi"], "multiclass"),
    ("xgb-regression", lambda m: m["xgb_regression"], "reg:squarederror"),
    ("lgb-regression", lambda m: m["lgb_regression"], "regression"),
]


@pytest.mark.parametrize("make, fragment", [case[1:] for case in BAD_MODELS],
                         ids=[c[0] for c in BAD_MODELS])
def test_bad_models_are_refused_by_name(rows, models, make, fragment):
    refused(lambda: refit_leaves(make(models), rows["X_new"], rows["y_new"]), "model",
            fragment)


@pytest.mark.parametrize("params, fragment", [
    ({"objective": "reg:logistic"}, "reg:logistic"),
    ({"objective": "binary:hinge"}, "binary:hinge"),
    ({"objective": "binary:logistic", "booster": "dart"}, "dart"),
    ({"objective": "binary:logistic", "booster": "gblinear"}, "gblinear"),
], ids=["reg-logistic", "hinge", "dart", "gblinear"])
def test_xgboost_models_that_are_not_binary_tree_boosters_are_refused(rows, params,
                                                                      fragment):
    model = xgb.train(params, xgb.DMatrix(rows["X"], label=rows["y"]), 2)
    refused(lambda: refit_leaves(model, rows["X_new"], rows["y_new"]), "model", fragment)


@pytest.mark.parametrize("params, fragment", [
    ({"objective": "cross_entropy"}, "cross_entropy"),
    ({"objective": "binary", "sigmoid": 2.0}, "sigmoid:2"),
    ({"objective": "binary", "linear_tree": True}, "linear_tree"),
], ids=["cross-entropy", "sigmoid-2", "linear-tree"])
def test_lightgbm_models_whose_leaves_are_not_log_odds_are_refused(rows, params, fragment):
    model = lgb.train({**params, "num_leaves": 4, "verbose": -1},
                      lgb.Dataset(rows["X"], rows["y"]), 2)
    refused(lambda: refit_leaves(model, rows["X_new"], rows["y_new"]), "model", fragment)


# -- models trained in less common ways -------------------------------------------------------

@pytest.fixture(scope="module")
def stopped(rows) -> dict[str, object]:
    """Models that stopped early on the new rows' first half (best iteration before the
    last)."""
    X, y, X_valid, y_valid = rows["X"], rows["y"], rows["X_new"][:200], rows["y_new"][:200]
    return {
        "xgb_clf": xgb.XGBClassifier(n_estimators=60, max_depth=3, learning_rate=0.9,
                                     early_stopping_rounds=2).fit(
            X, y, eval_set=[(X_valid, y_valid)], verbose=False),
        "xgb": xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.9},
                         xgb.DMatrix(X, label=y), 60,
                         evals=[(xgb.DMatrix(X_valid, label=y_valid), "valid")],
                         early_stopping_rounds=2, verbose_eval=False),
        "lgb_clf": lgb.LGBMClassifier(n_estimators=60, num_leaves=8, learning_rate=0.9,
                                      verbose=-1).fit(
            X, y, eval_set=[(X_valid, y_valid)],
            callbacks=[lgb.early_stopping(2, verbose=False)]),
    }


def test_an_xgboost_classifier_that_stopped_early_refits_the_trees_its_predict_uses(
        rows, stopped):
    """XGBClassifier.predict uses the trees up to best_iteration: the refit refits those,
    keeps the later ones, and its loss is the loss of the new model's own predict."""
    model = stopped["xgb_clf"]
    used = model.best_iteration + 1
    assert used < model.get_booster().num_boosted_rounds()
    result = refit_leaves(model, rows["X_new"], rows["y_new"])
    assert result.trees.tolist() == list(range(used))
    check_refit(model, result, rows["X_new"], rows["y_new"], learning_rate=0.9, l2=1.0,
                n_used=used)
    assert result.model.best_iteration == model.best_iteration


@pytest.mark.parametrize("name", ["xgb", "lgb_clf"])
def test_boosters_that_stopped_early_refit_what_their_predict_uses(rows, stopped, name):
    """A Booster from xgboost.train predicts with every tree, best_iteration or not;
    LightGBM keeps only the trees up to its best iteration."""
    model = stopped[name]
    result = refit_leaves(model, rows["X_new"], rows["y_new"])
    check_refit(model, result, rows["X_new"], rows["y_new"], learning_rate=None,
                l2=1.0 if name == "xgb" else 0.0)


@pytest.mark.parametrize("params", [
    {"num_parallel_tree": 3, "subsample": 0.7, "colsample_bynode": 0.7},
    {"base_score": 0.15},
    {"base_score": 0.9, "objective": "binary:logitraw"},
    {"monotone_constraints": "(1,-1,0)"},
    {"max_delta_step": 0.1, "min_child_weight": 5.0, "alpha": 0.5},
    {"lambda": 0.0},
], ids=["random-forest", "base-score", "logitraw-base-score", "monotone", "regularised",
        "lambda-zero"])
def test_xgboost_models_trained_with_options_refit_as_the_reference(rows, params):
    model = xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.4, **params},
                      xgb.DMatrix(rows["X"], label=rows["y"]), 3)
    result = refit_leaves(model, rows["X_new"], rows["y_new"], rows["w_new"])
    check_refit(model, result, rows["X_new"], rows["y_new"], rows["w_new"],
                learning_rate=0.4, l2=params.get("lambda", 1.0))


@pytest.mark.parametrize("params", [
    {"boost_from_average": False},
    {"boosting": "goss"},
    {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7},
    {"monotone_constraints": [1, -1, 0]},
    {"lambda_l2": 5.0, "lambda_l1": 0.5},
], ids=["no-boost-from-average", "goss", "random-forest", "monotone", "regularised"])
def test_lightgbm_models_trained_with_options_refit_as_the_reference(rows, params):
    model = lgb.train({"objective": "binary", "num_leaves": 4, "learning_rate": 0.4,
                       "verbose": -1, **params}, lgb.Dataset(rows["X"], rows["y"]), 3)
    result = refit_leaves(model, rows["X_new"], rows["y_new"], rows["w_new"])
    check_refit(model, result, rows["X_new"], rows["y_new"], rows["w_new"],
                learning_rate=None, l2=params.get("lambda_l2", 0.0))


def test_lightgbm_trained_from_an_init_score_refits_from_the_same_margin(rows):
    rng = np.random.default_rng(3)
    start, start_new = rng.normal(size=N), rows["margin_new"]
    model = lgb.train({"objective": "binary", "num_leaves": 4, "learning_rate": 0.4,
                       "verbose": -1}, lgb.Dataset(rows["X"], rows["y"], init_score=start), 3)
    result = refit_leaves(model, rows["X_new"], rows["y_new"], init_score=start_new)
    check_refit(model, result, rows["X_new"], rows["y_new"], None, start_new,
                learning_rate=None, l2=0.0)


@pytest.mark.parametrize("library", ["xgb", "lgb"])
def test_pandas_categoricals_refit_as_the_reference(rows, library):
    frame = pd.DataFrame({"age": rows["X"][:, 0], "site": pd.Categorical(
        np.where(rows["X"][:, 1] > 0, "north", "south"))})
    new = pd.DataFrame({"age": rows["X_new"][:, 0], "site": pd.Categorical(
        np.where(rows["X_new"][:, 1] > 0, "north", "south"))})
    if library == "xgb":
        model = xgb.XGBClassifier(n_estimators=3, max_depth=2, learning_rate=0.4,
                                  enable_categorical=True).fit(frame, rows["y"])
    else:
        model = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, learning_rate=0.4,
                                   verbose=-1).fit(frame, rows["y"])
    result = refit_leaves(model, new, rows["y_new"])
    if library == "xgb":
        own = result.model.predict(new, output_margin=True)
        leaves = result.model.get_booster().predict(
            xgb.DMatrix(new, enable_categorical=True), pred_leaf=True)
        old_leaves = model.get_booster().predict(xgb.DMatrix(new, enable_categorical=True),
                                                 pred_leaf=True)
        np.testing.assert_array_equal(leaves, old_leaves)
        assert result.loss_after == pytest.approx(mean_loss(rows["y_new"], own, None),
                                                  rel=1e-5)
    else:
        check_refit(model, result, new, rows["y_new"], learning_rate=None, l2=0.0)
    # Text where the model saw categories is refused by the library, through an InputError.
    refused(lambda: refit_leaves(model, new.assign(site=new["site"].astype(str)),
                                 rows["y_new"]), "data", "cannot read data")


def test_a_dmatrix_brings_its_own_label_weight_and_base_margin(rows, models):
    model = models["xgb"]
    data = xgb.DMatrix(rows["X_new"], label=rows["y_new"], weight=rows["w_new"],
                       base_margin=rows["margin_new"])
    result = refit_leaves(model, data)
    check_refit(model, result, rows["X_new"], rows["y_new"], rows["w_new"],
                rows["margin_new"].astype(np.float32), learning_rate=0.4, l2=1.0)
    # The DMatrix's own fields are kept: nothing is written into it.
    np.testing.assert_array_equal(data.get_base_margin(),
                                  rows["margin_new"].astype(np.float32))
    refused(lambda: refit_leaves(model, data, base_margin=rows["margin_new"]), "base_margin",
            "set_base_margin")
    # Labels given override the DMatrix's.
    flipped = refit_leaves(model, data, 1.0 - rows["y_new"])
    check_refit(model, flipped, rows["X_new"], 1.0 - rows["y_new"], rows["w_new"],
                rows["margin_new"].astype(np.float32), learning_rate=0.4, l2=1.0)


def test_a_dmatrix_without_a_label_asks_for_y(rows, models):
    refused(lambda: refit_leaves(models["xgb"], xgb.DMatrix(rows["X_new"])), "y",
            "DMatrix without a label")


def test_a_forests_chosen_trees_refit_as_the_reference(rows):
    model = xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.4,
                       "num_parallel_tree": 3, "subsample": 0.7}, xgb.DMatrix(
        rows["X"], label=rows["y"]), 3)
    result = refit_leaves(model, xgb.DMatrix(rows["X_new"], label=rows["y_new"]),
                          trees=[1, 4, 8])
    assert result.trees.tolist() == [1, 4, 8]
    check_refit(model, result, rows["X_new"], rows["y_new"], learning_rate=0.4, l2=1.0,
                trees=[1, 4, 8])


def test_a_quantile_dmatrix_refits_the_rows_as_xgboost_predicts_them(rows, models):
    """A QuantileDMatrix holds each feature's bin, not its value: XGBoost's own predict on
    it places rows by bin, and so does the refit; its loss is that predict's."""
    data = xgb.QuantileDMatrix(rows["X_new"], label=rows["y_new"])
    result = refit_leaves(models["xgb"], data)
    own = result.model.predict(data, output_margin=True)
    assert result.loss_after == pytest.approx(mean_loss(rows["y_new"], own, None), rel=1e-6)
    before = models["xgb"].predict(data, output_margin=True)
    assert result.loss_before == pytest.approx(mean_loss(rows["y_new"], before, None),
                                               rel=1e-6)


@pytest.mark.parametrize("library", ["xgb", "lgb"])
def test_a_refitted_model_refitted_again_is_unchanged(rows, models, library):
    """At learning_rate 1 and decay 0 each leaf is the minimiser given the earlier trees,
    which a second refit on the same rows finds again (XGBoost: to float32)."""
    once = refit_leaves(models[library], rows["X_new"], rows["y_new"], learning_rate=1.0,
                        l2=0.5)
    twice = refit_leaves(once.model, rows["X_new"], rows["y_new"], learning_rate=1.0, l2=0.5)
    _, _, first = _parts(once.model, rows["X_new"])
    _, _, second = _parts(twice.model, rows["X_new"])
    for a, b in zip(first, second):
        np.testing.assert_allclose(b, a, rtol=2e-6 if library == "xgb" else 1e-12,
                                   atol=1e-12)
    assert twice.loss_before == pytest.approx(once.loss_after, rel=1e-6)
    assert twice.loss_after == pytest.approx(once.loss_after, rel=1e-6)


@pytest.mark.parametrize("library", ["xgb", "lgb"])
def test_the_callers_model_and_arrays_are_unchanged(rows, models, library):
    model = models[library]
    dump = (bytes(model.save_raw("json")) if library == "xgb" else model.model_to_string())
    X, y, w, m = (rows[k].copy() for k in ("X_new", "y_new", "w_new", "margin_new"))
    keyword = "base_margin" if library == "xgb" else "init_score"
    refit_leaves(model, X, y, w, **{keyword: m}, trees=[0, 2], decay=0.3)
    assert dump == (bytes(model.save_raw("json")) if library == "xgb"
                    else model.model_to_string())
    for name, value in (("X_new", X), ("y_new", y), ("w_new", w), ("margin_new", m)):
        np.testing.assert_array_equal(value, rows[name])


@pytest.mark.parametrize("library", ["xgb", "lgb"])
def test_one_exact_tree_is_no_worse_than_the_librarys_own_one_step_refit(rows, library):
    """The exact minimiser of each leaf's loss is at most the loss of XGBoost's refresh
    updater and LightGBM's refit, both one Newton step, on the rows refitted."""
    X, y, X_new, y_new = rows["X"], rows["y"], rows["X_new"], rows["y_new"]
    if library == "xgb":
        params = {"objective": "binary:logistic", "max_depth": 2, "eta": 1.0, "lambda": 1.0,
                  "base_score": 0.5}
        model = xgb.train(params, xgb.DMatrix(X, label=y), 1)
        theirs = xgb.train({**params, "process_type": "update", "updater": "refresh",
                            "refresh_leaf": True}, xgb.DMatrix(X_new, label=y_new), 1,
                           xgb_model=model)
        their_margin = theirs.predict(xgb.DMatrix(X_new), output_margin=True)
    else:
        model = lgb.train({"objective": "binary", "num_leaves": 4, "learning_rate": 1.0,
                           "boost_from_average": False, "verbose": -1}, lgb.Dataset(X, y), 1)
        their_margin = model.refit(X_new, y_new, decay_rate=0.0).predict(X_new,
                                                                          raw_score=True)
    ours = refit_leaves(model, X_new, y_new, learning_rate=1.0,
                        l2=1.0 if library == "xgb" else 0.0)
    assert ours.loss_after <= mean_loss(y_new, their_margin, None) + 1e-7


# -- CatBoost ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cat_models(rows) -> dict[str, object]:
    catboost = pytest.importorskip("catboost")
    X, y = rows["X"], rows["y"].astype(int)
    options = dict(iterations=4, depth=2, verbose=0, thread_count=1, random_seed=0,
                   allow_writing_files=False)
    frame = pd.DataFrame({"age": X[:, 0], "site": np.where(X[:, 1] > 0, "north", "south"),
                          "dose": X[:, 2]})
    return {
        "logloss": catboost.CatBoostClassifier(**options).fit(X, y),
        "frame": catboost.CatBoostClassifier(**options, cat_features=["site"]).fit(frame, y),
        "cross_entropy": catboost.CatBoost({**options, "loss_function": "CrossEntropy"}).fit(
            X, 0.1 + 0.8 * y),
        "regression": catboost.CatBoostRegressor(**options).fit(X, y),
        "multiclass": catboost.CatBoostClassifier(**options, loss_function="MultiClass").fit(
            X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)),
        "unfitted": catboost.CatBoostClassifier(),
    }


def _raw(model, data) -> np.ndarray:
    return np.asarray(model.predict(data, prediction_type="RawFormulaVal"), dtype=np.float64)


def check_shifted(model, shifted, data, y, weight=None) -> None:
    """The shift is logitshift.fit of the labels with CatBoost's raw scores as offset, and
    the copy's raw scores are the old ones plus the shift; the caller's model is kept."""
    raw = _raw(model, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = logitshift.fit(np.asarray(y, dtype=float), raw, weight)
    assert shifted.fit.shift == pytest.approx(reference.shift, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(_raw(shifted.model, data), raw + shifted.fit.shift,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(_raw(model, data), raw)


def _pool(rows, **fields):
    catboost = pytest.importorskip("catboost")
    return catboost.Pool(rows["X_new"], **fields)


#: (id, model, a function of the rows giving data, y, weight, the reference's weight)
GOOD_CATBOOST = [
    ("array", "logloss", lambda r: (r["X_new"], r["y_new"], None, None)),
    ("array-weights", "logloss", lambda r: (r["X_new"], r["y_new"], r["w_new"], r["w_new"])),
    ("pool", "logloss", lambda r: (_pool(r, label=r["y_new"].astype(int)), None, None,
                                   None)),
    ("pool-weights", "logloss", lambda r: (_pool(r, label=r["y_new"].astype(int),
                                                 weight=r["w_new"]), None, None,
                                           r["w_new"].astype(np.float32))),
    ("pool-baseline", "logloss", lambda r: (_pool(r, label=r["y_new"].astype(int),
                                                  baseline=r["margin_new"]), None, None,
                                            None)),
    ("pool-without-label-y-given", "logloss", lambda r: (_pool(r), r["y_new"], None, None)),
    ("pool-label-overridden", "logloss", lambda r: (_pool(r, label=r["y_new"].astype(int)),
                                                    1.0 - r["y_new"], None, None)),
    ("soft-labels", "cross_entropy", lambda r: (r["X_new"], 0.3 + 0.4 * r["y_new"], None,
                                                None)),
    ("list-labels", "logloss", lambda r: (r["X_new"], r["y_new"].astype(int).tolist(), None,
                                          None)),
    ("frame-categorical", "frame", lambda r: (pd.DataFrame(
        {"age": r["X_new"][:, 0], "site": np.where(r["X_new"][:, 1] > 0, "north", "south"),
         "dose": r["X_new"][:, 2]}), r["y_new"], None, None)),
]


@pytest.mark.parametrize("name, make", [case[1:] for case in GOOD_CATBOOST],
                         ids=[c[0] for c in GOOD_CATBOOST])
def test_shift_catboost_is_the_fit_on_catboosts_raw_scores(rows, cat_models, name, make):
    data, y, weight, reference_weight = make(rows)
    model = cat_models[name]
    shifted = shift_catboost(model, data, y, weight)
    if y is None:
        y = data.get_label()
    check_shifted(model, shifted, data, y, reference_weight)


def test_shift_catboost_on_an_array_equals_it_on_a_pool(rows, cat_models):
    model = cat_models["logloss"]
    from_array = shift_catboost(model, rows["X_new"], rows["y_new"])
    from_pool = shift_catboost(model, _pool(rows, label=rows["y_new"].astype(int)))
    assert from_array.fit.shift == from_pool.fit.shift


def test_shift_pool_moves_the_baseline_by_the_fit(rows):
    pool = _pool(rows, label=rows["y_new"].astype(int), weight=rows["w_new"],
                 baseline=rows["margin_new"])
    before = np.asarray(pool.get_baseline(), dtype=np.float64).ravel()
    result = logitshift.boosting.shift_pool(pool)
    reference = logitshift.fit(rows["y_new"], before, rows["w_new"].astype(np.float32))
    assert result.shift == pytest.approx(reference.shift, rel=1e-9)
    np.testing.assert_allclose(np.asarray(pool.get_baseline()).ravel(),
                               before + result.shift, rtol=1e-6, atol=1e-6)


#: (id, model, a function of the rows giving shift_catboost's data, y and weight, the
#: argument named, a fragment)
BAD_CATBOOST = [
    ("not-a-model", None, lambda r: (r["X_new"], r["y_new"], None), "model", "str"),
    ("unfitted", "unfitted", lambda r: (r["X_new"], r["y_new"], None), "model", "not fitted"),
    ("regression", "regression", lambda r: (r["X_new"], r["y_new"], None), "model", "RMSE"),
    ("multiclass", "multiclass", lambda r: (r["X_new"], r["y_new"], None), "model",
     "multiclass"),
    ("one-dimensional", "logloss", lambda r: (r["X_new"][:, 0], r["y_new"], None), "data",
     "(400,)"),
    ("fewer-features", "logloss", lambda r: (r["X_new"][:, :2], r["y_new"], None), "data",
     "2 feature columns"),
    ("more-features", "logloss", lambda r: (np.c_[r["X_new"], r["X_new"]], r["y_new"], None),
     "data", "6 feature columns"),
    ("text-for-numbers", "frame", lambda r: (pd.DataFrame(
        {"age": ["old"] * N, "site": ["north"] * N, "dose": r["X_new"][:, 2]}), r["y_new"],
        None), "data", "CatBoost cannot read data"),
    ("y-missing", "logloss", lambda r: (r["X_new"], None, None), "y", "missing"),
    ("y-short", "logloss", lambda r: (r["X_new"], r["y_new"][:-1], None), "y", "399"),
    ("y-long", "logloss", lambda r: (r["X_new"], np.r_[r["y_new"], 0.0], None), "y", "401"),
    ("y-minus-one-one", "logloss", lambda r: (r["X_new"], 2 * r["y_new"] - 1, None), "y",
     "-1.0"),
    ("y-text", "logloss", lambda r: (r["X_new"], np.where(r["y_new"] > 0, "a", "b"), None),
     "y", "numeric"),
    ("y-all-one", "logloss", lambda r: (r["X_new"], np.ones(N), None), "y", "pseudo_count"),
    ("weight-short", "logloss", lambda r: (r["X_new"], r["y_new"], r["w_new"][:5]), "weight",
     "5"),
    ("weight-negative", "logloss", lambda r: (r["X_new"], r["y_new"], -r["w_new"]), "weight",
     "weight[0]"),
    ("weight-nan", "logloss", lambda r: (r["X_new"], r["y_new"],
                                         np.r_[np.nan, r["w_new"][1:]]), "weight", "nan"),
    ("pool-without-label", "logloss", lambda r: (_pool(r), None, None), "pool", "no label"),
]


@pytest.mark.parametrize("name, make, argument, fragment",
                         [case[1:] for case in BAD_CATBOOST], ids=[c[0] for c in BAD_CATBOOST])
def test_shift_catboost_refuses_by_name(rows, cat_models, name, make, argument, fragment):
    model = "model.cbm" if name is None else cat_models[name]
    data, y, weight = make(rows)
    refused(lambda: shift_catboost(model, data, y, weight), argument, fragment)


def test_shift_catboost_with_pseudo_count_on_labels_of_one_class(rows, cat_models):
    model = cat_models["logloss"]
    shifted = shift_catboost(model, rows["X_new"], np.ones(N), pseudo_count=0.5)
    raw = _raw(model, rows["X_new"])
    reference = logitshift.fit(np.ones(N), raw, pseudo_count=0.5)
    assert shifted.fit.shift == pytest.approx(reference.shift, rel=1e-12)
    assert math.isfinite(shifted.fit.shift) and shifted.fit.shift > 0


@pytest.mark.parametrize("make, argument, fragment", [
    (lambda r: r["X_new"], "pool", "catboost.Pool"),
    (lambda r: _pool(r), "pool", "no label"),
    (lambda r: _pool(r, label=r["y_new"].astype(int), baseline=np.zeros((N, 2))), "pool",
     "2 columns"),
    (lambda r: _pool(r, label=np.ones(N, dtype=int)), "pool", "pseudo_count"),
], ids=["array", "no-label", "two-column-baseline", "one-class"])
def test_shift_pool_refuses_by_name(rows, make, argument, fragment):
    refused(lambda: logitshift.boosting.shift_pool(make(rows)), argument, fragment)


# -- fit_groups(..., l2=) ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grouped() -> dict[str, np.ndarray]:
    """Six groups: 0 and 1 ordinary, 2 of one row, 3 with labels all 1, 4 with labels all 0,
    5 with soft labels; weights near 1."""
    rng = np.random.default_rng(11)
    n = 600
    group = rng.integers(0, 6, n)
    group[group == 2] = 0
    group[17] = 2
    offset = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-offset - 0.4))).astype(np.float64)
    y[group == 3], y[group == 4] = 1.0, 0.0
    y[group == 5] = rng.random(int(np.sum(group == 5)))
    return {"y": y, "group": group, "offset": offset, "weight": rng.exponential(size=n)}


def group_reference(data, l2, weight=None, pseudo_count=0.0) -> np.ndarray:
    weight = data["weight"] if weight is None else weight
    shifts = []
    for g in range(6):
        rows = data["group"] == g
        y, offset, w = data["y"][rows], data["offset"][rows], weight[rows]
        if pseudo_count > 0:  # a positive and a negative row at the weighted mean offset
            mean = float(np.average(offset, weights=w))
            y, offset = np.r_[y, 1.0, 0.0], np.r_[offset, mean, mean]
            w = np.r_[w, pseudo_count, pseudo_count]
        shifts.append(penalised_shift(y, offset, w, l2)[0])
    return np.array(shifts)


@pytest.mark.parametrize("l2", [1e-3, 1, 2, np.float32(2.0), np.int64(3), np.uint8(1),
                                np.float16(0.5), 1e6, 1e300, 1.7e308],
                         ids=lambda v: f"{type(v).__name__}-{v!r}")
def test_l2_values_a_user_tries_equal_a_numpy_newton_per_group(grouped, l2):
    result = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                   grouped["weight"], l2=l2)
    reference = group_reference(grouped, float(l2))
    assert np.all(np.abs(result.shift - reference) <= 1e-12 * np.maximum(1.0,
                                                                          np.abs(reference)))
    assert np.all(np.isfinite(result.shift)) and result.l2 == float(l2)
    assert result.shift[3] > 0 > result.shift[4]  # one class: finite, on its labels' side


@pytest.mark.parametrize("l2", [0, 0.0, -0.0, np.float64(0.0)], ids=["int", "float",
                                                                      "minus-zero", "numpy"])
def test_l2_zero_in_any_spelling_is_the_unpenalised_fit(grouped, l2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                      grouped["weight"])
        zero = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                     grouped["weight"], l2=l2)
    np.testing.assert_array_equal(zero.shift, plain.shift)
    assert zero.shift[3] == math.inf and zero.shift[4] == -math.inf
    rows = grouped["group"] == 0
    assert zero.shift[0] == pytest.approx(logitshift.fit(
        grouped["y"][rows], grouped["offset"][rows], grouped["weight"][rows]).shift,
        rel=1e-12)


def test_l2_of_1e_300_gives_one_class_groups_their_finite_penalised_shift(grouped):
    """Beside weights near 1 such a penalty moves no group with both classes; a one-class
    group's shift is finite (near ±684), where the penalty's pull meets the loss's, both
    near 1e-297: normal doubles, not an underflow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                      grouped["weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                       grouped["weight"], l2=1e-300)
    both = [0, 1, 5]
    np.testing.assert_allclose(result.shift[both], plain.shift[both], rtol=1e-12)
    reference = group_reference(grouped, 1e-300)
    np.testing.assert_allclose(result.shift, reference, rtol=1e-12)
    assert set(result.status.tolist()) == {"converged"}
    assert 600 < result.shift[3] < 800 and -800 < result.shift[4] < -600


def test_a_subnormal_l2_on_a_one_class_group_says_so_by_name(grouped):
    """With l2 = 5e-324 the one-class groups' gradient at their root is itself subnormal:
    no digits are left, and the warning names l2, not a gap between labels."""
    with pytest.warns(RuntimeWarning, match="pass a larger l2"):
        result = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                       grouped["weight"], l2=5e-324)
    assert result.status[[3, 4]].tolist() == ["underflow", "underflow"]
    assert np.isnan(result.shift[[3, 4]]).all()
    reference = group_reference(grouped, 5e-324)
    np.testing.assert_allclose(result.shift[[0, 1, 5]], reference[[0, 1, 5]], rtol=1e-12)


@pytest.mark.parametrize("l2, fragment", [
    (math.inf, "inf"), (math.nan, "nan"), (-1.0, "-1.0"), (-1e-300, "-1e-300"),
    ("1", "'1'"), (True, "True"), (np.bool_(False), "False"), (None, "None"),
    ([1.0], "[1.0]"), (np.array([2.0]), "[2.]"), (1 + 0j, "1+0j"), (10 ** 400, "inf"),
    (-(10 ** 400), "-inf"),
], ids=["inf", "nan", "negative", "tiny-negative", "str", "bool", "numpy-bool", "none",
        "list", "array", "complex", "huge-int", "huge-negative-int"])
def test_bad_l2_values_are_refused_by_name(grouped, l2, fragment):
    refused(lambda: logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                          l2=l2), "l2", fragment)


def test_l2_with_the_random_intercepts_is_refused_by_name(grouped):
    refused(lambda: logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                          l2=1.0, shrinkage="random"), "l2", "random")


def test_l2_with_pseudo_count_adds_both_to_each_group(grouped):
    result = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                   grouped["weight"], l2=2.0, pseudo_count=0.5)
    reference = group_reference(grouped, 2.0, pseudo_count=0.5)
    np.testing.assert_allclose(result.shift, reference, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("scales", [(600, -600), (-600, 600), (500, 0)],
                         ids=["2**600-and-2**-600", "2**-600-and-2**600", "2**500-and-1"])
def test_l2_with_groups_weighted_at_opposite_ends_of_the_doubles(grouped, scales):
    """The penalty is in the user's units: negligible beside a group weighing 2**600,
    dominant beside one weighing 2**-600."""
    weight = grouped["weight"].copy()
    for g, power in zip((0, 1), scales):
        weight[grouped["group"] == g] = np.ldexp(weight[grouped["group"] == g], power)
    result = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"], weight,
                                   l2=4.0)
    reference = group_reference(grouped, 4.0, weight=weight)
    assert np.all(np.abs(result.shift - reference) <= 1e-12 * np.maximum(1.0,
                                                                          np.abs(reference)))


def test_a_group_without_weight_has_no_shift_and_the_others_are_unmoved(grouped):
    weight = np.where(grouped["group"] == 1, 0.0, grouped["weight"])
    result = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"], weight,
                                   l2=2.0)
    reference = group_reference(grouped, 2.0, weight=weight)
    assert math.isnan(result.shift[1]) and result.status[1] == "no_weight"
    others = [0, 2, 3, 4, 5]
    np.testing.assert_allclose(result.shift[others], reference[others], rtol=1e-12,
                               atol=1e-13)


@pytest.fixture(scope="module")
def grouped_csv(grouped, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("groups") / "rows.csv"
    pd.DataFrame(grouped).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("source", ["frame", "file", "dask"])
def test_l2_from_a_frame_a_file_and_dask_equals_arrays(grouped, grouped_csv, source):
    arrays = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                   grouped["weight"], l2=2.5)
    names = ("y", "group", "offset", "weight")
    if source == "frame":
        result = logitshift.fit_groups_frame(pd.DataFrame(grouped), *names, l2=2.5)
    elif source == "file":
        result = logitshift.fit_groups_file(grouped_csv, *names, l2=2.5)
    else:
        dd = pytest.importorskip("dask.dataframe")
        frame = dd.from_pandas(pd.DataFrame(grouped), npartitions=3)
        result = importlib.import_module("logitshift.dask").fit_groups_frame(frame, *names,
                                                                             l2=2.5)
    np.testing.assert_array_equal(result.groups, arrays.groups)
    np.testing.assert_allclose(result.shift, arrays.shift, rtol=1e-12, atol=1e-14)
    assert result.l2 == 2.5


# -- the command line's --l2 ---------------------------------------------------------------------

def _cli(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from logitshift.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("flags, fragment", [
    (["--l2", "1"], "--l2"),
    (["--group", "group", "--l2", "-1"], "--l2"),
    (["--group", "group", "--l2", "nan"], "--l2"),
    (["--group", "group", "--l2", "inf"], "--l2"),
    (["--group", "group", "--l2", "1e400"], "--l2"),
    (["--group", "group", "--l2", "abc"], "--l2"),
    (["--group", "group", "--l2", ""], "--l2"),
    (["--group", "group", "--l2"], "--l2"),
    (["--group", "group", "--l2", "1", "--shrink"], "--shrink"),
], ids=["without-group", "negative", "nan", "inf", "overflow", "text", "empty", "no-value",
        "with-shrink"])
def test_the_command_line_refuses_bad_l2_with_one_line(grouped_csv, flags, fragment):
    code, out, err = _cli("fit", grouped_csv, "--label", "y", "--offset", "offset",
                          "--weight", "weight", *flags)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_the_command_lines_l2_message_with_shrink_reads_as_written(grouped_csv):
    _, _, err = _cli("fit", grouped_csv, "--label", "y", "--offset", "offset", "--group",
                     "group", "--l2", "1", "--shrink")
    assert "--l2 1/tau" not in err and "--l2 1.0 cannot be combined with --shrink" in err


@pytest.mark.parametrize("l2", ["0", "2.5", "1e300"])
def test_the_command_lines_l2_equals_fit_groups(grouped, grouped_csv, l2):
    code, out, err = _cli("fit", grouped_csv, "--label", "y", "--offset", "offset",
                          "--weight", "weight", "--group", "group", "--l2", l2, "--json",
                          "--quiet")
    assert code == 0, err
    report = json.loads(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays = logitshift.fit_groups(grouped["y"], grouped["group"], grouped["offset"],
                                       grouped["weight"], l2=float(l2))
    shifts = np.array([math.inf if v == "inf" else -math.inf if v == "-inf" else v
                       for v in report["shift"]], dtype=float)
    np.testing.assert_allclose(shifts, arrays.shift, rtol=1e-12, atol=1e-14)


# -- invariances ---------------------------------------------------------------------------------

@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), library=st.sampled_from(["xgb", "lgb"]))
def test_row_order_and_integer_weights_as_repeated_rows_leave_the_refit_unchanged(
        rows, models, seed, library):
    """Permuting the rows changes no leaf; integer weights are the same refit as the rows
    repeated that many times (to float32 for XGBoost, whose sums run in another order)."""
    rng = np.random.default_rng(seed)
    X, y = rows["X_new"][:120], rows["y_new"][:120]
    counts = rng.integers(0, 4, X.shape[0])
    counts[0] = max(counts[0], 1)
    order = rng.permutation(X.shape[0])
    model = models[library]
    weighted = refit_leaves(model, X, y, counts.astype(float), l2=0.5)
    permuted = refit_leaves(model, X[order], y[order], counts[order].astype(float), l2=0.5)
    repeated = refit_leaves(model, np.repeat(X, counts, axis=0), np.repeat(y, counts), l2=0.5)
    tolerance = 2e-6 if library == "xgb" else 1e-10
    _, _, base = _parts(weighted.model, X)
    for other in (permuted, repeated):
        _, _, values = _parts(other.model, X)
        for a, b in zip(base, values):
            np.testing.assert_allclose(b, a, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("library", ["xgb", "lgb"])
def test_a_refit_of_a_monotone_model_warns_that_it_may_no_longer_be_monotone(rows, library):
    """Each leaf refitted on its own rows ignores the model's monotone constraints: on rows
    whose log-odds fall with the constrained feature the new model falls too, so the refit
    says so instead of handing back a model that silently breaks them."""
    X, y = rows["X"], rows["y"]
    X_new = rows["X_new"]
    rng = np.random.default_rng(5)
    y_new = (rng.random(N) < 1.0 / (1.0 + np.exp(3.0 * X_new[:, 0]))).astype(float)
    grid = np.zeros((100, 3))
    grid[:, 0] = np.linspace(-2.5, 2.5, 100)
    if library == "xgb":
        model = xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.4,
                           "monotone_constraints": "(1,0,0)"}, xgb.DMatrix(X, label=y), 4)
    else:
        model = lgb.train({"objective": "binary", "num_leaves": 4, "learning_rate": 0.4,
                           "monotone_constraints": [1, 0, 0], "verbose": -1},
                          lgb.Dataset(X, y), 4)

    def margin(m):
        return _parts(m, grid)[0]

    assert np.all(np.diff(margin(model)) >= 0)
    with pytest.warns(RuntimeWarning, match="monotone_constraints"):
        result = refit_leaves(model, X_new, y_new)
    assert np.any(np.diff(margin(result.model)) < 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refit_leaves(model, X_new, y_new, trees=[])  # nothing refitted: nothing to say
