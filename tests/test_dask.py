"""logitshift.dask against logitshift.fit on the same arrays in memory, locally and on a real
cluster of worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("dask", reason="logitshift.dask needs dask (logitshift[dask])")
pytest.importorskip("pandas", reason="dask DataFrames need pandas")
distributed = pytest.importorskip("distributed",
                                  reason="the cluster tests need dask.distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402

import logitshift  # noqa: E402
import logitshift.dask  # noqa: E402
from test_report_sources import assert_same_report, assert_same_slope  # noqa: E402

N_ROWS = 60_000


def make_data(n=N_ROWS, seed=0, soft=False, weighted=False):
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 2, n)
    probability = 1 / (1 + np.exp(-(offsets - 2)))
    labels = probability if soft else (rng.random(n) < probability).astype(np.int8)
    weights = rng.exponential(1.0, n) * (rng.random(n) > 0.2) if weighted else None
    return labels, offsets, weights


def assert_same_fit(actual, expected):
    """The in-memory answer to 1e-13 (relative to max(1, |shift|)), with its statistics."""
    assert abs(actual.shift - expected.shift) <= 1e-13 * max(1.0, abs(expected.shift))
    for name in ("se", "loss", "loss_at_zero", "weight_sum", "positives"):
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-13), name
    for name in ("status", "converged", "n_rows", "method", "passes", "pseudo_count"):
        assert getattr(actual, name) == getattr(expected, name), name
    assert actual.confint() == pytest.approx(expected.confint(), rel=1e-12, abs=1e-13)


def _load(log, labels, offsets, weights, kill_marker=None):
    """One chunk, as if read from storage: each read adds the reading process's id to ``log``
    (a file, so that reads in worker processes count too). With ``kill_marker``, the first
    read kills its worker process instead, leaving the marker behind."""
    if kill_marker is not None and not os.path.exists(kill_marker):
        open(kill_marker, "w").close()
        os._exit(1)
    with open(log, "a") as file:
        file.write(f"{os.getpid()}\n")
    return labels, offsets, weights


def loaded(tmp_path, labels, offsets, weights, chunks, kill_chunk=None):
    """Dask arrays whose chunks come from :func:`_load`, one call per chunk for all three."""
    log = str(tmp_path / "reads.log")
    columns = [[], [], []]
    start = 0
    for i, size in enumerate(chunks):
        rows = slice(start, start + size)
        start += size
        marker = str(tmp_path / "killed") if i == kill_chunk else None
        chunk = dask.delayed(_load, nout=3)(
            log, labels[rows], None if np.ndim(offsets) == 0 else offsets[rows],
            None if weights is None else weights[rows], kill_marker=marker)
        for column, values, part in zip(columns, (labels, offsets, weights), chunk):
            if np.ndim(values) > 0:
                column.append(da.from_delayed(part, (size,), values.dtype))
    labels, *rest = (da.concatenate(column) if column else None for column in columns)
    return (labels, offsets if np.ndim(offsets) == 0 else rest[0], rest[1])


def readers(tmp_path):
    """The id of the process behind each read so far."""
    log = tmp_path / "reads.log"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def reads(tmp_path):
    return len(readers(tmp_path))


UNEVEN = (1, 17_000, 2, 30_000, 12_997)
WITH_EMPTY = (0, 20_000, 0, 0, 39_999, 1, 0)


@pytest.mark.parametrize("case", [
    dict(weighted=True, chunks=UNEVEN),
    dict(soft=True, chunks=UNEVEN),
    dict(weighted=True, soft=True, chunks=WITH_EMPTY),
    dict(chunks=(N_ROWS,)),
    dict(weighted=True, chunks=7_000, offset_chunks=11_000, weight_chunks=UNEVEN),
    dict(offset=0.7, chunks=UNEVEN),
    dict(offset=None, weighted=True, chunks=WITH_EMPTY),
    dict(offset=np.float32(-1.5), chunks=9_000, pseudo_count=0.5),
    dict(weighted=True, chunks=UNEVEN, pseudo_count=2.0, tol=1e-10),
], ids=["weights", "soft-labels", "empty-chunks", "one-chunk", "chunked-unlike-y",
        "scalar-offset", "no-offset", "scalar-offset-pseudo-count", "options"])
def test_fit_arrays_equals_fit_in_memory(case):
    case = dict(case)
    chunks = case.pop("chunks")
    offset_chunks = case.pop("offset_chunks", chunks)
    weight_chunks = case.pop("weight_chunks", chunks)
    options = {name: case.pop(name) for name in ("pseudo_count", "tol") if name in case}
    labels, offsets, weights = make_data(**{k: v for k, v in case.items() if k != "offset"})
    if "offset" in case:
        offsets = case["offset"]
    expected = logitshift.fit(labels, offsets, weights, **options)

    def chunked(values, chunks):
        if values is None or np.ndim(values) == 0:
            return values
        return da.from_array(values, chunks=(chunks,) if isinstance(chunks, tuple) else chunks)

    actual = logitshift.dask.fit_arrays(chunked(labels, chunks), chunked(offsets, offset_chunks),
                                        chunked(weights, weight_chunks), **options)
    assert_same_fit(actual, expected)


def test_fit_arrays_reads_each_chunk_once(tmp_path):
    labels, offsets, weights = make_data(weighted=True, seed=3)
    arrays = loaded(tmp_path, labels, offsets, weights, UNEVEN)
    assert reads(tmp_path) == 0
    result = logitshift.dask.fit_arrays(*arrays)
    assert reads(tmp_path) == len(UNEVEN)
    assert result.passes == 1
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))


def test_fit_arrays_takes_arrays_in_memory_beside_dask_ones():
    labels, offsets, weights = make_data(weighted=True, seed=4)
    result = logitshift.dask.fit_arrays(da.from_array(labels, chunks=9_000), offsets,
                                        list(weights))
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))


def test_fit_arrays_with_chunks_of_unknown_size_numbers_rows_within_the_chunk():
    labels, offsets, weights = make_data(weighted=True, seed=5)
    frame = dd.from_pandas(pd.DataFrame({"y": labels, "f": offsets, "w": weights}),
                           npartitions=4)
    y, f, w = (frame[name].to_dask_array() for name in ("y", "f", "w"))
    assert np.isnan(y.chunks[0][0])
    assert_same_fit(logitshift.dask.fit_arrays(y, f, w), logitshift.fit(labels, offsets, weights))

    offsets[frame.divisions[2] + 17] = np.nan
    frame = dd.from_pandas(pd.DataFrame({"y": labels, "f": offsets}), npartitions=4)
    with pytest.raises(logitshift.InputError) as caught:
        logitshift.dask.fit_arrays(frame["y"].to_dask_array(), frame["f"].to_dask_array())
    assert str(caught.value) == "chunk 2: offset[17] is nan"
    assert (caught.value.argument, caught.value.index) == ("offset", 17)


def corrupt(column, row, value):
    labels, offsets, weights = make_data(weighted=True, seed=6)
    arrays = {"y": labels.astype(np.float64), "offset": offsets, "weight": weights}
    arrays[column][row] = value
    return arrays["y"], arrays["offset"], arrays["weight"]


@pytest.mark.parametrize("column, row, value", [
    ("offset", 40_123, np.nan),
    ("y", 17_001, 2.0),
    ("y", 0, -0.5),
    ("weight", N_ROWS - 1, -1.0),
    ("weight", 30_000, np.inf),
    ("offset", 47_002, -np.inf),  # with label 1 somewhere, so at some row it contradicts
], ids=["nan-offset", "label-above-1", "label-below-0", "negative-weight", "infinite-weight",
        "infinite-offset"])
def test_errors_name_the_global_row_as_fit_does(column, row, value):
    labels, offsets, weights = corrupt(column, row, value)
    if np.isinf(value) and column == "offset":
        labels[row], weights[row] = 1.0, 1.0  # a row the offset contradicts
    with pytest.raises(logitshift.InputError) as in_memory:
        logitshift.fit(labels, offsets, weights)
    with pytest.raises(logitshift.InputError) as on_dask:
        logitshift.dask.fit_arrays(*(da.from_array(values, chunks=(UNEVEN,))
                                     for values in (labels, offsets, weights)))
    assert str(on_dask.value) == str(in_memory.value)
    assert on_dask.value.index == in_memory.value.index == row
    assert on_dask.value.argument == in_memory.value.argument


@pytest.mark.parametrize("arguments, message", [
    (dict(offset=da.zeros(N_ROWS - 1, chunks=10_000)), f"offset has {N_ROWS - 1} rows, y has"),
    (dict(weight=da.zeros(N_ROWS, chunks=7_000)), "weight is zero on every row"),
    (dict(offset=np.nan), "offset is nan"),
    (dict(offset=da.zeros((N_ROWS, 2), chunks=10_000)), "offset must be 1-D"),
    (dict(offset=da.from_array(np.array(["a"] * N_ROWS))), "offset must be numeric"),
    (dict(weight=3.0), "weight must be 1-D"),
    (dict(method="newton"), "method = 'newton' makes a pass over the data per iteration"),
    (dict(method="exact"), "method = 'exact' must be one of"),
    (dict(pseudo_count=-1.0), "pseudo_count = -1.0 must be finite and non-negative"),
    (dict(tol=0.0), "tol must be positive"),
    (dict(max_iter=0), "max_iter = 0 must be a positive integer"),
], ids=["length", "zero-weight", "nan-offset", "2-d", "strings", "scalar-weight", "newton",
        "unknown-method", "pseudo-count", "tol", "max-iter"])
def test_bad_arguments_raise_input_error(arguments, message):
    labels, _, _ = make_data()
    y = da.from_array(labels, chunks=10_000)
    with pytest.raises(logitshift.InputError, match=re.escape(message)):
        logitshift.dask.fit_arrays(y, **arguments)


def test_bad_options_raise_before_any_chunk_is_read(tmp_path):
    labels, offsets, _ = make_data()
    y, f, _ = loaded(tmp_path, labels, offsets, None, UNEVEN)
    for options in (dict(method="newton"), dict(pseudo_count=-1.0), dict(max_iter=0)):
        with pytest.raises(logitshift.InputError):
            logitshift.dask.fit_arrays(y, f, **options)
    assert reads(tmp_path) == 0


def test_empty_arrays_raise_as_fit_does():
    with pytest.raises(logitshift.InputError, match="^y is empty$"):
        logitshift.dask.fit_arrays(da.zeros(0, chunks=1), da.zeros(0, chunks=1))


def test_every_label_zero_warns_at_the_callers_line():
    labels = da.zeros(1000, dtype=np.int8, chunks=300)
    offsets = da.linspace(-1, 1, 1000, chunks=300)
    with pytest.warns(RuntimeWarning, match="every label is 0") as record:
        result = logitshift.dask.fit_arrays(labels, offsets)
    assert result.shift == -np.inf and result.status == "all_negative"
    assert record[0].filename == __file__


def test_fit_hands_dask_arrays_to_the_one_pass_path(tmp_path):
    labels, offsets, weights = make_data(weighted=True, seed=11)
    arrays = loaded(tmp_path, labels, offsets, weights, UNEVEN)
    result = logitshift.fit(*arrays)
    assert reads(tmp_path) == len(UNEVEN)
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))
    with pytest.warns(RuntimeWarning, match="every label is 0") as record:
        logitshift.fit(da.zeros(1000, dtype=np.int8, chunks=300))
    assert record[0].filename == __file__


# -- DataFrames ----------------------------------------------------------------------------


def frame_of(labels, offsets, weights):
    return pd.DataFrame({"y": labels, "junk": np.arange(len(labels)) % 3, "f": offsets,
                         "w": weights})


def test_fit_frame_equals_fit_in_memory():
    labels, offsets, weights = make_data(weighted=True, soft=True, seed=7)
    frame = dd.from_pandas(frame_of(labels, offsets, weights), npartitions=7)
    result = logitshift.dask.fit_frame(frame, label="y", offset="f", weight="w")
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))


def test_fit_frame_hands_a_dask_frame_to_the_one_pass_path():
    labels, offsets, weights = make_data(weighted=True, seed=12)
    frame = dd.from_pandas(frame_of(labels, offsets, weights), npartitions=5)
    result = logitshift.fit_frame(frame, label="y", offset="f", weight="w")
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))
    zeros = dd.from_pandas(pd.DataFrame({"y": np.zeros(100)}), npartitions=2)
    with pytest.warns(RuntimeWarning, match="every label is 0") as record:
        logitshift.fit_frame(zeros, label="y")
    assert record[0].filename == __file__


def _load_partition(log, frame, columns=None):
    """A partition, as if read from storage: the columns asked for go to ``log``."""
    with open(log, "a") as file:
        file.write(f"{','.join(columns or frame.columns)}\n")
    return frame if columns is None else frame[list(columns)]


def loaded_frame(tmp_path, frame, npartitions):
    """A dask DataFrame whose partitions come from :func:`_load_partition`, which reads only
    the columns Dask asks for."""
    parts = np.array_split(np.arange(len(frame)), npartitions)
    return dd.from_map(_load_partition, [str(tmp_path / "reads.log")] * npartitions,
                       [frame.iloc[rows] for rows in parts], meta=frame.iloc[:0],
                       enforce_metadata=False)


def test_fit_frame_reads_only_the_named_columns_once(tmp_path):
    labels, offsets, weights = make_data(weighted=True, seed=8)
    frame = loaded_frame(tmp_path, frame_of(labels, offsets, weights), 6)
    result = logitshift.dask.fit_frame(frame, label="y", offset="f")
    assert (tmp_path / "reads.log").read_text().splitlines() == ["y,f"] * 6
    assert_same_fit(result, logitshift.fit(labels, offsets))


def test_fit_frame_names_the_partition_and_the_column():
    labels, offsets, weights = make_data(weighted=True, seed=9)
    frame = dd.from_pandas(frame_of(labels, offsets, weights), npartitions=5)
    offsets[frame.divisions[3] + 17] = np.nan
    frame = dd.from_pandas(frame_of(labels, offsets, weights), npartitions=5)
    with pytest.raises(logitshift.InputError) as caught:
        logitshift.dask.fit_frame(frame, label="y", offset="f", weight="w")
    assert str(caught.value) == "partition 3: column 'f': offset[17] is nan"
    assert (caught.value.argument, caught.value.index) == ("f", 17)


def test_fit_frame_names_the_column_of_errors_about_the_whole():
    labels, offsets, _ = make_data(seed=10)
    frame = dd.from_pandas(frame_of(labels, offsets, np.zeros(N_ROWS)), npartitions=3)
    with pytest.raises(logitshift.InputError, match="^column 'w': weight is zero on every row$"):
        logitshift.dask.fit_frame(frame, label="y", offset="f", weight="w")


def test_fit_frame_refuses_missing_columns_before_reading(tmp_path):
    labels, offsets, weights = make_data(seed=11)
    frame = loaded_frame(tmp_path, frame_of(labels, offsets, weights), 3)
    with pytest.raises(logitshift.InputError, match="no column 'margin' in the frame; it has"):
        logitshift.dask.fit_frame(frame, label="y", offset="margin")
    with pytest.raises(logitshift.InputError, match="label must name a column, got None"):
        logitshift.dask.fit_frame(frame, label=None, offset="f")
    with pytest.raises(logitshift.InputError, match="frame must be a dask DataFrame"):
        logitshift.dask.fit_frame(frame_of(labels, offsets, weights), label="y")
    assert not (tmp_path / "reads.log").exists()  # no partition was read


def test_importing_logitshift_does_not_import_dask():
    code = "import logitshift, sys; print('dask' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "False"


def test_without_dask_the_import_error_names_the_extra():
    code = ("import sys; sys.modules['dask'] = None  # as if dask were not installed\n"
            "import logitshift.dask")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0
    assert 'ImportError: logitshift.dask needs dask: pip install "logitshift[dask]"' in run.stderr


# -- the calibration report and the slope ---------------------------------------------------------


def recalibration_data(seed, n=N_ROWS):
    """Scores off in the large and in slope (intercept 0.4, slope 0.8), weighted."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(-0.5, 1.8, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(0.4 + 0.8 * scores)))).astype(np.int8)
    return labels, scores, rng.exponential(1.0, n) * (rng.random(n) > 0.1)


