"""The façade: every public function picks its source from one table and runs one estimator."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logitshift
from logitshift import InputError
from logitshift._api import SOURCES, pick


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(5)
    offset = rng.normal(0.0, 1.0, 400)
    return pd.DataFrame({"y": (rng.random(400) < 1 / (1 + np.exp(-offset))).astype(int),
                         "f": offset, "g": rng.integers(0, 3, 400)})


def test_every_form_falls_back_on_a_source_that_reads_anything():
    for form, entries in SOURCES.items():
        accepts, _, _ = entries[-1]
        assert accepts(object()), form


def test_pick_chooses_by_the_type_of_the_input(frame):
    import pyarrow.dataset as ds

    assert type(pick("arrays", {"y": frame.y, "offset": frame.f})).__name__ == "Arrays"
    assert type(pick("table", frame, {"y": "y"})).__name__ == "Table"
    assert type(pick("table", ds.dataset(pa.table(frame)), {"y": "y"})).__name__ == \
        "ArrowDataset"
    assert type(pick("files", "rows.csv", {"y": "y"})).__name__ == "Files"
    with pytest.raises(InputError, match="offset_is"):
        pick("arrays", {"y": frame.y}, offset_is="odds")


@pytest.mark.parametrize("call", [
    lambda frame, path: logitshift.fit_groups_frame(frame, "y", None, "f"),
    lambda frame, path: logitshift.fit_groups_file(path, "y", None, "f"),
], ids=["frame", "file"])
def test_a_per_group_fit_without_a_group_column_is_refused_by_name(tmp_path, frame, call):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table(frame), path)
    with pytest.raises(InputError, match="group must name a column, got None") as caught:
        call(frame, path)
    assert caught.value.argument == "group"


def test_an_unknown_group_is_an_input_error_and_a_key_error(frame):
    result = logitshift.fit_groups_frame(frame, "y", "g", "f")
    for error in (InputError, KeyError):
        with pytest.raises(error, match=r"no group 7: the groups are 0, 1, 2"):
            result.fit_of(7)


def test_the_same_estimator_on_every_source_gives_the_same_shift(tmp_path, frame):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table(frame), path, row_group_size=100)
    expected = logitshift.fit(frame.y.to_numpy(), frame.f.to_numpy())
    for result in (logitshift.fit_frame(frame, "y", "f"), logitshift.fit_file(path, "y", "f"),
                   logitshift.fit_frame(pa.table(frame), "y", "f")):
        assert result.shift == pytest.approx(expected.shift, rel=1e-13)
