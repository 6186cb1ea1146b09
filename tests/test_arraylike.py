"""Array-likes from other libraries in, the same answer out; tables by column name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import logitshift
from logitshift._summary.passes import Prepared

N = 5_000


def _data():
    rng = np.random.default_rng(5)
    offsets = rng.normal(0, 2, N)
    labels = (rng.random(N) < 1 / (1 + np.exp(-(offsets - 2)))).astype(np.int8)
    weights = rng.exponential(1.0, N)
    return labels, offsets, weights


LABELS, OFFSETS, WEIGHTS = _data()
EXPECTED = logitshift.fit(LABELS, OFFSETS, WEIGHTS)


def _pandas(kind):
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    dtypes = {"numpy": (None, None, None), "nullable": ("Int8", "Float64", "Float64"),
              "arrow": ("int8[pyarrow]", "float64[pyarrow]", "float64[pyarrow]")}[kind]
    if kind == "arrow":
        pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    return tuple(pd.Series(values, dtype=dtype)
                 for values, dtype in zip((LABELS, OFFSETS, WEIGHTS), dtypes))


def _polars():
    pl = pytest.importorskip("polars", reason="polars is not installed")
    return pl.Series(LABELS), pl.Series(OFFSETS), pl.Series(WEIGHTS)


def _arrow(chunks):
    import pyarrow as pa

    def chunked(values):
        return pa.chunked_array(np.array_split(values, chunks))

    if chunks == 0:
        return pa.array(LABELS), pa.array(OFFSETS), pa.array(WEIGHTS)
    return chunked(LABELS), chunked(OFFSETS), chunked(WEIGHTS)


def _torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    # A model's output that still carries its autograd graph.
    return (torch.from_numpy(LABELS), torch.from_numpy(OFFSETS).requires_grad_(),
            torch.from_numpy(WEIGHTS))


CONTAINERS = {
    "list": lambda: (LABELS.tolist(), OFFSETS.tolist(), WEIGHTS.tolist()),
    "pandas": lambda: _pandas("numpy"),
    "pandas-nullable": lambda: _pandas("nullable"),
    "pandas-arrow": lambda: _pandas("arrow"),
    "polars": _polars,
    "pyarrow-array": lambda: _arrow(0),
    "pyarrow-one-chunk": lambda: _arrow(1),
    "pyarrow-chunked": lambda: _arrow(3),
    "torch": _torch,
}


@pytest.mark.parametrize("make", CONTAINERS.values(), ids=CONTAINERS.keys())
def test_every_container_gives_the_numpy_answer(make):
    labels, offsets, weights = make()
    result = logitshift.fit(labels, offsets, weights)
    assert result.shift == EXPECTED.shift
    assert result.se == EXPECTED.se
    assert result.n_rows == N


@pytest.mark.parametrize("make", [CONTAINERS[name] for name in
                                  ("pandas", "polars", "pyarrow-array", "pyarrow-one-chunk",
                                   "torch")],
                         ids=["pandas", "polars", "pyarrow-array", "pyarrow-one-chunk", "torch"])
def test_plain_numeric_buffers_are_read_without_copies(make):
    labels, offsets, weights = make()
    data = Prepared.of(labels, offsets, weights)
    for array, original in ((data.labels, LABELS), (data.offsets, OFFSETS),
                            (data.weights, WEIGHTS)):
        np.testing.assert_array_equal(array, original)
    # Each container made its own buffer from the numpy arrays above; the kernels read
    # that buffer itself.
    for array, container in ((data.labels, labels), (data.offsets, offsets),
                             (data.weights, weights)):
        buffer = np.asarray(container.detach() if hasattr(container, "detach") else container)
        assert np.shares_memory(array, buffer)


def test_containers_are_left_unchanged():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    series = pd.Series(OFFSETS.copy())
    logitshift.fit(pd.Series(LABELS), series, pd.Series(WEIGHTS))
    np.testing.assert_array_equal(series.to_numpy(), OFFSETS)


def test_bfloat16_tensors_are_widened():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    rounded = torch.from_numpy(OFFSETS).bfloat16()
    result = logitshift.fit(torch.from_numpy(LABELS), rounded)
    assert result.shift == logitshift.fit(LABELS, rounded.float().numpy()).shift


def test_a_tensor_off_the_cpu_is_refused_by_name():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    with pytest.raises(logitshift.InputError, match=r"offset is a tensor on meta") as caught:
        logitshift.fit(LABELS, torch.empty(N, device="meta"))
    assert caught.value.argument == "offset"


def _missing_cases():
    cases = []
    try:
        import pandas as pd

        cases += [
            pytest.param(lambda: pd.Series([1, 0, None, 1], dtype="Int64"), id="pandas-Int64"),
            pytest.param(lambda: pd.Series([True, False, None, True], dtype="boolean"),
                         id="pandas-boolean"),
            pytest.param(lambda: pd.Series([1.0, 0.0, None, 1.0], dtype="float64[pyarrow]"),
                         id="pandas-arrow"),
        ]
    except ImportError:
        pass
    try:
        import polars as pl

        cases.append(pytest.param(lambda: pl.Series([1, 0, None, 1]), id="polars"))
    except ImportError:
        pass
    import pyarrow as pa

    cases += [
        pytest.param(lambda: pa.array([1, 0, None, 1]), id="pyarrow"),
        pytest.param(lambda: pa.chunked_array([[1, 0], [None, 1]]), id="pyarrow-chunked"),
    ]
    return cases


@pytest.mark.parametrize("make", _missing_cases())
def test_missing_values_are_named_not_turned_into_nan(make):
    with pytest.raises(logitshift.InputError, match=r"^y\[2\] is missing$") as caught:
        logitshift.fit(make())
    assert (caught.value.argument, caught.value.index) == ("y", 2)


@pytest.mark.parametrize("bad, message", [
    ({"a": 1}, r"y must be numeric; y\[0\] = \{'a': 1\}"),
    (["0", "1"], r"y must be numeric, got dtype <U1"),
    ([[0, 1], [1, 0]], r"y must be 1-D, got shape \(2, 2\)"),
])
def test_unreadable_inputs_raise_input_error(bad, message):
    with pytest.raises(logitshift.InputError, match=message):
        logitshift.fit(bad)


# -- fit_frame --------------------------------------------------------------------------------


def _frames():
    columns = {"clicked": LABELS, "score": OFFSETS, "n": WEIGHTS}
    frames = [pytest.param(lambda: dict(columns), id="dict")]
    import pyarrow as pa

    frames += [pytest.param(lambda: pa.table(columns), id="pyarrow-table"),
               pytest.param(lambda: pa.record_batch(columns), id="pyarrow-batch")]
    try:
        import pandas as pd

        frames.append(pytest.param(lambda: pd.DataFrame(columns), id="pandas"))
    except ImportError:
        pass
    try:
        import polars as pl

        frames += [pytest.param(lambda: pl.DataFrame(columns), id="polars"),
                   pytest.param(lambda: pl.DataFrame(columns).lazy(), id="polars-lazy")]
    except ImportError:
        pass
    return frames


@pytest.mark.parametrize("make", _frames())
def test_fit_frame_reads_the_named_columns(make):
    result = logitshift.fit_frame(make(), label="clicked", offset="score", weight="n")
    assert result.shift == EXPECTED.shift
    unweighted = logitshift.fit_frame(make(), label="clicked", offset="score")
    assert unweighted.shift == logitshift.fit(LABELS, OFFSETS).shift
    assert logitshift.fit_frame(make(), "clicked").shift == logitshift.fit(LABELS).shift


@pytest.mark.parametrize("make", _frames())
def test_fit_frame_names_a_missing_column_and_lists_the_others(make):
    with pytest.raises(logitshift.InputError,
                       match=r"no column 'offset' in the frame; it has 'clicked', 'score', 'n'"):
        logitshift.fit_frame(make(), label="clicked", offset="offset")


def test_fit_frame_errors_name_the_column():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    frame = pd.DataFrame({"clicked": LABELS.astype(float), "score": OFFSETS},
                         index=np.arange(N) + 100)  # rows are counted by position
    frame.iloc[7, 0] = 2.0
    with pytest.raises(logitshift.InputError,
                       match=r"^column 'clicked': label y\[7\] = 2.0 is outside \[0, 1\]$"
                       ) as caught:
        logitshift.fit_frame(frame, label="clicked", offset="score")
    assert (caught.value.argument, caught.value.index) == ("clicked", 7)
    with pytest.raises(logitshift.InputError, match=r"no column 3 in the frame"):
        logitshift.fit_frame(frame, label="clicked", offset=3)  # integers may name columns
    for bad in (["score"], None, True):
        with pytest.raises(logitshift.InputError, match=r"must name a column, got"):
            logitshift.fit_frame(frame, label="clicked" if bad is not None else bad,
                                 offset=bad if bad is not None else "score")


def test_fit_frame_warnings_point_at_the_caller():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logitshift.fit_frame({"y": np.zeros(3)}, label="y")
        logitshift.fit(np.zeros(3))
    assert [w.filename for w in caught] == [__file__, __file__]
