"""read_history: the real data as it is, both formats, and one clear error per kind of bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from advisor.history import read_history
from slicewise.errors import BadInput
from slicewise.history_schema import REQUIRED_COLUMNS
from tests.support import shared_file

REAL = "data/real/alibaba-gentd26-sd-pods.csv"
GIB = 1024**3


def good_frame() -> pd.DataFrame:
    """Three samples of two workloads: one on a MIG device of an H100, one exclusive on an A100."""
    return pd.DataFrame(
        {
            "timestamp": [1767225600, 1767225660, 1767225600],
            "workload": ["ml/train", "ml/train", "web/infer"],
            "node": ["n1", "n1", "n2"],
            "gpu_uuid": ["GPU-a", "GPU-a", "GPU-b"],
            "gpu_model": ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"],
            "mig_profile": ["3g.40gb", "3g.40gb", ""],
            "sharing": ["mig", "mig", "exclusive"],
            "memory_used_bytes": [30 * GIB, 31 * GIB, 5 * GIB],
            "sm_active_gpu_fraction": [0.25, 0.3, 0.5],
        }
    )


def write_csv(tmp_path: Path, frame: pd.DataFrame, name: str = "h.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_real_data_reads_as_it_is():
    path = shared_file(REAL)
    history = read_history(path)
    raw = pd.read_csv(path)
    assert len(history) == len(raw) == 87637
    assert list(history.columns) == list(REQUIRED_COLUMNS)
    assert str(history["timestamp"].dt.tz) == "UTC"
    assert history["timestamp"].iloc[0] == pd.Timestamp(int(raw["timestamp"].iloc[0]), unit="s", tz="UTC")
    assert isinstance(history["workload"].dtype, pd.CategoricalDtype)
    assert history["workload"].nunique() == 72
    assert set(history["mig_profile"].cat.categories) == {""}
    assert history["memory_used_bytes"].dtype == np.int64
    assert (history["memory_used_bytes"].to_numpy() == raw["memory_used_bytes"].to_numpy()).all()
    assert np.allclose(history["sm_active_gpu_fraction"], raw["sm_active_gpu_fraction"])


def test_parquet_and_csv_give_the_same_frame(tmp_path):
    frame = good_frame()
    csv = read_history(write_csv(tmp_path, frame))
    parquet_path = tmp_path / "h.parquet"
    as_parquet = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="s", utc=True))
    as_parquet.to_parquet(parquet_path)
    parquet = read_history(parquet_path)
    for column in frame.columns:
        if column == "timestamp":
            assert (csv[column] == parquet[column]).all()
        else:
            assert list(csv[column]) == list(parquet[column])
    assert list(parquet["mig_profile"]) == ["3g.40gb", "3g.40gb", ""]


def test_csv_times_as_iso_8601_and_gzip(tmp_path):
    frame = good_frame().astype({"timestamp": object})
    frame.loc[0, "timestamp"] = "2026-01-01T00:00:00Z"
    frame.loc[1, "timestamp"] = "2026-01-01 01:01:00+01:00"  # the same instant as 00:01 UTC
    path = tmp_path / "h.csv.gz"
    with gzip.open(path, "wt") as out:
        frame.to_csv(out, index=False)
    history = read_history(path)
    assert list(history["timestamp"].astype("int64") // 10**3) == [1767225600, 1767225660, 1767225600]


def test_naive_parquet_times_are_utc_and_unknown_columns_ignored(tmp_path):
    frame = good_frame().assign(
        timestamp=pd.to_datetime(good_frame()["timestamp"], unit="s"), extra=1, namespace="ml", process_count=2
    )
    path = tmp_path / "h.parquet"
    frame.to_parquet(path)
    history = read_history(path)
    assert "extra" not in history.columns
    assert list(history.columns)[-2:] == ["namespace", "process_count"]
    assert history["timestamp"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")


def test_unmeasured_compute_is_nan_not_an_error(tmp_path):
    frame = good_frame().astype({"sm_active_gpu_fraction": object})
    frame.loc[1, "sm_active_gpu_fraction"] = ""
    history = read_history(write_csv(tmp_path, frame))
    assert np.isnan(history["sm_active_gpu_fraction"].iloc[1])
    assert history["sm_active_gpu_fraction"].iloc[2] == 0.5


def test_binned_rows_carry_their_largest_compute_in_both_formats(tmp_path):
    """A history of 5-minute bins (the Prometheus reader's rows at a coarse step) keeps each bin's largest compute
    and its samples beside its mean; compute figures are over the bins spread back into samples."""
    from advisor.features import compute_features

    frame = good_frame().assign(sm_active_peak_gpu_fraction=[0.9, 0.35, 0.5], bin_samples=[5, 5, 1])
    frame.to_parquet(tmp_path / "h.parquet")
    for history in (read_history(write_csv(tmp_path, frame)), read_history(tmp_path / "h.parquet")):
        assert history["sm_active_peak_gpu_fraction"].tolist() == [0.9, 0.35, 0.5]
        assert history["bin_samples"].tolist() == [5, 5, 1]
        train = next(f for f in compute_features(history) if f.workload == "ml/train")
        assert train.compute_peak_gpu_fraction == pytest.approx(0.9)
        assert train.compute_mean_gpu_fraction == pytest.approx(0.275)  # the bins' means, exactly
        # spread: 0.9 once and 0.0875 four times, 0.35 once and 0.2875 four times (p90: rank 8.1 of 0..9)
        assert train.compute_quantiles[0.9] == pytest.approx(0.405) and train.compute_quantiles[0.5] == pytest.approx(
            0.2875
        )
    frame.loc[1, "sm_active_peak_gpu_fraction"] = 1.5
    with pytest.raises(BadInput, match=r"column 'sm_active_peak_gpu_fraction'.*fraction outside 0\.\.1"):
        read_history(write_csv(tmp_path, frame))


# (column, row index, bad value, words the message must hold)
BAD_VALUES = [
    ("memory_used_bytes", 1, "lots", "expected a number"),
    ("memory_used_bytes", 2, "-5", "negative value"),
    ("memory_used_bytes", 0, "1.5", "expected a whole number"),
    ("memory_used_bytes", 1, "", "missing value"),
    ("sm_active_gpu_fraction", 2, "1.5", "fraction outside 0..1"),
    ("sm_active_gpu_fraction", 0, "-0.1", "fraction outside 0..1"),
    ("sm_active_gpu_fraction", 1, "busy", "expected a number"),
    ("timestamp", 2, "yesterday", "unparseable time"),
    ("timestamp", 1, "1767225600000", "unparseable time"),  # milliseconds, not seconds
    ("sharing", 1, "shared", "unknown sharing mode"),
    ("workload", 2, "", "empty value"),
    ("gpu_model", 0, "", "empty value"),
]


@pytest.mark.parametrize(("column", "index", "value", "words"), BAD_VALUES)
def test_a_bad_csv_value_names_file_row_and_column(tmp_path, column, index, value, words):
    frame = good_frame().astype({column: object})
    frame.loc[index, column] = value
    path = write_csv(tmp_path, frame)
    with pytest.raises(BadInput) as caught:
        read_history(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"row {index + 1} (line {index + 2})" in message
    assert f"column {column!r}" in message
    assert words in message
    assert BadInput.exit_code == 2


def test_a_missing_column_is_named(tmp_path):
    path = write_csv(tmp_path, good_frame().drop(columns=["sharing"]))
    with pytest.raises(BadInput, match=r"h\.csv: row 0 \(the header\), column 'sharing': required column is missing"):
        read_history(path)


def test_parquet_values_of_the_wrong_type_name_the_row(tmp_path):
    frame = good_frame().astype({"memory_used_bytes": str})
    frame.loc[2, "memory_used_bytes"] = "12 GB"
    frame = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="s", utc=True))
    path = tmp_path / "h.parquet"
    frame.to_parquet(path)
    with pytest.raises(BadInput, match=r"h\.parquet: row 3, column 'memory_used_bytes': expected a number"):
        read_history(path)


def test_parquet_nulls_and_non_text_are_errors(tmp_path):
    table = pa.table(
        {
            **{c: pa.array(v) for c, v in good_frame().items()},
            "workload": pa.array(["a", None, "b"]),
        }
    )
    pq.write_table(table, tmp_path / "nulls.parquet")
    with pytest.raises(BadInput, match=r"row 2, column 'workload': missing value"):
        read_history(tmp_path / "nulls.parquet")
    numbers = pa.table({**{c: pa.array(v) for c, v in good_frame().items()}, "node": pa.array([1, 2, 3])})
    pq.write_table(numbers, tmp_path / "numbers.parquet")
    with pytest.raises(BadInput, match=r"row 1, column 'node': expected text"):
        read_history(tmp_path / "numbers.parquet")


def test_unreadable_files_are_bad_input(tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(BadInput, match=r"corrupt\.parquet: not a readable Parquet file"):
        read_history(corrupt)
    with pytest.raises(BadInput, match="no such history file"):
        read_history(tmp_path / "absent.csv")
    with pytest.raises(BadInput, match="unknown history format"):
        read_history(tmp_path / "history.json")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(",".join(REQUIRED_COLUMNS) + "\n1,a,b,c,d,,exclusive,1,0.5,extra,fields\n")
    with pytest.raises(BadInput, match=r"ragged\.csv: line 2: 11 fields where the header has 9"):
        read_history(ragged)


def test_a_short_csv_row_is_an_error_not_empty_values(tmp_path):
    path = write_csv(tmp_path, good_frame())
    path.write_text(path.read_text() + "1767225720,ml/train,n1,GPU-a\n")
    with pytest.raises(BadInput, match=r"h\.csv: line 5: 4 fields where the header has 9"):
        read_history(path)
