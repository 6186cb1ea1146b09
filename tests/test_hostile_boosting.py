"""Odd inputs to ``fit_groups(..., l2=)``, ``refit_leaves``, ``shift_pool`` and
``shift_catboost``, as a new user tries them. Each answer is checked against a reference
(a numpy Newton per group or per leaf, ``logitshift.fit`` on a leaf's rows with the earlier
trees' margin as offset, the model's own ``predict`` of its margin after the refit) or is an
``InputError`` that names the argument and its value."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import logitshift
from logitshift import InputError
from logitshift.boosting import refit_leaves

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

pytestmark = pytest.mark.filterwarnings("ignore:.*leaves kept their value:RuntimeWarning",
                                        "ignore:.*groups have labels of one class",
                                        "ignore::UserWarning")

N = 400
FEATURES = ["age", "dose", "site"]


def penalised_newton(y: np.ndarray, offset: np.ndarray, weight: np.ndarray, l2: float
                     ) -> float:
    """``argmin_s Σ w BCE(y, offset + s) + l2 s² / 2`` by damped Newton from 0 in numpy."""
    shift = 0.0
    for _ in range(500):
        z = offset + shift
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        gradient = float(np.sum(weight * (p - y))) + l2 * shift
        hessian = float(np.sum(weight * p * (1.0 - p))) + l2
        step = gradient / hessian
        while abs(step) > 1.0:
            step *= 0.5
        shift -= step
        if abs(step) <= 1e-16 * max(1.0, abs(shift)):
            break
    return shift


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
        leaves = booster.predict(data, pred_leaf=True).reshape(len(X), -1).astype(int)
        values = [np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)
                  for t in trees]
        return np.asarray(own, dtype=np.float64), leaves, values
    booster = model if isinstance(model, lgb.Booster) else model.booster_
    own = np.asarray(model.predict(X, raw_score=True), dtype=np.float64)
    if base_margin is not None:
        own = own + base_margin
    leaves = np.asarray(booster.predict(X, pred_leaf=True)).reshape(len(X), -1).astype(int)
    info = booster.dump_model()["tree_info"]
    values = [np.array([booster.get_leaf_output(t, j) for j in range(tree["num_leaves"])])
              for t, tree in enumerate(info)]
    return own, leaves, values


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
                s = penalised_newton(y[rows], margin[rows], w[rows], l2)
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
    result = refit_leaves(model, rows["X_new"], rows["y_new"], **options)
    default_l2 = 1.0 if library == "xgb" else 0.0
    lr = options.get("learning_rate")
    trees = options.get("trees")
    if trees is not None:
        trees = np.atleast_1d(np.asarray(list(trees) if isinstance(trees, range) else trees))
        trees = np.unique(np.where(trees < 0, trees + 4, trees))
    check_refit(model, result, rows["X_new"], rows["y_new"], learning_rate=lr,
                l2=float(options.get("l2", default_l2)), decay=options.get("decay", 0.0),
                trees=trees)