def test_validate_and_fit_slope_on_dask_arrays_equal_them_in_memory(tmp_path):
    labels, scores, weights = recalibration_data(seed=31)
    p = 1 / (1 + np.exp(-scores))
    report = logitshift.validate(*loaded(tmp_path, labels, p, weights, UNEVEN),
                                 offset_is="probability", bins=12)
    assert reads(tmp_path) == len(UNEVEN)  # each chunk once
    assert report.shift.passes == 1 and report.slope.method == "sketch"
    assert_same_report(report, logitshift.validate(labels, p, weights, offset_is="probability",
                                                   bins=12))
    # The histogram's sub-bins bound the streamed c-statistic far below the cells' 3e-3.
    exact = logitshift.validate(labels, p, weights, offset_is="probability").c_statistic
    assert 0 < report.c_statistic_bound <= 1e-4
    assert abs(report.c_statistic - exact) <= report.c_statistic_bound
    slope = logitshift.fit_slope(da.from_array(labels, chunks=7_000),
                                 da.from_array(scores, chunks=7_000),
                                 da.from_array(weights, chunks=7_000))
    assert_same_slope(slope, logitshift.fit_slope(labels, scores, weights))
    assert logitshift.fit(da.from_array(labels, chunks=7_000), da.from_array(p, chunks=7_000),
                          offset_is="probability").shift == pytest.approx(
        logitshift.fit(labels, p, offset_is="probability").shift, rel=1e-13)


