"""Move a trained CatBoost model to a new population by its bias, and start a new one from a
centred baseline.

The data are statsmodels' ``fair`` survey (6,366 women; the label is "had an affair"). A
model is trained on an old population made by subsampling (half the rows, 70% of the
positives dropped); on the other rows, the new population, its probabilities are too low. ``shift_catboost`` fits the optimal shift of the
model's raw scores on half the new rows and writes it into a copy's bias
(``set_scale_and_bias``); the other half is held out. ``shift_pool`` does the same for a
Pool whose baseline holds another model's scores, before CatBoost boosts from it.
Run: ``python examples/catboost_shift.py`` (needs catboost and statsmodels).
"""

from __future__ import annotations

import catboost
import numpy as np
import statsmodels.api as sm

from logitshift.boosting import shift_catboost, shift_pool


def log_loss(model: catboost.CatBoost, features: np.ndarray, labels: np.ndarray) -> float:
    raw = model.predict(features, prediction_type="RawFormulaVal")
    return float(np.mean(np.logaddexp(0.0, raw) - labels * raw))


def main() -> dict[str, float]:
    frame = sm.datasets.fair.load_pandas().data
    labels = (frame["affairs"] > 0).to_numpy(np.float64)
    features = frame.drop(columns="affairs").to_numpy(np.float64)
    rng = np.random.default_rng(0)
    order = rng.permutation(labels.size)
    old, new = order[: labels.size // 2], order[labels.size // 2:]
    old = old[(labels[old] == 0) | (rng.random(old.size) < 0.3)]
    adapt, held_out = new[: new.size // 2], new[new.size // 2:]

    model = catboost.CatBoostClassifier(iterations=200, depth=4, verbose=0, random_seed=0,
                                        allow_writing_files=False)
    model.fit(features[old], labels[old])
    shifted = shift_catboost(model, features[adapt], labels[adapt])
    print(f"positives: {labels[old].mean():.1%} where trained, {labels[new].mean():.1%} now")
    before = log_loss(model, features[held_out], labels[held_out])
    after = log_loss(shifted.model, features[held_out], labels[held_out])
    print(f"shift {shifted.fit.shift:+.3f} (se {shifted.fit.se:.3f}) into the bias: "
          f"held-out log loss {before:.4f} -> {after:.4f}")

    # Boosting on in the new population from the old model's scores, centred first.
    scores = model.predict(features[adapt], prediction_type="RawFormulaVal")
    pool = catboost.Pool(features[adapt], label=labels[adapt], baseline=scores)
    fit = shift_pool(pool)
    print(f"the Pool's baseline moved by {fit.shift:+.3f}: log loss {fit.loss_at_zero:.4f} -> "
          f"{fit.loss:.4f} before any tree")
    return {"shift": shifted.fit.shift, "held_out_before": before, "held_out_after": after,
            "pool_shift": fit.shift}


if __name__ == "__main__":
    main()
