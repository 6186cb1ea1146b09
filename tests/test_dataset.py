"""pyarrow datasets and scanners as a source: every estimator, the same answers as in memory."""

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import logitshift
from logitshift import InputError

N = 6000


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(11)
    offset = rng.normal(0.0, 1.5, N)
    group = rng.integers(0, 5, N)
    y = (rng.random(N) < 1 / (1 + np.exp(-(offset - 0.4 + 0.3 * group)))).astype(np.int8)
    weight = rng.integers(1, 5, N).astype(np.float64)
    return {"y": y, "f": offset, "w": weight, "g": group, "part": group % 2}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, rows):
    """A hive-partitioned dataset of several files (partitioned by ``part``)."""
    path = tmp_path_factory.mktemp("dataset")
    ds.write_dataset(pa.table(rows), path, format="parquet", partitioning=["part"],
                     partitioning_flavor="hive", max_rows_per_group=1000,
                     max_rows_per_file=2000)
    return path


def _dataset(folder):
    return ds.dataset(folder, format="parquet", partitioning="hive")


def _in_memory(dataset, columns):
    """The dataset's rows in the order a scan reads them."""
    table = dataset.to_table(columns=columns)
    return {name: table.column(name).to_numpy() for name in columns}


def test_every_estimator_equals_the_rows_in_memory(folder):
    dataset = _dataset(folder)
    rows = _in_memory(dataset, ["y", "f", "w", "g"])
    shift = logitshift.fit_file(dataset, "y", "f", "w")
    expected = logitshift.fit(rows["y"], rows["f"], rows["w"])
    assert shift.shift == pytest.approx(expected.shift, rel=1e-13, abs=1e-15)
    assert shift.se == pytest.approx(expected.se, rel=1e-12)
    slope = logitshift.fit_slope_file(dataset, "y", "f")
    expected_slope = logitshift.fit_slope(rows["y"], rows["f"])
    assert slope.slope == pytest.approx(expected_slope.slope, rel=1e-12)
    assert slope.intercept == pytest.approx(expected_slope.intercept, rel=1e-12, abs=1e-14)
    report = logitshift.validate_file(dataset, "y", "f", "w")
    expected_report = logitshift.validate(rows["y"], rows["f"], rows["w"])
    assert report.brier == pytest.approx(expected_report.brier, rel=1e-12)
    assert abs(report.c_statistic - expected_report.c_statistic) <= report.c_statistic_bound
    groups = logitshift.fit_groups_file(dataset, "y", "g", "f", shrinkage="random")
    expected_groups = logitshift.fit_groups(rows["y"], rows["g"], offset=rows["f"],
                                            shrinkage="random")
    np.testing.assert_array_equal(groups.groups, expected_groups.groups)
    np.testing.assert_allclose(groups.shift, expected_groups.shift, rtol=1e-12)
    assert groups.tau == pytest.approx(expected_groups.tau, rel=1e-9)


def test_a_filtered_scanner_reads_only_its_rows(folder, rows):
    dataset = _dataset(folder)
    scanner = dataset.scanner(columns=["y", "f"], filter=ds.field("part") == 1)
    kept = rows["part"] == 1
    result = logitshift.fit_file(scanner, "y", "f")
    expected = logitshift.fit(rows["y"][kept], rows["f"][kept])
    assert result.n_rows == kept.sum()
    assert result.shift == pytest.approx(expected.shift, rel=1e-13, abs=1e-15)


def test_a_scanner_of_batches_and_a_table_dataset(rows):
    table = pa.table({name: rows[name] for name in ("y", "f")})
    expected = logitshift.fit(rows["y"], rows["f"], offset_is="logit")
    scanner = ds.Scanner.from_batches(table.to_batches(max_chunksize=999), schema=table.schema)
    assert logitshift.fit_file(scanner, "y", "f").shift == pytest.approx(expected.shift,
                                                                         rel=1e-13)
    # A dataset is a table too: fit_frame reads it the same way.
    in_memory = ds.dataset(table)
    assert logitshift.fit_frame(in_memory, "y", "f").shift == pytest.approx(expected.shift,
                                                                            rel=1e-13)


def test_probabilities_and_a_batch_size(folder):
    dataset = _dataset(folder)
    rows = _in_memory(dataset, ["y", "f"])
    table = pa.table({"y": rows["y"], "p": 1 / (1 + np.exp(-rows["f"]))})
    result = logitshift.fit_file(ds.dataset(table), "y", "p", offset_is="probability",
                                 batch_rows=777)
    expected = logitshift.fit(rows["y"], rows["f"])
    assert result.shift == pytest.approx(expected.shift, rel=1e-12)


def test_a_bad_row_is_named_by_file_and_row(tmp_path):
    good = pa.table({"y": [0, 1, 0], "f": [0.1, 0.2, 0.3]})
    bad = pa.table({"y": [1, 0, 1, 0], "f": [0.5, None, 0.2, 0.1]})
    pq.write_table(good, tmp_path / "a.parquet")
    pq.write_table(bad, tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"b\.parquet.*offset\[1\] is missing") as caught:
        logitshift.fit_file(ds.dataset(tmp_path), "y", "f")
    assert "'f'" in str(caught.value)
    with pytest.raises(InputError, match=r"y\[0\] = 2"):
        logitshift.fit_file(ds.dataset(pa.table({"y": [2, 0], "f": [0.0, 1.0]})), "y", "f")


@pytest.mark.parametrize("call, match", [
    (lambda d: logitshift.fit_file(d, "y", "nope"), "no column 'nope' in the dataset"),
    (lambda d: logitshift.fit_file(d, "y", "f", format="csv"), "format"),
    (lambda d: logitshift.fit_file(d.scanner(), "y", "f", batch_rows=10), "batch_rows"),
    (lambda d: logitshift.fit_file(d, "y", "f", batch_rows=0), "batch_rows"),
    (lambda d: logitshift.fit_slope_file(d, "y", None), "offset must name the column"),
    (lambda d: logitshift.fit_groups_file(d, "y", None, "f"), "group must name a column"),
    (lambda d: logitshift.fit_frame(d, "y", "f", method="newton"), "a pass over the data"),
], ids=["missing column", "format", "scanner batch_rows", "zero batch_rows", "no offset",
        "no group", "newton"])
def test_refused_by_name(call, match):
    dataset = ds.dataset(pa.table({"y": [0, 1, 1], "f": [0.1, -0.2, 0.4]}))
    with pytest.raises(InputError, match=match):
        call(dataset)
