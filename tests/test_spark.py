"""A Spark DataFrame as a source, on a real local Spark (the session of conftest.py): every
estimator against the same rows in memory, bad rows named by partition, column and row,
refusals before any job, and a failed task retried."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("pyspark", reason="the Spark source needs pyspark (logitshift[spark])")

import logitshift  # noqa: E402
import logitshift._sources.spark  # noqa: E402
import logitshift.spark  # noqa: E402
from logitshift import InputError  # noqa: E402
from test_groups_sources import assert_same_groups, make_rows  # noqa: E402
from test_report_sources import assert_same_report, assert_same_slope  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")

N = 12_000
#: An offset column whose name holds a dot: a column, not a field of a struct.
SCORE = "model.margin"


@pytest.fixture(scope="module")
def frame(spark):
    """Scores miscalibrated in both senses, weighted (zeros among the weights), in four
    partitions of 3000 rows (three Arrow batches each)."""
    rng = np.random.default_rng(21)
    scores = rng.normal(-0.5, 1.8, N)
    labels = (rng.random(N) < 1 / (1 + np.exp(-(0.4 + 0.8 * scores)))).astype(np.int8)
    weights = rng.exponential(1.0, N) * (rng.random(N) > 0.1)
    table = pa.table({"y": labels, SCORE: scores, "p": 1 / (1 + np.exp(-scores)),
                      "w": weights})
    return spark.createDataFrame(table).repartition(4).cache()


@pytest.fixture(scope="module")
def grouped(spark):
    """The rows of the per-group tests of the other sources (test_groups_sources.py: string
    and integer groups, one of labels all 0), in three partitions."""
    return spark.createDataFrame(pa.Table.from_pandas(make_rows(), preserve_index=False)
                                 ).repartition(3).cache()


def collected(frame):
    """A frame's rows, collected, as numpy arrays."""
    table = frame.toArrow()
    return {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names}


@pytest.fixture(scope="module")
def rows(frame):
    return collected(frame)


@pytest.fixture(scope="module")
def group_rows(grouped):
    return collected(grouped)


def assert_same_fit(actual, expected):
    assert abs(actual.shift - expected.shift) <= 1e-12 * max(1.0, abs(expected.shift))
    for name in ("se", "loss", "loss_at_zero", "weight_sum", "positives"):
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-12), name
    assert actual.n_rows == expected.n_rows and actual.status == expected.status
    assert actual.confint() == pytest.approx(expected.confint(), rel=1e-12, abs=1e-13)


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def test_the_frames_are_in_several_partitions(frame, rows, grouped):
    assert frame.rdd.getNumPartitions() == 4 and grouped.rdd.getNumPartitions() == 3
    assert len(rows["y"]) == N


