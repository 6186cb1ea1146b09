"""Per-group shifts from every source (so far Dask),
each against `logitshift.fit_groups` on the same rows in memory."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import logitshift

N_ROWS = 3000
N_GROUPS = 20


def make_rows(n=N_ROWS, groups=N_GROUPS, seed=3) -> pd.DataFrame:
    """Rows whose groups differ (τ about 0.6, so that the random-intercept fit is well away
    from its boundary), one group with labels all 0, weights with zeros among them."""
    rng = np.random.default_rng(seed)
    code = rng.integers(0, groups, n)
    effect = rng.normal(0.0, 0.6, groups)
    offset = rng.normal(0.0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(offset - 0.4 + effect[code])))).astype(np.int64)
    y[code == 5] = 0
    weight = rng.exponential(1.0, n) * (rng.random(n) > 0.1)
    return pd.DataFrame({"y": y, "site": [f"site-{k:02d}" for k in code], "code": code * 7 - 30,
                         "f": offset, "w": weight})


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return make_rows()


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def reference(rows: pd.DataFrame, group: str, offset: str | None = "f",
              weight: str | None = "w", **options) -> logitshift.GroupShiftFit:
    """`fit_groups` on the rows in memory: what every source must give."""
    return quietly(logitshift.fit_groups, rows["y"].to_numpy(), rows[group].to_numpy(),
                   None if offset is None else rows[offset].to_numpy(),
                   None if weight is None else rows[weight].to_numpy(), **options)


def assert_same_groups(actual, expected):
    """The same groups in the same order, each shift to 1e-12, the random intercepts' mean
    and spread to 1e-9."""
    assert actual.groups.tolist() == expected.groups.tolist()
    assert type(actual.groups.tolist()[0]) is type(expected.groups.tolist()[0])
    assert actual.status.tolist() == expected.status.tolist()
    assert actual.n_rows.tolist() == expected.n_rows.tolist()
    finite = np.isfinite(expected.shift)
    assert (actual.shift[~finite] == expected.shift[~finite]).all()
    assert np.max(np.abs(actual.shift[finite] - expected.shift[finite])) <= 1e-12
    np.testing.assert_allclose(actual.se[finite], expected.se[finite], rtol=1e-11)
    np.testing.assert_allclose(actual.weight_sum, expected.weight_sum, rtol=1e-13)
    np.testing.assert_allclose(actual.positives, expected.positives, rtol=1e-13)
    assert actual.shrinkage == expected.shrinkage
    assert abs(actual.pooled.shift - expected.pooled.shift) <= 1e-12
    if expected.shrinkage == "random":
        assert abs(actual.mean - expected.mean) <= 1e-9
        assert abs(actual.tau - expected.tau) <= 1e-9
        assert actual.loglik == pytest.approx(expected.loglik, rel=1e-12)
        np.testing.assert_allclose(actual.shrunk, expected.shrunk, rtol=0, atol=1e-9)


OPTIONS = [pytest.param({}, id="ml"),
           pytest.param({"shrinkage": "random", "nagq": 3}, id="random-nagq3")]


# -- Dask -------------------------------------------------------------------------------------


dask = pytest.importorskip("dask", reason="the Dask source needs dask (logitshift[dask])")


@pytest.fixture
def synchronous():
    with dask.config.set(scheduler="sync"):
        yield


@pytest.mark.parametrize("options", OPTIONS)
def test_dask_arrays_equal_fit_groups(rows, synchronous, options):
    import dask.array as da
    import logitshift.dask

    expected = reference(rows, "site", **options)
    y, site = da.from_array(rows["y"].to_numpy(), chunks=700), rows["site"].to_numpy()
    offset, weight = da.from_array(rows["f"].to_numpy(), chunks=500), rows["w"].to_numpy()
    for group in (da.from_array(site, chunks=1000), site):  # a Dask array or one in memory
        assert_same_groups(quietly(logitshift.dask.fit_groups_arrays, y, group, offset,
                                   weight, **options), expected)


def test_dask_frame_equals_fit_groups_with_an_empty_partition(rows, synchronous):
    import dask.dataframe as dd
    import logitshift.dask

    frame = rows.assign(site=rows["site"].astype("category"))
    ddf = dd.from_pandas(frame, npartitions=5)
    ddf = dd.concat([ddf, ddf.head(0, compute=False, npartitions=1)])  # a partition of 0 rows
    assert ddf.npartitions == 6
    options = {"shrinkage": "random"}
    expected = reference(rows, "site", **options)
    assert_same_groups(quietly(logitshift.dask.fit_groups_frame, ddf, "y", "site", "f", "w",
                               **options), expected)


def test_dask_errors_name_the_row_and_the_partition(rows, synchronous):
    import dask.array as da
    import dask.dataframe as dd
    import logitshift.dask

    site = rows["site"].to_numpy(dtype=object)
    site[1234] = None
    with pytest.raises(logitshift.InputError, match=r"^group\[1234\] is missing"):
        logitshift.dask.fit_groups_arrays(da.from_array(rows["y"].to_numpy(), chunks=500),
                                          da.from_array(site, chunks=500))
    ddf = dd.from_pandas(rows.assign(site=site), npartitions=3, sort=False)
    first = ddf.partitions[0].shape[0].compute()
    with pytest.raises(logitshift.InputError,
                       match=rf"^partition 1: column 'site': group\[{1234 - first}\] is "):
        logitshift.dask.fit_groups_frame(ddf, "y", "site", "f")
    with pytest.raises(logitshift.InputError, match="no column 'country' in the frame"):
        logitshift.dask.fit_groups_frame(ddf, "y", "country")
    with pytest.raises(logitshift.InputError, match="group has 10 rows, y has 3000"):
        logitshift.dask.fit_groups_arrays(da.from_array(rows["y"].to_numpy(), chunks=500),
                                          site[:10])