def test_robust_standard_errors_on_dask_equal_them_in_memory():
    labels, scores, weights = recalibration_data(seed=34)
    chunked = [da.from_array(values, chunks=7_000) for values in (labels, scores, weights)]
    shift = logitshift.dask.fit_arrays(*chunked, se_type="robust")
    assert shift.se_type == "robust"
    assert shift.se == pytest.approx(
        logitshift.fit(labels, scores, weights, se_type="robust").se, rel=1e-12)
    slope = logitshift.fit_slope(*chunked, se_type="robust")
    np.testing.assert_allclose(
        slope.covariance,
        logitshift.fit_slope(labels, scores, weights, se_type="robust").covariance, rtol=1e-11)
    frame = dd.from_pandas(frame_of(labels, scores, weights), npartitions=3)
    assert logitshift.dask.fit_frame(frame, "y", "f", "w", se_type="robust").se == (
        pytest.approx(shift.se, rel=1e-12))


def test_validate_frame_on_a_dask_frame_reads_the_named_columns_once(tmp_path):
    labels, scores, weights = recalibration_data(seed=32)
    frame = frame_of(labels, 1 / (1 + np.exp(-scores)), weights)
    report = logitshift.validate_frame(loaded_frame(tmp_path, frame, 6), "y", "f", "w",
                                       offset_is="probability")
    assert (tmp_path / "reads.log").read_text().splitlines() == ["y,f,w"] * 6
    assert_same_report(report, logitshift.validate_frame(frame, "y", "f", "w",
                                                         offset_is="probability"))
    slope = logitshift.fit_slope_frame(dd.from_pandas(frame, npartitions=4), "y", "f",
                                       offset_is="probability")
    assert_same_slope(slope, logitshift.fit_slope_frame(frame, "y", "f",
                                                        offset_is="probability"))