@pytest.mark.parametrize("weight", [None, "w"], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("se_type", ["model", "robust"])
@pytest.mark.parametrize("chunk_rows", [1000, 1 << 18], ids=["batches", "partitions"])
def test_fit_frame_is_fit_on_the_same_rows(frame, rows, weight, se_type, chunk_rows,
                                           monkeypatch):
    monkeypatch.setattr(logitshift._sources.spark.SparkFrame, "chunk_rows", chunk_rows)
    result = logitshift.fit_frame(frame, "y", SCORE, weight, se_type=se_type)
    expected = logitshift.fit(rows["y"], rows[SCORE], None if weight is None else rows[weight],
                              se_type=se_type)
    assert result.method == "sketch" and result.passes == 1
    assert_same_fit(result, expected)


def test_fit_frame_without_offsets_is_the_log_odds_of_the_labels(frame, rows):
    result = logitshift.fit_frame(frame, "y", weight="w")
    assert_same_fit(result, logitshift.fit(rows["y"], weight=rows["w"]))


def test_fit_slope_and_validate_frame_are_the_same_on_the_same_rows(frame, rows):
    assert_same_slope(logitshift.fit_slope_frame(frame, "y", SCORE, "w"),
                      logitshift.fit_slope(rows["y"], rows[SCORE], rows["w"]))
    assert_same_report(logitshift.validate_frame(frame, "y", SCORE, "w"),
                       logitshift.validate(rows["y"], rows[SCORE], rows["w"]))


def test_probabilities_are_their_log_odds(frame, rows):
    result = logitshift.fit_frame(frame, "y", "p", "w", offset_is="probability")
    assert_same_fit(result, logitshift.fit(rows["y"], rows["p"], rows["w"],
                                           offset_is="probability"))
    assert_same_report(logitshift.validate_frame(frame, "y", "p", offset_is="probability"),
                       logitshift.validate(rows["y"], rows["p"], offset_is="probability"))


@pytest.mark.parametrize("group", ["site", "code"], ids=["strings", "integers"])
@pytest.mark.parametrize("options", [{}, {"shrinkage": "random"}], ids=["ml", "random"])
def test_fit_groups_frame_is_fit_groups_on_the_same_rows(grouped, group_rows, group, options):
    rows = group_rows
    result = quietly(logitshift.fit_groups_frame, grouped, "y", group, "f", "w", **options)
    expected = quietly(logitshift.fit_groups, rows["y"], rows[group], rows["f"], rows["w"],
                       **options)
    assert_same_groups(result, expected)


def test_integer_codes_with_levels(grouped, group_rows):
    rows = group_rows
    levels = [f"level-{k}" for k in range(int(rows["code"].max()) + 31)]
    codes = rows["code"] + 30  # codes into levels: 0, 7, 14, ...
    spark_codes = grouped.withColumn("c", grouped["code"] + 30)
    result = quietly(logitshift.fit_groups_frame, spark_codes, "y", "c", "f", levels=levels)
    expected = quietly(logitshift.fit_groups, rows["y"], codes, rows["f"], levels=levels)
    assert_same_groups(result, expected)


def test_the_sketches_are_those_of_the_rows_in_memory(frame, rows, grouped, group_rows):
    sketch = logitshift.spark.sketch_frame(frame, "y", SCORE, "w", robust=True, histogram=True)
    expected = logitshift.Sketch(robust=True, histogram=True).update(rows["y"], rows[SCORE],
                                                                     rows["w"])
    assert sketch.n_rows == expected.n_rows and (sketch.robust, sketch.histogram) == (True, True)
    assert_same_fit(sketch.solve(se_type="robust"), expected.solve(se_type="robust"))
    groups = logitshift.spark.sketch_groups_frame(grouped, "y", "site", "f", "w")
    expected_groups = logitshift.GroupSketch().update(
        group_rows["y"], group_rows["site"], group_rows["f"], group_rows["w"])
    assert_same_groups(quietly(groups.solve, shrinkage="random"),
                       quietly(expected_groups.solve, shrinkage="random"))


# -- errors ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranged(spark):
    """6000 rows in three partitions of ids 0-1999, 2000-3999, 4000-5999 (``spark.range``
    splits evenly), each partition two Arrow batches: id 3017 is row 1017 of partition 1."""
    return spark.range(0, 6000, numPartitions=3).selectExpr(
        "id", "cast(id % 2 as int) as y", "cast(id % 13 as double) / 4 - 1.5 as margin",
        "cast(id % 5 as string) as site")


@pytest.mark.parametrize("column, bad, call, message", [
    ("margin", "double('NaN')", "fit",
     "partition 1: column 'margin': offset[1017] is nan"),
    ("y", "2", "fit",
     "partition 1: column 'y': label y[1017] = 2 is outside [0, 1]"),
    ("site", "null", "groups",
     "partition 1: column 'site': group[1017] is missing: every row needs a group"),
], ids=["nan-offset", "label-2", "missing-group"])
@pytest.mark.parametrize("chunk_rows", [1, 1500, 1 << 18],
                         ids=["each-batch", "two-batches", "the-partition"])
def test_a_bad_row_is_named_by_partition_column_and_row(ranged, column, bad, call, message,
                                                        chunk_rows, monkeypatch):
    """Numbered within the partition, whether the chunks are Spark's batches of 1000 rows
    or runs of them (the bad row is in the second batch)."""
    monkeypatch.setattr(logitshift._sources.spark.SparkFrame, "chunk_rows", chunk_rows)
    frame = ranged.selectExpr(
        *[f"case when id = 3017 then {bad} else {name} end as {name}" if name == column
          else name for name in ("y", "margin", "site")])
    with pytest.raises(InputError) as raised:
        if call == "fit":
            logitshift.fit_frame(frame, "y", "margin")
        else:
            logitshift.fit_groups_frame(frame, "y", "site", "margin")
    assert str(raised.value) == message
    assert raised.value.argument == column and raised.value.index == 1017


def test_a_row_in_the_first_batch_of_the_first_partition(ranged):
    frame = ranged.selectExpr("y", "case when id = 4 then double('inf') else margin end as m")
    with pytest.raises(InputError, match=r"^partition 0: column 'm': offset\[4\] = inf "):
        logitshift.fit_frame(frame, "y", "m")


def test_a_spark_object_that_is_not_a_dataframe_is_refused_by_name(spark):
    rdd = spark.sparkContext.parallelize([(1, 0.5)])
    with pytest.raises(InputError, match=r"^frame must be a pyspark.sql.DataFrame, got RDD$"):
        logitshift.fit_frame(rdd, "y", "f")


def _jobs(spark, group):
    return spark.sparkContext.statusTracker().getJobIdsForGroup(group)


@pytest.mark.parametrize("call, match", [
    (lambda frame: logitshift.fit_frame(frame, "y", "nope"),
     r"no column 'nope' in the frame; it has 'id', 'y', 'margin', 'site'"),
    (lambda frame: logitshift.fit_groups_frame(frame, "y", "country", "margin"),
     r"no column 'country' in the frame"),
    (lambda frame: logitshift.fit_frame(frame, "y", "margin", method="newton"),
     r"method = 'newton' makes a pass over the data per iteration; on a Spark DataFrame"),
    (lambda frame: logitshift.fit_slope_frame(frame, "y", None),
     r"offset must name the column of raw scores"),
], ids=["missing-column", "missing-group-column", "newton", "slope-without-scores"])
def test_refused_before_any_job(spark, ranged, call, match):
    group = f"refusal-{id(call)}"
    spark.sparkContext.setJobGroup(group, "a call that must start no job")
    try:
        with pytest.raises(InputError, match=match):
            call(ranged)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert _jobs(spark, group) == []


def test_the_job_group_counts_jobs(spark, ranged):
    """The refusals' check can see a job: a fit that runs one is counted."""
    spark.sparkContext.setJobGroup("a-fit", "a fit")
    try:
        logitshift.fit_frame(ranged, "y", "margin")
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert len(_jobs(spark, "a-fit")) == 1


# -- a failed task -------------------------------------------------------------------------


def _failing_once(marker: str):
    """A step before the sketch that fails partition 1's first attempt after its first batch
    (leaving ``marker``), as a lost executor would, and passes the batches on otherwise."""

    def step(batches):
        from pyspark import TaskContext

        context = TaskContext.get()
        for number, batch in enumerate(batches):
            if (number == 1 and context.partitionId() == 1 and context.attemptNumber() == 0):
                open(marker, "w").close()
                raise RuntimeError("the first attempt of partition 1 fails")
            yield batch

    return step


def test_a_failed_task_retried_leaves_the_answer_unchanged(ranged, tmp_path):
    marker = str(tmp_path / "failed")
    clean = logitshift.fit_frame(ranged, "y", "margin")
    failing = ranged.select("y", "margin").mapInArrow(_failing_once(marker), "y int, margin double")
    result = logitshift.fit_frame(failing, "y", "margin")
    assert os.path.exists(marker)  # partition 1 did fail once, after reading a batch
    assert result.n_rows == 6000
    assert result.shift == clean.shift and result.weight_sum == clean.weight_sum


def test_without_pyspark_the_error_names_the_extra(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "logitshift._sources.spark")
    with pytest.raises(ImportError, match=r'pip install "logitshift\[spark\]"'):
        importlib.import_module("logitshift._sources.spark")
