"""Refitting a trained booster's leaves on new rows: ``logitshift.boosting.refit_leaves``
against XGBoost's ``refresh`` updater and LightGBM's ``refit``.

1. Time. ``--rows`` rows (default 1e6) of 20 features, labels from a non-linear log-odds;
   XGBoost (hist) and LightGBM each trained with ``--trees`` trees (default 200) of depth 6
   (LightGBM: ``num_leaves=64, max_depth=6``) on them, then refitted on the same rows:
   the median of ``--repeats`` runs of each refit, in this process, and their ratio. Both
   libraries refit with one Newton step per leaf from 0 (``refresh`` with
   ``refresh_leaf=True``; ``refit`` with ``decay_rate=0``); ``refit_leaves`` with the
   model's learning rate and penalty and ``decay=0``.
2. Quality. A real data set shipped with a package (statsmodels' ``fair``: 6,366 women,
   label "had an affair"), with a population shift made by subsampling: the models are
   trained on half the rows with 70% of the positives dropped (a rarer outcome), then
   refitted on half the other rows (the new population, all positives kept) and scored on
   the rest: log loss on the refit rows ("train") and held out, for the model as trained
   and after each refit. Median over ``--splits`` random splits.

    python benchmarks/refit.py
    python benchmarks/refit.py --rows 2e5 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np

from logitshift.boosting import refit_leaves


def log_loss(y: np.ndarray, margin: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, margin) - y * margin))


def median_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timing(rows: int, trees: int, repeats: int, threads: int) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 20)).astype(np.float32)
    logit = X[:, 0] - X[:, 1] ** 2 + np.sin(2 * X[:, 2]) * X[:, 3] + 0.5 * X[:, 4] - 0.5
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    dtrain = xgb.DMatrix(X, label=y, nthread=threads)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "lambda": 1.0,
              "tree_method": "hist", "nthread": threads}
    start = time.perf_counter()
    booster = xgb.train(params, dtrain, trees)
    xgb_train = time.perf_counter() - start
    lgb_params = {"objective": "binary", "num_leaves": 64, "max_depth": 6,
                  "learning_rate": 0.1, "lambda_l2": 1.0, "verbose": -1,
                  "num_threads": threads}
    start = time.perf_counter()
    lgb_booster = lgb.train(lgb_params, lgb.Dataset(X, y), trees)
    lgb_train = time.perf_counter() - start

    def refresh() -> None:
        xgb.train({**params, "process_type": "update", "updater": "refresh",
                   "refresh_leaf": True}, dtrain, trees, xgb_model=booster)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_refresh = median_time(refresh, repeats)
        t_ours_xgb = median_time(lambda: refit_leaves(booster, dtrain), repeats)
        t_refit = median_time(lambda: lgb_booster.refit(X, y, decay_rate=0.0), repeats)
        t_ours_lgb = median_time(lambda: refit_leaves(lgb_booster, X, y), repeats)
    print(f"\n### Time: {rows:,} rows, {trees} trees of depth 6, median of {repeats} "
          f"({threads} threads)\n")
    print(f"(training, once: XGBoost {xgb_train:.1f} s, LightGBM {lgb_train:.1f} s)\n")
    print("| library | its refit | refit_leaves | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| XGBoost `refresh` | {t_refresh:.2f} s | {t_ours_xgb:.2f} s | "
          f"{t_ours_xgb / t_refresh:.2f}× |")
    print(f"| LightGBM `refit` | {t_refit:.2f} s | {t_ours_lgb:.2f} s | "
          f"{t_ours_lgb / t_refit:.2f}× |")


def quality(splits: int, trees: int, threads: int) -> None:
    import lightgbm as lgb
    import statsmodels.api as sm
    import xgboost as xgb

    frame = sm.datasets.fair.load_pandas().data
    y_all = (frame["affairs"] > 0).to_numpy(np.float64)
    X_all = frame.drop(columns="affairs").to_numpy(np.float64)
    names = ["as trained", "XGBoost refresh", "refit_leaves (XGBoost)", "LightGBM refit",
             "refit_leaves (LightGBM)"]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for split in range(splits):
        rng = np.random.default_rng(100 + split)
        order = rng.permutation(y_all.size)
        old, new = order[: y_all.size // 2], order[y_all.size // 2:]
        # The old population: 70% of its positives dropped.
        old = old[(y_all[old] == 0) | (rng.random(old.size) < 0.3)]
        adapt, held = new[: new.size // 2], new[new.size // 2:]
        X, y = X_all[old], y_all[old]
        params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1,
                  "lambda": 1.0, "nthread": threads}
        booster = xgb.train(params, xgb.DMatrix(X, label=y), trees)
        lgb_booster = lgb.train({"objective": "binary", "num_leaves": 16, "max_depth": 4,
                                 "learning_rate": 0.1, "lambda_l2": 1.0, "verbose": -1,
                                 "min_data_in_leaf": 5, "num_threads": threads},
                                lgb.Dataset(X, y), trees)
        d_adapt = xgb.DMatrix(X_all[adapt], label=y_all[adapt])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refreshed = xgb.train({**params, "process_type": "update", "updater": "refresh",
                                   "refresh_leaf": True}, d_adapt, trees, xgb_model=booster)
            ours_xgb = refit_leaves(booster, d_adapt).model
            lgb_refit = lgb_booster.refit(X_all[adapt], y_all[adapt], decay_rate=0.0)
            ours_lgb = refit_leaves(lgb_booster, X_all[adapt], y_all[adapt]).model

        def xgb_losses(model) -> tuple[float, float]:
            return tuple(log_loss(y_all[rows], model.predict(xgb.DMatrix(X_all[rows]),
                                                             output_margin=True))
                         for rows in (adapt, held))

        def lgb_losses(model) -> tuple[float, float]:
            return tuple(log_loss(y_all[rows], model.predict(X_all[rows], raw_score=True))
                         for rows in (adapt, held))

        results["as trained"].append(xgb_losses(booster))
        results["XGBoost refresh"].append(xgb_losses(refreshed))
        results["refit_leaves (XGBoost)"].append(xgb_losses(ours_xgb))
        results["LightGBM refit"].append(lgb_losses(lgb_refit))
        results["refit_leaves (LightGBM)"].append(lgb_losses(ours_lgb))
        results.setdefault("as trained (LightGBM)", []).append(lgb_losses(lgb_booster))
    print(f"\n### Quality: statsmodels' `fair` ({y_all.size:,} rows), {trees} trees of depth "
          f"4, median of {splits} splits\n")
    print("Trained on half the rows with 70% of the positives dropped; refitted on a quarter "
          "(all positives), scored there (\"refit rows\") and on the last quarter "
          "(\"held out\"). Log loss, nats; XGBoost and LightGBM with decay 0.\n")
    print("| model | refit rows | held out |")
    print("|---|---:|---:|")
    for name in ["as trained", "XGBoost refresh", "refit_leaves (XGBoost)",
                 "as trained (LightGBM)", "LightGBM refit", "refit_leaves (LightGBM)"]:
        train, test = zip(*results[name])
        label = "as trained (XGBoost)" if name == "as trained" else name
        print(f"| {label} | {statistics.median(train):.4f} | {statistics.median(test):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--quality-trees", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    if args.rows > 0:
        timing(int(args.rows), args.trees, args.repeats, args.threads)
    if args.splits > 0:
        quality(args.splits, args.quality_trees, args.threads)


if __name__ == "__main__":
    main()