def test_probabilities_are_checked_in_their_chunk_with_the_global_row():
    labels, scores, _ = recalibration_data(seed=33)
    p = 1 / (1 + np.exp(-scores))
    row = 20_017
    p[row] = 1.5
    with pytest.raises(logitshift.InputError,
                       match=rf"^probability offset\[{row}\] = 1.5 is outside") as caught:
        logitshift.validate(da.from_array(labels, chunks=9_000), da.from_array(p, chunks=9_000),
                            offset_is="probability")
    assert caught.value.index == row
    p[row] = 1.0  # certain, but its label is 0
    labels[row] = 0
    with pytest.raises(logitshift.InputError, match=rf"offset\[{row}\] = inf with label"):
        logitshift.fit_slope(da.from_array(labels, chunks=9_000), da.from_array(p, chunks=9_000),
                             offset_is="probability")
    frame = dd.from_pandas(frame_of(labels, p, None), npartitions=3)
    with pytest.raises(logitshift.InputError, match=r"^partition \d: column 'f': offset\[\d+\] "
                                                    r"= inf with label"):
        logitshift.validate_frame(frame, "y", "f", offset_is="probability")
    with pytest.raises(logitshift.InputError, match="offset must be an array"):
        logitshift.validate(da.from_array(labels, chunks=9_000), 0.3)


