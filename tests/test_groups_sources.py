"""Per-group shifts from every source: tables, CSV and Parquet files, standard input and Dask,
each against `logitshift.fit_groups` on the same rows in memory."""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
import logitshift._sources.files
import logitshift.io

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


# -- tables in memory ------------------------------------------------------------------------


def _table(kind: str, rows: pd.DataFrame):
    import polars as pl

    categorical = rows.assign(site=rows["site"].astype("category"))
    if kind == "pandas":
        return rows
    if kind == "pandas-categorical":
        return categorical
    if kind == "polars":
        return pl.from_pandas(rows)
    if kind == "polars-categorical":
        return pl.from_pandas(rows).with_columns(pl.col("site").cast(pl.Categorical))
    if kind == "polars-lazy":
        return pl.from_pandas(rows).lazy()
    if kind == "pyarrow-dictionary":
        return pa.Table.from_pandas(categorical, preserve_index=False)
    return {name: rows[name].to_numpy() for name in rows.columns}


TABLES = ["pandas", "pandas-categorical", "polars", "polars-categorical", "polars-lazy",
          "pyarrow-dictionary", "mapping"]


@pytest.fixture(scope="module")
def references(rows):
    return {option.id: reference(rows, "site", **option.values[0]) for option in OPTIONS}


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("kind", TABLES)
def test_fit_groups_frame_equals_fit_groups_for_every_kind_of_table(rows, references, kind,
                                                                    options):
    if kind.startswith("polars"):
        pytest.importorskip("polars")
    actual = quietly(logitshift.fit_groups_frame, _table(kind, rows), "y", "site", "f", "w",
                     **options)
    assert_same_groups(actual, references["random-nagq3" if options else "ml"])


def test_fit_groups_frame_with_integer_groups_and_no_offset(rows):
    assert_same_groups(quietly(logitshift.fit_groups_frame, rows, "y", "code"),
                       reference(rows, "code", offset=None, weight=None))


def test_fit_groups_frame_errors_name_the_column(rows):
    with pytest.raises(logitshift.InputError, match="no column 'country'.*'site'"):
        logitshift.fit_groups_frame(rows, "y", "country", "f")
    holed = rows.assign(site=rows["site"].where(rows.index != 17))
    with pytest.raises(logitshift.InputError,
                       match=r"column 'site': group\[17\] is missing") as error:
        logitshift.fit_groups_frame(holed, "y", "site", "f")
    assert error.value.argument == "site" and error.value.index == 17
    with pytest.raises(logitshift.InputError, match="group must name a column"):
        logitshift.fit_groups_frame(rows, "y", ["site"], "f")
    zero = rows.assign(w=0.0)
    with pytest.raises(logitshift.InputError, match="column 'w': weight is zero on every row"):
        logitshift.fit_groups_frame(zero, "y", "site", "f", "w")


def test_fit_groups_frame_never_modifies_the_frame(rows):
    before = rows.copy(deep=True)
    quietly(logitshift.fit_groups_frame, rows, "y", "site", "f", "w", offset_is="logit")
    pd.testing.assert_frame_equal(rows, before)


# -- files and standard input -----------------------------------------------------------------


def _write(rows: pd.DataFrame, path, row_group_size=256):
    if str(path).endswith(".csv"):
        rows.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path,
                       row_group_size=row_group_size)


@pytest.fixture
def small_csv_batches(monkeypatch):
    """CSV read in blocks of 16 KB (batches of about 300 rows) and its types told from the
    first 4 KB, as a file of many blocks is."""
    monkeypatch.setattr(logitshift._sources.files, "CSV_BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(logitshift._sources.files, "_CSV_SAMPLE_BYTES", 1 << 12)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("group", ["site", "code"], ids=["strings", "integers"])
@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet"])
def test_fit_groups_file_equals_fit_groups(tmp_path, rows, small_csv_batches, name, group,
                                           options):
    path = tmp_path / name
    _write(rows, path)
    actual = quietly(logitshift.fit_groups_file, path, "y", group, "f", "w", batch_rows=300,
                     progress=False, **options)
    assert_same_groups(actual, reference(rows, group, **options))


def test_a_sketch_is_filled_batch_by_batch(tmp_path, rows, monkeypatch):
    # The file's rows reach the group sketch in batches of batch_rows, each numbered from
    # where it starts in the file: never the whole file at once.
    path = tmp_path / "rows.parquet"
    _write(rows, path)
    seen = []
    update = logitshift._summary.group_sketch.GroupSketch.update

    def spy(self, y, group, *args, first_row=0, **kwargs):
        seen.append((first_row, len(y)))
        return update(self, y, group, *args, first_row=first_row, **kwargs)

    monkeypatch.setattr(logitshift._summary.group_sketch.GroupSketch, "update", spy)
    quietly(logitshift.io.sketch_groups_file, path, "y", "site", "f", batch_rows=500)
    assert len(seen) > 1 and all(0 < size <= 500 for _, size in seen)
    starts = [start for start, _ in seen]
    assert starts == list(np.cumsum([0] + [size for _, size in seen[:-1]]))
    assert sum(size for _, size in seen) == N_ROWS


def test_fit_groups_file_of_several_files_is_the_fit_of_all_their_rows(tmp_path, rows):
    _write(rows.iloc[:1000], tmp_path / "part-0.parquet")
    _write(rows.iloc[1000:], tmp_path / "part-1.parquet")
    actual = quietly(logitshift.fit_groups_file, tmp_path, "y", "site", "f", "w",
                     shrinkage="random")
    assert_same_groups(actual, reference(rows, "site", shrinkage="random"))


def test_fit_groups_file_reads_standard_input(rows, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        rows.to_csv(index=False).encode())))
    actual = quietly(logitshift.fit_groups_file, "-", "y", "code", "f", "w")
    assert_same_groups(actual, reference(rows, "code"))


