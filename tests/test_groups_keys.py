"""Group columns in memory as a new user would hand them to `fit_groups`: each either refused
by name (argument, row and value) or answered, every group's shift against `logitshift.fit`
on that group's rows."""

from __future__ import annotations

import datetime
import decimal
import math
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
from logitshift._summary.group_sketch import GroupSketch

N = 60
RNG = np.random.default_rng(11)
OFFSET = RNG.normal(0.0, 1.0, N)
# Both labels in every group of every pattern below (rows i, i + 6, i + 12, ... share a
# residue mod 6, and each residue has both labels).
Y = np.tile([0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1], N // 12)


def _fit_groups(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return logitshift.fit_groups(*args, **kwargs)


def _object(values) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        column[index] = value
    return column


def _cycle(labels, n: int = N) -> list:
    """``labels`` repeated to ``n`` rows: row i has ``labels[i % len(labels)]``."""
    return [labels[i % len(labels)] for i in range(n)]


def _partition(labels: list) -> dict:
    """Rows of each label, by Python's ``==`` and hash (the reference grouping)."""
    parts: dict = {}
    for row, label in enumerate(labels):
        parts.setdefault(label, []).append(row)
    return parts


def assert_groups_match_fit(result, expected: dict, y=Y, offset=OFFSET) -> None:
    """One group per key of ``expected`` (key -> its rows), each with the shift of
    `logitshift.fit` on its rows (1e-12), its row count, and the same answer from
    `predict_shift` and `fit_of`."""
    assert result.n_groups == len(expected)
    position = {key: i for i, key in enumerate(result.groups.tolist())}
    assert len(position) == result.n_groups  # no two result groups equal
    for key, rows in expected.items():
        i = position[key]
        rows = np.asarray(rows)
        assert result.n_rows[i] == rows.size, key
        reference = logitshift.fit(y[rows], offset[rows])
        assert abs(result.shift[i] - reference.shift) <= 1e-12, key
        assert result.predict_shift([key])[0] == result.shift[i], key
        assert abs(result.fit_of(key).shift - reference.shift) <= 1e-12, key


def assert_refused(group, pattern: str, argument: str = "group", index=None, **kwargs):
    with pytest.raises(logitshift.InputError, match=pattern) as error:
        _fit_groups(Y[:len(group)] if index == "short" else Y, group, OFFSET
                    if index != "short" else OFFSET[:len(group)], **kwargs)
    assert error.value.argument == argument
    if isinstance(index, int):
        assert error.value.index == index
    return error.value


# -- item 1: every kind of missing group names its row -----------------------------------------

@pytest.mark.parametrize("missing", [
    pd.NA, pd.NaT, None, float("nan"), np.float32("nan"), np.float64("nan"),
    decimal.Decimal("nan"), np.datetime64("NaT"), np.timedelta64("NaT"), complex("nan"),
], ids=["pd.NA", "pd.NaT", "None", "float nan", "float32 nan", "float64 nan",
        "decimal nan", "datetime64 NaT", "timedelta64 NaT", "complex nan"])
@pytest.mark.parametrize("others", [["a", "b"], [1.0, 2.0], [1, 2]],
                         ids=["str", "float", "int"])
def test_a_missing_label_inside_an_object_column_names_its_row(missing, others):
    labels = _cycle(others)
    labels[7] = missing
    error = assert_refused(_object(labels), r"group\[7\] is missing: every row needs a group",
                           index=7)
    assert error.index == 7


@pytest.mark.parametrize("group", [
    np.array(["2020-01-01", "NaT", "2020-01-02"] * (N // 3), dtype="datetime64[D]"),
    np.array([1, "NaT", 2] * (N // 3), dtype="timedelta64[s]"),
    pd.Series(pd.to_datetime(["2020-01-01", None, "2020-01-02"] * (N // 3))),
    pd.Series([1, None, 2] * (N // 3), dtype="Int64"),
    pd.Series(["a", None, "b"] * (N // 3), dtype="string"),
    pl.Series([1, None, 2] * (N // 3)),
    pl.Series(["a", None, "b"] * (N // 3), dtype=pl.Categorical),
    pa.array([datetime.date(2020, 1, 1), None, datetime.date(2020, 1, 2)] * (N // 3)),
], ids=["datetime64", "timedelta64", "pandas datetime", "pandas Int64", "pandas string",
        "polars int", "polars categorical", "arrow date"])
def test_missing_dates_and_nulls_name_their_row(group):
    assert_refused(group, r"group\[1\] is missing", index=1)


def test_a_dictionary_entry_that_is_null_is_a_missing_group():
    # The index is valid; the value it points at is null.
    indices = pa.array(_cycle([0, 1, 2]), type=pa.int32())
    group = pa.DictionaryArray.from_arrays(indices, pa.array(["a", None, "b"]))
    assert_refused(group, r"group\[1\] is missing", index=1)
    floats = pa.DictionaryArray.from_arrays(indices, pa.array([0.5, 1.5, math.nan]))
    assert_refused(floats, r"group\[2\] is missing", index=2)
    # An entry that no row points at is no group, null or not.
    unused = pa.DictionaryArray.from_arrays(pa.array(_cycle([0, 2]), type=pa.int32()),
                                            pa.array(["a", None, "b"]))
    assert_groups_match_fit(_fit_groups(Y, unused, OFFSET),
                            _partition(_cycle(["a", "b"])))


def test_a_chunked_dictionary_whose_second_chunk_has_a_null_entry_names_the_row():
    first = pa.DictionaryArray.from_arrays(pa.array([0, 1] * 15, type=pa.int32()),
                                           pa.array(["a", "b"]))
    second = pa.DictionaryArray.from_arrays(pa.array([0, 1] * 15, type=pa.int32()),
                                            pa.array([None, "a"]))
    assert_refused(pa.chunked_array([first, second]), r"group\[30\] is missing", index=30)


@pytest.mark.parametrize("levels, index", [
    ([np.nan, 1.0], 0), (["a", None], 1), (np.array([1.0, np.nan]), 1), (["a", pd.NA], 1),
    ([np.datetime64("2020-01-01"), np.datetime64("NaT")], 1),
])
def test_a_missing_level_is_refused_by_its_place(levels, index):
    codes = np.array(_cycle([0, 1]))
    with pytest.raises(logitshift.InputError,
                       match=rf"levels\[{index}\] is (missing|nan)") as error:
        _fit_groups(Y, codes, OFFSET, levels=levels)
    assert error.value.argument == "levels" and error.value.index == index


def test_a_chunk_numbers_a_missing_object_label_from_its_first_row():
    labels = _object(["a", "b", pd.NA, "a"])
    with pytest.raises(logitshift.InputError, match=r"group\[102\] is missing") as error:
        GroupSketch().update(np.array([0, 1, 0, 1]), labels, first_row=100)
    assert error.value.index == 102


# -- item 2: one label is one group ----------------------------------------------------------

def test_a_dictionary_that_repeats_a_value_gives_one_group():
    indices = pa.array(_cycle([0, 1, 2]), type=pa.int32())
    group = pa.DictionaryArray.from_arrays(indices, pa.array(["a", "b", "a"]))
    result = _fit_groups(Y, group, OFFSET)
    assert_groups_match_fit(result, _partition(_cycle(["a", "b", "a"])))
    assert result.fit_of("a").shift == pytest.approx(result.predict_shift(["a"])[0],
                                                     abs=1e-12)
    # The same for integer and float dictionaries, and for a chunked one.
    ints = pa.DictionaryArray.from_arrays(indices, pa.array([7, 9, 7]))
    assert_groups_match_fit(_fit_groups(Y, ints, OFFSET), _partition(_cycle([7, 9, 7])))
    floats = pa.DictionaryArray.from_arrays(indices, pa.array([0.5, -0.0, 0.0]))
    assert_groups_match_fit(_fit_groups(Y, floats, OFFSET),
                            _partition(_cycle([0.5, 0.0, 0.0])))
    chunked = pa.chunked_array([group[:30], group[30:]])
    assert_groups_match_fit(_fit_groups(Y, chunked, OFFSET),
                            _partition(_cycle(["a", "b", "a"])))


def test_chunks_with_different_dictionaries_give_one_group_per_value():
    first = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2] * 10, type=pa.int32()),
                                           pa.array(["x", "y", "z"]))
    second = pa.DictionaryArray.from_arrays(pa.array([2, 0, 1] * 10, type=pa.int32()),
                                            pa.array(["y", "w", "x"]))
    labels = ["x", "y", "z"] * 10 + ["x", "y", "w"] * 10
    result = _fit_groups(Y, pa.chunked_array([first, second]), OFFSET)
    assert_groups_match_fit(result, _partition(labels))


def test_frozenset_labels_give_one_group_per_distinct_value():
    labels = _cycle([frozenset({1, 2}), frozenset({3}), frozenset({2, 1})])
    result = _fit_groups(Y, _object(labels), OFFSET)
    assert result.n_groups == 2
    assert_groups_match_fit(result, _partition(labels))
    six = _object(_cycle([frozenset({1}), frozenset({2})], 6))
    small = _fit_groups(Y[:6], six, OFFSET[:6])
    assert small.n_groups == 2 and small.n_rows.tolist() == [3, 3]


def test_tuple_labels_are_groups_and_predict_by_tuple():
    labels = _cycle([(1, 2), (3,), ("a", 1)])
    result = _fit_groups(Y, _object(labels), OFFSET)
    assert_groups_match_fit(result, _partition(labels))
    # A list of tuples is labels too, not a 2-D array.
    assert_groups_match_fit(_fit_groups(Y, labels, OFFSET), _partition(labels))
    shifts = result.predict_shift([(3,), (1, 2), (9, 9)])
    assert shifts[0] == result.shift[result.groups.tolist().index((3,))]
    assert shifts[1] == result.shift[result.groups.tolist().index((1, 2))]
    assert math.isnan(shifts[2])


# -- item 9: raw exceptions become InputError ----------------------------------------------------

def test_a_polars_list_column_is_refused_by_name():
    assert_refused(pl.Series(_cycle([[1], [2, 3]])), "group holds values of type .*list")
    assert_refused(pa.array(_cycle([{"a": 1}, {"a": 2}])), "group holds values of type struct")


def test_unhashable_labels_name_their_row():
    labels = _object(_cycle(["a", "b"]))
    labels[5] = [1, 2]
    error = assert_refused(labels, r"group\[5\] = \[1, 2\] is a list, which is not hashable",
                           index=5)
    assert error.value == [1, 2]
    with_dict = _object(_cycle([{1: 2}, "a"]))
    assert_refused(with_dict, r"group\[0\] = \{1: 2\} is a dict", index=0)


@pytest.mark.parametrize("levels, pattern", [
    ([[1, 2], [3]], r"levels\[0\] = \[1, 2\] is a list, which is not hashable"),
    ([{1: 2}, "a"], r"levels\[0\] = \{1: 2\} is a dict"),
    (["a", "b", "a"], r"levels\[2\] = 'a' repeats levels\[0\]: levels must be distinct"),
    ([1, 1.0], r"levels\[1\] = 1.0 repeats levels\[0\]"),
    ([True, 1], r"mix bools and numbers"),
    (np.array([[1, 2], [3, 4]]), r"levels must be 1-D"),
])
def test_bad_levels_are_refused_by_name(levels, pattern):
    with pytest.raises(logitshift.InputError, match=pattern) as error:
        _fit_groups(Y, np.array(_cycle([0, 1])), OFFSET, levels=levels)
    assert error.value.argument == "levels"


def test_levels_of_tuples_label_the_codes():
    levels = [(1, 2), (3,)]
    result = _fit_groups(Y, np.array(_cycle([0, 1])), OFFSET, levels=levels)
    assert_groups_match_fit(result, _partition(_cycle(levels)))


@pytest.mark.parametrize("shrinkage", [None, "random"])
def test_predict_shift_refuses_unhashable_keys_and_answers_unseen_ones(shrinkage):
    result = _fit_groups(Y, np.array(_cycle([0, 1, 2])), OFFSET, shrinkage=shrinkage)
    for keys, index in (([{1: 2}], 0), ([0, [1, 2]], 1), ({1: 2}, 0), ([1, 2, {3}], 2)):
        with pytest.raises(logitshift.InputError, match=rf"keys\[{index}\] = .* not hashable") \
                as error:
            result.predict_shift(keys)
        assert error.value.argument == "keys" and error.value.index == index
    unseen = result.mean if shrinkage == "random" else math.nan
    seen = result.shrunk if shrinkage == "random" else result.shift
    shifts = result.predict_shift(["unseen", 2, np.int64(0), None, (1,)])
    np.testing.assert_array_equal(shifts, [unseen, seen[2], seen[0], unseen, unseen])
    np.testing.assert_array_equal(result.predict_shift(np.array([[1], [0]])), seen[[1, 0]])
    np.testing.assert_array_equal(result.predict_shift(1), seen[[1]])


# -- item 6: the swapped call fit_groups(y, scores, groups) -----------------------------------

def _swap_rows(n=400, seed=5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    return y, rng.normal(0.0, 1.0, n), rng.integers(0, 12, n)


SWAPPED = r"group holds 400 distinct floats in 400 rows, not all whole numbers: these look " \
          r"like scores.*fit_groups\(y, group, offset=scores\)"


def test_scores_passed_as_groups_are_refused():
    y, scores, groups = _swap_rows()
    with pytest.raises(logitshift.InputError, match=SWAPPED) as error:
        _fit_groups(y, scores, groups)
    assert error.value.argument == "group"
    with pytest.raises(logitshift.InputError, match=SWAPPED):
        _fit_groups(y, scores)
    frame = pd.DataFrame({"y": y, "score": scores, "g": groups})
    with pytest.raises(logitshift.InputError, match="column 'score': " + SWAPPED):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logitshift.fit_groups_frame(frame, "y", "score", "g")


def test_scores_as_groups_are_refused_from_a_file_of_small_batches_and_dask(tmp_path):
    y, scores, groups = _swap_rows()
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "score": scores, "g": groups}), path, row_group_size=16)
    with pytest.raises(logitshift.InputError, match=SWAPPED):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logitshift.fit_groups_file(path, "y", "score", "g", batch_rows=16)
    da = pytest.importorskip("dask.array")
    with pytest.raises(logitshift.InputError, match=SWAPPED):
        _fit_groups(da.from_array(y, chunks=16), da.from_array(scores, chunks=16),
                    da.from_array(groups, chunks=16))


@pytest.mark.parametrize("kind", ["whole floats", "halves", "distinct ints", "distinct strs",
                                  "few rows", "half distinct"])
def test_legitimate_groups_are_not_taken_for_scores(kind):
    y, scores, groups = _swap_rows()
    column = {"whole floats": np.arange(400) * 1.0 - 7.0,
              "halves": groups * 0.5 + 0.25,
              "distinct ints": np.arange(400),
              "distinct strs": scores.astype(str),
              "few rows": scores[:19],
              "half distinct": np.repeat(scores[:200], 2)}[kind]
    rows = len(column)
    result = _fit_groups(y[:rows], column, scores[:rows] if kind != "few rows" else None)
    assert result.n_groups == len(set(np.asarray(column).tolist()))


def test_float_groups_read_in_batches_that_each_look_like_scores_are_not_refused(tmp_path):
    # 40 groups of 0.5-steps, read 10 rows a batch: every batch is nearly all distinct,
    # the whole is not.
    rng = np.random.default_rng(2)
    n = 400
    groups = np.arange(n) % 40 * 0.5 + 0.25
    y = (rng.random(n) < 0.5).astype(np.int64)
    offset = rng.normal(size=n)
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "g": groups, "f": offset}), path, row_group_size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streamed = logitshift.fit_groups_file(path, "y", "g", "f", batch_rows=10)
    in_memory = _fit_groups(y, groups, offset)
    assert streamed.n_groups == 40
    np.testing.assert_allclose(streamed.shift, in_memory.shift, atol=1e-12, rtol=0)


# -- further hostile group columns ----------------------------------------------------------

ANSWERED = {
    # Python's 1 and "1" are different labels; numpy would make a list of both two strings.
    "list of int and str": (lambda: _cycle([1, "1", "a"]), None),
    "object int and str": (lambda: _object(_cycle([1, "1", "a"])), None),
    "-0.0 and 0.0 floats": (lambda: np.array(_cycle([-0.0, 0.0, 1.5])), {0.0: [0, 1], 1.5: [2]}),
    "-0.0 and 0.0 objects": (lambda: _object(_cycle([-0.0, 0, 1.5])), {0.0: [0, 1], 1.5: [2]}),
    "bytes": (lambda: _object(_cycle([b"a", b"b"])), None),
    "bytes beside str": (lambda: _object(_cycle([b"a", "a"])), None),
    "ints beyond int64": (lambda: _cycle([2**70, 2**70 + 1, -(2**70)]), None),
    "ints and floats a double cannot tell apart": (
        lambda: _object(_cycle([2**53 + 1, 2**53, 0.5])), None),
    "uint64 beyond int64": (lambda: np.array(_cycle([2**63, 2**64 - 1, 2**63 + 1]),
                                             dtype=np.uint64), None),
    "numpy and Python ints": (lambda: _object(_cycle([np.int64(3), 3, np.uint8(4)])),
                              {3: [0, 1], 4: [2]}),
    "np.str_ and str": (lambda: _object(_cycle([np.str_("a"), "a", "b"])),
                        {"a": [0, 1], "b": [2]}),
    "float32 0.1 and float 0.1": (lambda: _object(_cycle([np.float32(0.1), 0.1])), None),
    "decimal 1.0 and 1": (lambda: _object(_cycle([decimal.Decimal("1.0"), 1, 2.5])),
                          {1: [0, 1], 2.5: [2]}),
    "inf and -inf": (lambda: np.array(_cycle([math.inf, -math.inf, 0.0])), None),
    "empty and blank strings": (lambda: _cycle(["", " ", "a", "a "]), None),
    "composed and decomposed é": (lambda: _cycle(["\u00e9", "e\u0301"]), None),
    "complex": (lambda: np.array(_cycle([1 + 1j, 1 - 1j, 2 + 0j])), None),
    "datetime64": (lambda: np.array(_cycle(["2020-01-01", "2021-06-30"]),
                                    dtype="datetime64[D]"), None),
    "dates": (lambda: _object(_cycle([datetime.date(2020, 1, 1),
                                      datetime.date(2020, 1, 2)])), None),
    "pandas tz-aware datetimes": (
        lambda: pd.Series(pd.to_datetime(_cycle(["2020-01-01", "2020-01-02"])).tz_localize(
            "Europe/Paris")), None),
    "pandas nullable booleans": (lambda: pd.Series(_cycle([True, False]), dtype="boolean"),
                                 None),
    "pandas Series with a shuffled index": (
        lambda: pd.Series(_cycle(["a", "b", "c"]), index=RNG.permutation(N)), None),
    "pandas Index": (lambda: pd.Index(_cycle(["a", "b", "c"])), None),
    "pandas categorical with unused categories": (
        lambda: pd.Categorical(_cycle(["b", "a"]), categories=["z", "a", "b", "q"]), None),
    "polars Categorical": (lambda: pl.Series(_cycle(["x", "y", "z"]), dtype=pl.Categorical),
                           None),
    "polars Enum with unused values": (
        lambda: pl.Series(_cycle(["x", "y"]), dtype=pl.Enum(["w", "x", "y", "z"])), None),
    "arrow large_string": (lambda: pa.array(_cycle(["a", "b"]), type=pa.large_string()),
                           None),
    "arrow binary": (lambda: pa.array(_cycle([b"a", b"b"]), type=pa.binary()), None),
    "arrow decimal": (lambda: pa.array(_cycle([decimal.Decimal("1.5"),
                                               decimal.Decimal("2.5")])), None),
    "mixed hashables": (lambda: _object(_cycle([(1,), frozenset({1}), "1", 1, b"1"])), None),
}


def _expected_of(labels) -> dict:
    if isinstance(labels, pd.Series):
        labels = labels.tolist()
    if isinstance(labels, (pl.Series, pa.Array)):
        labels = labels.to_list() if isinstance(labels, pl.Series) else labels.to_pylist()
    return _partition([label.item() if isinstance(label, np.generic) else label
                       for label in np.asarray(labels, dtype=object).tolist()]
                      if not isinstance(labels, list) else labels)


@pytest.mark.parametrize("case", list(ANSWERED), ids=list(ANSWERED))
def test_hostile_group_columns_are_answered_by_group(case):
    make, residues = ANSWERED[case]
    group = make()
    result = _fit_groups(Y, group, OFFSET)
    if residues is None:
        expected = _expected_of(group)
    else:  # key -> residues of the pattern's cycle
        period = sum(len(r) for r in residues.values())
        expected = {key: [row for row in range(N) if row % period in r]
                    for key, r in residues.items()}
    assert_groups_match_fit(result, expected)


def test_int_and_str_labels_that_numpy_would_merge_stay_apart():
    result = _fit_groups(Y, _cycle([1, "1", "a"]), OFFSET)
    assert result.n_groups == 3
    assert {type(key) for key in result.groups.tolist()} == {int, str}


REFUSED = {
    "bools beside ints": (lambda: _object(_cycle([True, 1, 0])),
                          r"group\[1\] = 1 and group\[0\] = True mix bools and numbers"),
    "bools beside floats": (lambda: _cycle([0.5, False]),
                            r"group\[1\] = False and group\[0\] = 0.5 mix bools"),
    "numpy bool beside int": (lambda: _object(_cycle([2, np.bool_(True)])), "mix bools"),
    "NaN beside None": (lambda: _object(_cycle(["a", math.nan, None])),
                        r"group\[1\] is missing"),
    "None first": (lambda: _object(_cycle([None, "a"])), r"group\[0\] is missing"),
    "2-D array": (lambda: np.zeros((N, 2)), r"group must be 1-D, got shape \(60, 2\)"),
    "2-D pandas frame": (lambda: pd.DataFrame({"a": np.zeros(N), "b": np.ones(N)}),
                         "group must be 1-D"),
    "one row short": (lambda: np.arange(N - 1), "group has 59 rows, y has 60"),
    "one row long list": (lambda: _cycle(["a", "b"], N + 1), "group has 61 rows, y has 60"),
    "empty": (lambda: np.array([]), "group has 0 rows, y has 60"),
    "a scalar": (lambda: 3, r"group must be 1-D, got shape \(\)"),
    "a string": (lambda: "country", r"group must be 1-D, got shape \(\)"),
    "a set": (lambda: {1, 2}, r"group must be 1-D, got shape \(\)"),
    "a dict": (lambda: {"a": 1}, r"group must be 1-D, got shape \(\)"),
    "a generator": (lambda: (i % 3 for i in range(N)), r"group must be 1-D"),
    "a list inside": (lambda: _cycle(["a", ["b"]]), r"group\[1\] = \['b'\] is a list"),
    "a numpy array inside": (lambda: _object(_cycle([np.arange(2), "a"])),
                             r"group\[0\] = .* is a ndarray, which is not hashable"),
    "a set inside": (lambda: _object(_cycle(["a", {1}])), r"group\[1\] = \{1\} is a set"),
    "float nan": (lambda: np.array(_cycle([1.0, math.nan])), r"group\[1\] is nan"),
    "complex nan": (lambda: np.array(_cycle([1j, complex(math.nan, 0)])),
                    r"group\[1\] is nan"),
    "structured dtype": (lambda: np.zeros(N, dtype=[("a", "i8"), ("b", "f8")]),
                         "group has dtype .* which cannot hold group labels"),
    "polars struct": (lambda: pl.Series(_cycle([{"a": 1}, {"a": 2}])),
                      "group holds values of type struct"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_hostile_group_columns_are_refused_by_name(case):
    make, pattern = REFUSED[case]
    with pytest.raises(logitshift.InputError, match=pattern) as error:
        _fit_groups(Y, make(), OFFSET)
    assert error.value.argument == "group"


def test_an_empty_group_column_with_empty_labels_is_refused_as_empty():
    with pytest.raises(logitshift.InputError, match="y is empty"):
        _fit_groups(np.array([], dtype=np.int64), np.array([], dtype=object))


def test_the_callers_group_column_is_not_modified():
    labels = _object(_cycle([frozenset({1}), "a", 2]))
    before = labels.copy()
    _fit_groups(Y, labels, OFFSET)
    assert labels.tolist() == before.tolist()
    listed = _cycle([1, "1"])
    _fit_groups(Y, listed, OFFSET)
    assert listed == _cycle([1, "1"])


# -- merging sketches of such keys ---------------------------------------------------------

def test_merging_sketches_of_frozenset_keys_gives_one_group_per_value():
    labels = _cycle([frozenset({1}), frozenset({2}), frozenset({1, 2}), frozenset({3})])
    group = _object(labels)
    whole = GroupSketch().update(Y, group, OFFSET)
    parts = (GroupSketch().update(Y[:30], group[:30], OFFSET[:30])
             + GroupSketch().update(Y[30:], group[30:], OFFSET[30:], first_row=30))
    assert parts.n_groups == whole.n_groups == 4
    for key, rows in _partition(labels).items():
        index = parts.index_of(key)
        assert parts._n_rows[index] == len(rows)
        reference = logitshift.fit(Y[rows], OFFSET[rows])
        assert abs(parts.sketch_of(key).solve().shift - reference.shift) <= 1e-12


def test_merging_bool_keys_into_int_keys_is_refused():
    # Python counts True as 1: merged, two groups of two files would become one.
    bools = GroupSketch().update(Y[:30], np.array(_cycle([True, False], 30)), OFFSET[:30])
    ints = GroupSketch().update(Y[30:], np.array(_cycle([1, 0], 30)), OFFSET[30:])
    with pytest.raises(logitshift.InputError,
                       match="labels are int into one whose labels are bool"):
        bools + ints
