"""`GroupSketch` as a public summary: `solve()` against `fit_groups`."""

from __future__ import annotations

import math

import numpy as np
import pytest

import logitshift
from logitshift import InputError
from logitshift._group_sketch import GroupSketch

Y = np.array([0, 1, 1, 0, 1, 0])
F = np.array([0.1, -0.4, 0.3, 1.2, -2.0, 0.6])


def _sketch_of(keys, y=Y, offset=F, weight=None) -> GroupSketch:
    return GroupSketch().update(y, keys, offset, weight)


# -- item 13: GroupSketch is public, and solves ----------------------------------------------------

def test_group_sketch_is_exported():
    import logitshift._group_sketch as module

    assert "GroupSketch" in logitshift.__all__
    assert logitshift.GroupSketch is module.GroupSketch


def _random_intercept_rows(n=6000, groups=40, seed=1):
    rng = np.random.default_rng(seed)
    code = rng.integers(0, groups, n)
    effect = rng.normal(0.0, 0.7, groups)
    offset = rng.normal(0.0, 1.3, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(offset - 0.3 + effect[code])))).astype(np.int8)
    weight = rng.exponential(1.0, n)
    return y, np.array([f"g{k:02d}" for k in code], dtype=object), offset, weight


@pytest.mark.parametrize("options", [{}, {"shrinkage": "random"},
                                     {"shrinkage": "random", "nagq": 9},
                                     {"pseudo_count": 0.5, "tol": 1e-10, "max_iter": 50}],
                         ids=["per group", "laplace", "nagq 9", "pseudo count"])
def test_chunks_merged_through_bytes_solve_as_fit_groups(options):
    y, group, offset, weight = _random_intercept_rows()
    chunks = np.array_split(np.arange(y.size), 5)
    streamed = GroupSketch()
    for rows in chunks[:2]:
        streamed.update(y[rows], group[rows], offset[rows], weight[rows],
                        first_row=int(rows[0]))
    others = [GroupSketch().update(y[rows], group[rows], offset[rows], weight[rows])
              for rows in chunks[2:]]
    merged = streamed + others[0] + sum(others[1:])
    moved = GroupSketch.from_bytes(merged.to_bytes())
    solved = moved.solve(**options)
    direct = logitshift.fit_groups(y, group, offset, weight, **options)
    assert solved.groups.tolist() == direct.groups.tolist()
    np.testing.assert_allclose(solved.shift, direct.shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(solved.se, direct.se, rtol=1e-9)
    if options.get("shrinkage") == "random":
        assert solved.mean == pytest.approx(direct.mean, abs=1e-9)
        assert solved.tau == pytest.approx(direct.tau, abs=1e-9)
        assert solved.nagq == direct.nagq
        np.testing.assert_allclose(solved.shrunk, direct.shrunk, rtol=0, atol=1e-9)
    for key in ("g00", "g17"):  # each group against fit on its own rows
        rows = group == key
        fit = logitshift.fit(y[rows], offset[rows], weight[rows],
                             pseudo_count=options.get("pseudo_count", 0.0))
        assert solved.fit_of(key).shift == pytest.approx(fit.shift, abs=1e-12)


@pytest.mark.parametrize("options, message", [
    ({"shrinkage": "fixed"}, "shrinkage"),
    ({"nagq": 0}, "nagq"),
    ({"nagq": 9}, "nagq applies to shrinkage='random' only"),
    ({"shrinkage": "random", "nagq": 10**6}, "nagq"),
    ({"pseudo_count": -1.0}, "pseudo_count"),
    ({"max_iter": 0}, "max_iter"),
    ({"tol": -1.0}, "tol"),
])
def test_solve_checks_its_options_as_fit_groups_does(options, message):
    sketch = _sketch_of(np.array([1, 1, 2, 2, 3, 3]))
    with pytest.raises(InputError, match=message):
        sketch.solve(**options)
    with pytest.raises(InputError, match=message):
        logitshift.fit_groups(Y, np.array([1, 1, 2, 2, 3, 3]), F, **options)


def test_solve_refuses_rows_that_weigh_nothing_and_warns_as_fit_groups():
    sketch = GroupSketch().update(Y, np.array([1, 1, 2, 2, 3, 3]), F, np.zeros(6))
    with pytest.raises(InputError, match="weight is zero"):
        sketch.solve()
    one_class = GroupSketch().update(np.array([0, 0, 1, 0]), np.array([1, 1, 2, 2]),
                                     np.zeros(4))
    with pytest.warns(RuntimeWarning, match="labels of one class") as caught:
        result = one_class.solve()
    assert caught[0].filename == __file__
    assert result.shift[0] == -math.inf
