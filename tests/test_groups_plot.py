"""logitshift.plot.group_shifts: what the axes hold, against the GroupShiftFit they draw."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="logitshift.plot needs matplotlib (logitshift[plot])")

from matplotlib.figure import Figure  # noqa: E402

from logitshift import plot  # noqa: E402
from logitshift._estimators.result import normal_quantile  # noqa: E402
from test_groups_sources import make_rows, reference  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    rows = make_rows()
    # A group without weight: it has no size and no shift, and is left out.
    return rows.assign(w=rows["w"].where(rows["site"] != "site-07", 0.0))


@pytest.fixture(scope="module")
def fits(rows):
    return {shrinkage: reference(rows, "site", shrinkage=shrinkage)
            for shrinkage in (None, "random")}


def by_gid(artists, gid):
    found = [artist for artist in artists if artist.get_gid() == gid]
    assert len(found) <= 1, gid
    return found[0] if found else None


def segments(collection):
    """Each vertical segment of a LineCollection as (x, low, high)."""
    return np.array([(path.vertices[0, 0], path.vertices[0, 1], path.vertices[1, 1])
                     for path in collection.get_paths()])


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_each_group_of_finite_shift_is_a_point_with_its_interval(fits, level):
    result = fits[None]
    ax = plot.group_shifts(result, level=level)
    finite = np.isfinite(result.shift) & (result.weight_sum > 0)
    assert result.status.tolist().count("no_weight") == 1
    assert 0 < finite.sum() == result.n_groups - 2  # less the group of one class, and site-07
    points = by_gid(ax.lines, "shift")
    np.testing.assert_array_equal(points.get_xdata(), result.weight_sum[finite])
    np.testing.assert_array_equal(points.get_ydata(), result.shift[finite])
    z = normal_quantile(level)
    drawn = segments(by_gid(ax.collections, "shift_interval"))
    np.testing.assert_allclose(drawn, np.column_stack([
        result.weight_sum[finite], result.shift[finite] - z * result.se[finite],
        result.shift[finite] + z * result.se[finite]]), rtol=1e-12)
    # The group whose labels are all 0 sits at the bottom edge; nothing is at the top.
    below = by_gid(ax.lines, "infinite_below")
    np.testing.assert_array_equal(below.get_xdata(),
                                  result.weight_sum[result.status == "all_negative"])
    assert by_gid(ax.lines, "infinite_above") is None
    pooled = by_gid(ax.lines, "pooled")
    assert set(pooled.get_ydata()) == {result.pooled.shift}
    assert by_gid(ax.lines, "shrunk") is None and by_gid(ax.lines, "mean") is None


def test_random_intercepts_add_the_shrunk_shifts_the_mean_and_the_spread(fits):
    result = fits["random"]
    ax = plot.group_shifts(result)
    usable = result.weight_sum > 0
    shrunk = by_gid(ax.lines, "shrunk")
    assert len(shrunk.get_xdata()) == result.n_groups - 1  # every group with weight
    np.testing.assert_array_equal(shrunk.get_ydata(), result.shrunk[usable])
    z = normal_quantile(0.95)
    low = result.shrunk[usable] - z * result.shrunk_se[usable]
    high = result.shrunk[usable] + z * result.shrunk_se[usable]
    np.testing.assert_allclose(segments(by_gid(ax.collections, "shrunk_interval"))[:, 1:],
                               np.column_stack([low, high]), rtol=1e-12)
    # Drawn a few points apart from the raw shifts, but inside the axes all the same.
    bottom, top = ax.get_ylim()
    assert bottom <= low.min() and high.max() <= top
    assert set(by_gid(ax.lines, "mean").get_ydata()) == {result.mean}
    band = by_gid(ax.patches, "tau")  # x in axes coordinates, y in data
    corners = band.get_patch_transform().transform(band.get_path().vertices)
    np.testing.assert_allclose([corners[:, 1].min(), corners[:, 1].max()],
                               [result.mean - z * result.tau, result.mean + z * result.tau],
                               rtol=1e-12)
    lines = segments(by_gid(ax.collections, "shrinkage"))
    finite = np.isfinite(result.shift) & usable
    np.testing.assert_array_equal(lines[:, 1], result.shift[finite])
    np.testing.assert_array_equal(lines[:, 2], result.shrunk[finite])


def test_it_draws_on_the_axes_given_and_labels_the_farthest_groups(fits):
    result = fits["random"]
    ax = Figure().add_subplot()
    assert plot.group_shifts(result, ax, annotate=3) is ax
    labels = [text.get_text() for text in ax.texts if text.get_gid() == "annotation"]
    usable = result.weight_sum > 0
    distance = np.where(usable, np.abs(result.shrunk - result.mean), -1.0)
    farthest = np.argsort(-distance, kind="stable")[:3]
    assert labels == [str(key) for key in result.groups[farthest]]
    assert ax.get_xscale() == "linear"  # sizes within a factor of 10


def test_sizes_that_span_decades_are_drawn_on_a_log_scale(rows):
    spread = rows.assign(w=rows["w"] * np.where(rows["site"] == "site-01", 100.0, 1.0))
    assert plot.group_shifts(reference(spread, "site")).get_xscale() == "log"