# -- on a cluster of worker processes --------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, every computation of the module sent there
    while the fixture lives (a Client is the default scheduler, as for any user)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. about ports, on a shared machine
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        yield client


def test_cluster_fit_arrays_reads_each_chunk_once(client, tmp_path):
    labels, offsets, weights = make_data(weighted=True, seed=12)
    result = logitshift.dask.fit_arrays(*loaded(tmp_path, labels, offsets, weights, UNEVEN))
    assert reads(tmp_path) == len(UNEVEN)
    assert os.getpid() not in readers(tmp_path)  # the workers read the chunks
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))


def test_cluster_fit_frame(client):
    labels, offsets, weights = make_data(weighted=True, seed=13)
    frame = dd.from_pandas(frame_of(labels, offsets, weights), npartitions=9)
    result = logitshift.dask.fit_frame(frame, label="y", offset="f", weight="w")
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))


def test_cluster_survives_a_worker_killed_during_the_fit(client, tmp_path):
    labels, offsets, weights = make_data(weighted=True, seed=14)
    arrays = loaded(tmp_path, labels, offsets, weights, UNEVEN, kill_chunk=3)
    result = logitshift.dask.fit_arrays(*arrays)
    assert (tmp_path / "killed").exists()
    assert_same_fit(result, logitshift.fit(labels, offsets, weights))
    client.wait_for_workers(2, timeout=60)


def test_cluster_bad_chunk_raises_input_error_on_the_client(client, tmp_path):
    labels, offsets, weights = make_data(weighted=True, seed=15)
    row = sum(UNEVEN[:2]) + 5  # in chunk 2
    offsets[row] = np.nan
    with pytest.raises(logitshift.InputError) as caught:
        logitshift.dask.fit_arrays(*loaded(tmp_path, labels, offsets, weights, UNEVEN))
    assert str(caught.value) == f"offset[{row}] is nan"
    assert (caught.value.argument, caught.value.index) == ("offset", row)


def test_cluster_validate_frame(client):
    labels, scores, weights = recalibration_data(seed=34)
    frame = frame_of(labels, scores, weights)
    report = logitshift.validate_frame(dd.from_pandas(frame, npartitions=9), "y", "f", "w")
    assert_same_report(report, logitshift.validate(labels, scores, weights))