def test_fit_groups_file_takes_probabilities(tmp_path, rows):
    probabilities = rows.assign(f=1 / (1 + np.exp(-rows["f"])))
    _write(probabilities, tmp_path / "p.parquet")
    actual = quietly(logitshift.fit_groups_file, tmp_path / "p.parquet", "y", "site", "f",
                     offset_is="probability")
    expected = quietly(logitshift.fit_groups, rows["y"].to_numpy(), rows["site"].to_numpy(),
                       probabilities["f"].to_numpy(), offset_is="probability")
    assert_same_groups(actual, expected)
    assert np.max(np.abs(actual.shift[np.isfinite(actual.shift)] - reference(
        rows, "site", weight=None).shift[np.isfinite(actual.shift)])) <= 1e-9


@pytest.mark.parametrize("name", ["holes.csv", "holes.parquet"])
@pytest.mark.parametrize("group", ["site", "code"], ids=["strings", "integers"])
def test_a_missing_group_is_named_by_file_column_and_row(tmp_path, rows, small_csv_batches,
                                                         name, group):
    holed = rows.astype({group: object})
    holed.loc[2345, group] = None
    path = tmp_path / name
    _write(holed, path)
    with pytest.raises(logitshift.InputError) as error:
        logitshift.fit_groups_file(path, "y", group, "f", batch_rows=300)
    assert str(error.value) == (f"{str(path)!r}: column {group!r}: group[2345] is missing: "
                                "every row needs a group")
    assert error.value.index == 2345 and error.value.argument == group


def test_a_csv_group_of_text_after_integers_makes_every_label_text(tmp_path, rows,
                                                                     small_csv_batches):
    # Integers for many batches, then 'FR': the column is text, each label as written (the
    # integers before it become the text they were read from), as pandas reads it as text.
    mixed = rows.astype({"code": object})
    mixed.loc[2500, "code"] = "FR"
    path = tmp_path / "mixed.csv"
    _write(mixed, path)
    actual = quietly(logitshift.fit_groups_file, path, "y", "code", "f", "w")
    assert_same_groups(actual, reference(mixed.astype({"code": str}), "code"))
    assert "FR" in actual.groups.tolist() and "-30" in actual.groups.tolist()


def test_csv_labels_that_a_float_would_round_together_stay_apart(tmp_path):
    # 20-digit IDs are beyond int64 and decimals beyond a double's digits: as floats, these
    # would be one group each; they are read as text, as written.
    ids = ["12345678901234567890", "12345678901234567891", "12345678901234567892"]
    decimals = ["0.10000000000000000", "0.10000000000000001", "1.5"]
    path = tmp_path / "labels.csv"
    path.write_text("y,id,decimal\n" + "".join(
        f"{y},{a},{b}\n" for y, a, b in zip([0, 1, 0, 1, 0, 1], ids * 2, decimals * 2)))
    for column, labels in (("id", ids), ("decimal", decimals)):
        result = logitshift.fit_groups_file(path, "y", column)
        assert result.groups.tolist() == sorted(labels)
        assert result.n_rows.tolist() == [2, 2, 2]


def test_fit_groups_file_refuses_before_reading(tmp_path, rows):
    path = tmp_path / "rows.csv"
    _write(rows, path)
    with pytest.raises(logitshift.InputError, match="no column 'country' in"):
        logitshift.fit_groups_file(path, "y", "country", "f")
    with pytest.raises(logitshift.InputError, match="which is also the label"):
        logitshift.fit_groups_file(path, "y", "y", "f")
    with pytest.raises(logitshift.InputError, match="nagq applies"):
        logitshift.fit_groups_file(path, "y", "site", nagq=3)


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
    assert_same_groups(quietly(logitshift.fit_groups, y, site, offset, weight, **options),
                       expected)


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
    assert_same_groups(quietly(logitshift.fit_groups_frame, ddf, "y", "site", "f", "w",
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
