"""Generated bad input (hypothesis): history files in CSV and Parquet, and schedule configs, each either read or
refused with one BadInput that names the file; never another exception, never a RuntimeWarning.

The corpus of hand-made cases is in test_bad_input.py; these look for the cases nobody thought to write down.
"""

from __future__ import annotations

import csv
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.history.file import read_history
from advisor.schedule.config import ScheduleConfig, load_config
from slicewise.catalogue import find_model
from slicewise.errors import BadInput

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMNS = (
    "timestamp",
    "workload",
    "node",
    "gpu_uuid",
    "gpu_model",
    "mig_profile",
    "sharing",
    "memory_used_bytes",
    "sm_active_gpu_fraction",
)
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"
PLAUSIBLE: dict[str, list[Any]] = {
    "timestamp": [1795370400, 1795370460, "2026-11-22T10:00:00Z", 0],
    "workload": ["team/a", "team/b", "0042"],
    "node": ["node-1", "node-2"],
    "gpu_uuid": ["GPU-1", "GPU-2", "GPU-3"],
    "gpu_model": [H100, A100, "NVIDIA Future GPU"],
    "mig_profile": ["", "1g.10gb", "3g.40gb", "1g.5gb", "7g.80gb"],
    "sharing": ["exclusive", "mig", "mps", "timeslice"],
    "memory_used_bytes": [0, 1 << 30, 20 << 30, 90 << 30],
    "sm_active_gpu_fraction": [0.0, 0.5, 1.0, ""],
}
NASTY = st.sampled_from(["", "NaN", "nan", "inf", "-inf", "-0", "1e300", "-5", "1.5", "None", " 1 ", "0x10", "true"])
NASTY_NUMBER = st.sampled_from(["inf", "-inf", "1e300", "nan", str(2**64), "-1e-300"])
JUNK = st.one_of(
    NASTY_NUMBER,
    NASTY_NUMBER,
    NASTY_NUMBER,
    NASTY,
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
)
PLAUSIBLE_ROWS = st.lists(
    st.fixed_dictionaries({c: st.sampled_from(PLAUSIBLE[c]) for c in COLUMNS}), min_size=1, max_size=6
)


@st.composite
def rows_with_junk(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Plausible rows (so that most reach the later checks) with one to three cells replaced by anything at all."""
    rows = draw(PLAUSIBLE_ROWS)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        row = draw(st.integers(min_value=0, max_value=len(rows) - 1))
        rows[row] = {**rows[row], draw(st.sampled_from(COLUMNS)): draw(JUNK)}
    return rows


ROWS = rows_with_junk()


def read_or_refuse(path: Path) -> Any:
    """read_history's frame, or None when it refused with a proper BadInput."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return read_history(path)
        except BadInput as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            return None


def check_frame(frame: Any) -> None:
    """What the advisor downstream relies on, for anything the reader let through."""
    if frame is None:
        return
    memory = frame["memory_used_bytes"].to_numpy()
    assert (memory >= 0).all()
    fractions = frame["sm_active_gpu_fraction"].to_numpy(dtype=float)
    assert ((fractions >= 0) & (fractions <= 1) | np.isnan(fractions)).all()
    assert frame.groupby("gpu_uuid", observed=True)["gpu_model"].nunique().max() == 1
    for model_name, profile, mem in zip(frame["gpu_model"], frame["mig_profile"], memory, strict=True):
        gpu = find_model(model_name)
        if gpu is not None:
            assert not profile or profile in {p.name for p in gpu.profiles}
            assert mem <= gpu.memory_total_bytes * 1.02


@FUZZ
@given(rows=ROWS)
def test_fuzzed_csv_history(rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        with path.open("w", newline="", encoding="utf-8", errors="surrogatepass") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        check_frame(read_or_refuse(path))


def _arrow_column(values: list[Any], kind: str) -> pa.Array:
    if kind == "list":
        return pa.array([[str(v)] for v in values])
    if kind == "null":
        return pa.array([None] * len(values), pa.null())
    if kind == "text":
        return pa.array([str(v) for v in values])
    if kind == "float":
        return pa.array([float(v) if isinstance(v, int | float) else math.nan for v in values], pa.float64())
    if kind == "bool":
        return pa.array([bool(v) for v in values])
    return pa.array([v if isinstance(v, int) and abs(v) < 2**62 else 0 for v in values], pa.int64())


@FUZZ
@given(
    rows=ROWS,
    kinds=st.fixed_dictionaries(
        {c: st.sampled_from(["text", "text", "float", "int", "bool", "null", "list"]) for c in COLUMNS}
    ),
)
def test_fuzzed_parquet_history(rows: list[dict[str, Any]], kinds: dict[str, str]) -> None:
    table = pa.table({c: _arrow_column([r[c] for r in rows], kinds[c]) for c in COLUMNS})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.parquet"
        pq.write_table(table, path)
        check_frame(read_or_refuse(path))


VALID_CONFIG: dict[str, Any] = {
    "source": {"history": "fleet.csv"},
    "window": "14d",
    "seed": 1,
    "schedule": {"cron": "0 8 * * mon", "timezone": "UTC", "retry_every": "30m"},
    "output_dir": "out",
    "email": {"smtp": {"host": "smtp.example.com", "port": 587}, "from": "a@example.com", "to": ["b@example.com"]},
    "slack": {"webhook": {"url_env": "HOOK"}, "timeout": "10s"},
    "delivery": {"attempts": 3, "backoff": 1, "max_backoff": "1m"},
}
VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["", "99999999999999d", "0s", "-1h", "1y2w", "* * * * *", "Mars/Olympus"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


def _paths(config: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(config, dict):
        return [prefix]
    return [prefix] + [p for k, v in config.items() for p in _paths(v, (*prefix, k))]


def _set(config: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not path:
        return value  # type: ignore[no-any-return]
    copy = dict(config)
    copy[path[0]] = _set(copy[path[0]] if isinstance(copy.get(path[0]), dict) else {}, path[1:], value)
    return copy


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "schedule.yaml"
        path.write_bytes(data)
        try:
            assert isinstance(load_config(path), ScheduleConfig)
        except BadInput as exc:
            assert str(exc).startswith(f"{path}: "), exc


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(_paths(VALID_CONFIG)), VALUES), min_size=1, max_size=3),
)
def test_fuzzed_schedule_config_values(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    config: Any = VALID_CONFIG
    for path, value in changes:
        config = _set(config, path, value) if isinstance(config, dict) else value
    _load(yaml.safe_dump(config, allow_unicode=True).encode())


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.binary(max_size=3)), min_size=1, max_size=4)
)
def test_fuzzed_schedule_config_bytes(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(yaml.safe_dump(VALID_CONFIG).encode())
    for position, replacement in edits:
        at = position % len(data)
        data[at : at + len(replacement)] = replacement
    _load(bytes(data))
