"""Read a history file (Parquet or CSV, DESIGN.md "History file") into a validated DataFrame.

Validation is strict because everything downstream trusts the frame: a missing column, a value of the wrong type,
negative memory, a fraction outside 0–1, an unparseable time or an unknown sharing mode is one ``BadInput`` that
names the file, the row (1-based, header not counted; CSV also gives the line) and the column. Against the GPU
catalogue: a MIG profile the GPU model does not have, memory above the GPU's total, one GPU UUID under two models
are errors too (a model the catalogue lacks is checked against the driver's table beside the file, or taken with a
warning). Nested Parquet columns and non-finite numbers are refused by name, never a traceback or a RuntimeWarning.
Unknown columns are ignored. Native Parquet types pass through without a per-value check, so 40 M rows read in
seconds; any other type (strings in CSV, a Parquet column written as text) goes through the same parsers, which can
name the row.

The frame has the DESIGN.md columns in DESIGN.md's order, plus ``namespace`` and ``process_count`` when the file has
them: ``timestamp`` as tz-aware UTC datetimes, string columns as pandas categoricals (2,000 workloads x 20,000
samples would otherwise hold 40 M Python strings), ``memory_used_bytes`` int64 and ``sm_active_gpu_fraction``
float64 where NaN (an empty CSV cell, a Parquet null) means "not measured" — the DESIGN.md rule for A100/A30 MIG
devices, whose per-instance SM activity NVML cannot measure.
"""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slicewise.catalogue import GpuModel, find_model, resolve_model
from slicewise.errors import BadInput
from slicewise.history_schema import OPTIONAL_COLUMNS, PEAK_COLUMN, REQUIRED_COLUMNS, Sharing, file_format

log = logging.getLogger(__name__)
FRACTION_COLUMNS = ("sm_active_gpu_fraction", PEAK_COLUMN)  # NaN: not measured
STRING_COLUMNS = tuple(c for c, t in {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}.items() if t == "string")
NON_EMPTY_COLUMNS = ("workload", "node", "gpu_uuid", "gpu_model", "sharing")
# what pandas and other writers put in a text cell for a missing value: never a real node or workload name
MISSING_TEXT = frozenset({"nan", "NaN", "NAN", "None", "null", "NULL", "<NA>", "NA", "NaT"})
# Rounding in the tool that wrote the file may put a fraction a hair outside 0..1; more than this is an error.
FRACTION_SLACK = 1e-9
# A reading above the GPU's framebuffer is impossible; the slack covers SKUs of one family whose totals differ a bit.
MEMORY_TOTAL_SLACK = 0.02
# Bytes as int64: anything beyond is a unit or encoding mistake (inf, 1e300), not a memory reading.
BYTES_MAX = float(2**62)
# Epoch seconds pandas can hold (1970 .. 2262); anything outside is a unit mistake (ms, ns), not a time.
EPOCH_SECONDS_MAX = 9.2e9


class _Problem:
    """Builds the one error message: file, row, column, what is wrong."""

    def __init__(self, path: Path, csv: bool) -> None:
        self.path, self.csv = path, csv

    def at(self, index: int, column: str, what: str, value: object) -> BadInput:
        row = index + 1
        where = f"row {row} (line {row + 1})" if self.csv else f"row {row}"
        return BadInput(f"{self.path}: {where}, column {column!r}: {what} (got {value!r})")

    def first(self, bad: np.ndarray | pd.Series, values: pd.Series, column: str, what: str) -> BadInput | None:
        hits = np.flatnonzero(np.asarray(bad))
        if len(hits) == 0:
            return None
        i = int(hits[0])
        return self.at(i, column, what, values.iloc[i])


def read_history(path: Path) -> pd.DataFrame:
    """The validated history in ``path`` (``.parquet``/``.pq`` or ``.csv``/``.csv.gz``); ``BadInput`` if wrong."""
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such history file")
    raw = _read_parquet(path) if fmt == "parquet" else _read_csv(path)
    return _validated(raw, _Problem(path, csv=fmt == "csv"), _driver_models(path))


def _driver_models(path: Path) -> tuple[GpuModel, ...]:
    """GPU models the catalogue lacks, from the driver's MIG tables beside the history (advisor/history/profiles)."""
    from advisor.history.profiles import learn, read_beside

    return learn(read_beside(path)).models


def _wanted(present: list[str], path: Path) -> list[str]:
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        expected = ", ".join(REQUIRED_COLUMNS)
        raise BadInput(
            f"{path}: row 0 (the header), column {missing[0]!r}: required column is missing"
            f" (the file has {', '.join(present) or 'no columns'}; a history file needs {expected})"
        )
    return [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in present)]


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from advisor.history.parquet import read_columns

    try:
        schema = pq.read_schema(path)
        columns = _wanted(list(schema.names), path)
        _flat(schema, columns, path)
        return read_columns(path, columns, STRING_COLUMNS, nullable=FRACTION_COLUMNS)
    except (pa.ArrowException, OSError) as exc:
        raise BadInput(f"{path}: not a readable Parquet file: {exc}") from exc


def _flat(schema: Any, columns: list[str], path: Path) -> None:
    """One value per cell: a list, struct or map column (a writer that grouped samples) is refused by name."""
    import pyarrow as pa

    for column in columns:
        kind = schema.field(column).type
        if pa.types.is_nested(kind) or pa.types.is_union(kind):
            expected = REQUIRED_COLUMNS.get(column) or OPTIONAL_COLUMNS[column]
            raise BadInput(
                f"{path}: column {column!r}: a nested Parquet column ({kind}) where one {expected} value per row"
                " belongs (write one row per sample)"
            )


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text (the validators parse and can name the row); rows with too few or too many fields fail."""
    import pyarrow as pa

    try:
        with gzip.open(path, "rt", newline="") if path.suffix.lower() == ".gz" else path.open(newline="") as text:
            present = next(csv.reader(text), [])
        columns = _wanted(present, path)
        table = _parse_csv(path, columns, threads=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{path}: not a readable CSV history file: {exc}") from exc
    frame = {}
    for column in columns:
        values = table.column(column)
        # text columns become categoricals of str (never inferred numbers: a workload may be called "0042")
        frame[column] = values.dictionary_encode() if column in STRING_COLUMNS else values
        table = table.drop_columns([column])
    return pa.table(frame).to_pandas(self_destruct=True, split_blocks=True)


def _parse_csv(path: Path, columns: list[str], threads: bool) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ragged: list[Any] = []

    def note(row: Any) -> str:
        ragged.append(row)
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=threads),
        parse_options=pacsv.ParseOptions(invalid_row_handler=note),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns, column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False
        ),
    )
    if not ragged:
        return table
    if threads:  # only a single-threaded parse knows line numbers: parse again to name the line
        return _parse_csv(path, columns, threads=False)
    row = ragged[0]
    raise BadInput(
        f"{path}: line {row.number}: {row.actual_columns} fields where the header has {row.expected_columns}"
        f" (got {row.text[:120]!r})"
    )


def _validated(raw: pd.DataFrame, problem: _Problem, driver_models: tuple[GpuModel, ...] = ()) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for column in raw.columns:
        values = raw[column]
        if column == "timestamp":
            out[column] = _timestamps(values, problem)
        elif column in STRING_COLUMNS:
            out[column] = _strings(values, column, problem)
        elif column in FRACTION_COLUMNS:
            out[column] = _fractions(values, column, problem)
        else:  # memory_used_bytes, process_count
            out[column] = _counts(values, column, problem)
    frame = pd.DataFrame(out, copy=False)  # no consolidation copy: 40 M rows are 1.2 GiB
    _one_model_per_gpu(frame, problem)
    _against_the_catalogue(frame, problem, driver_models)
    return frame


def _one_model_per_gpu(frame: pd.DataFrame, problem: _Problem) -> None:
    """A GPU UUID names one physical GPU: two models under one UUID is a writer's mix-up."""
    uuid, gpu_model = frame["gpu_uuid"].cat.codes.to_numpy(), frame["gpu_model"].cat.codes.to_numpy()
    seen = _pairs(uuid, len(frame["gpu_uuid"].cat.categories), gpu_model, len(frame["gpu_model"].cat.categories))
    if (seen.sum(axis=1) <= 1).all():
        return
    first_model = pd.Series(gpu_model).groupby(uuid).transform("first").to_numpy()
    hits = np.flatnonzero(gpu_model != first_model)
    i = int(hits[0])
    other = frame["gpu_model"].iloc[int(np.flatnonzero(uuid == uuid[i])[0])]
    what = f"GPU {frame['gpu_uuid'].iloc[i]} is reported as {other!r} in an earlier row: one UUID, two models"
    raise problem.at(i, "gpu_model", what, frame["gpu_model"].iloc[i])


def _pairs(a: np.ndarray, a_count: int, b: np.ndarray, b_count: int) -> np.ndarray:
    """Which (a, b) code pairs occur: a boolean table, one pass over the rows (40 M rows in well under a second)."""
    seen = np.zeros((a_count, b_count), dtype=bool)
    seen[a, b] = True
    return seen


def _against_the_catalogue(frame: pd.DataFrame, problem: _Problem, driver_models: tuple[GpuModel, ...]) -> None:
    """MIG profiles the GPU model has, and memory within the GPU's total, for the models the catalogue knows (and
    profiles only, for those a driver table beside the file describes: its total is not in the table); a model
    neither knows (a newer GPU) is taken as it is, with a warning."""
    models = frame["gpu_model"].cat.categories
    catalogued = [find_model(str(name)) for name in models]
    known = [m or resolve_model(str(name), driver_models) for m, name in zip(catalogued, models, strict=True)]
    codes = frame["gpu_model"].cat.codes.to_numpy()
    totals = np.array([np.nan if m is None else m.memory_total_bytes * (1 + MEMORY_TOTAL_SLACK) for m in catalogued])
    memory = frame["memory_used_bytes"].to_numpy()
    with np.errstate(invalid="ignore"):
        above = memory > totals[codes]
    if above.any():
        i = int(np.flatnonzero(above)[0])
        gpu = catalogued[codes[i]]
        assert gpu is not None
        what = f"more memory than the {gpu.name}'s {gpu.memory_total_bytes / 1024**3:.1f} GiB"
        raise problem.at(i, "memory_used_bytes", what, int(memory[i]))
    profiles = frame["mig_profile"]
    seen = _pairs(codes, len(models), profiles.cat.codes.to_numpy(), len(profiles.cat.categories))
    unknown_models: set[str] = set()
    for model_code, profile_code in zip(*np.nonzero(seen), strict=True):
        profile = str(profiles.cat.categories[profile_code])
        if not profile:
            continue
        gpu = known[model_code]
        if gpu is None:
            unknown_models.add(str(models[model_code]))
            continue
        names = {p.name for p in gpu.profiles}
        if profile not in names:
            bad = (codes == model_code) & (profiles.cat.codes.to_numpy() == profile_code)
            what = f"the {gpu.name} has no MIG profile {profile!r} (it has {', '.join(sorted(names))})"
            raise _must(problem.first(bad, profiles, "mig_profile", what))
    for name in sorted(unknown_models):
        log.warning(
            "%s: GPU model %r is not in the catalogue: its MIG profiles are taken as the file gives them",
            problem.path,
            name,
        )


def _strings(values: pd.Series, column: str, problem: _Problem) -> pd.Series:
    if not isinstance(values.dtype, pd.CategoricalDtype):
        if values.isna().any() or not all(isinstance(v, str) for v in values.dropna().unique()):
            bad = values.isna() | ~values.map(lambda v: isinstance(v, str))
            raise _must(problem.first(bad, values, column, "expected text"))
        values = values.astype("category")
    if values.isna().any():
        raise _must(problem.first(values.isna(), values, column, "missing value"))
    codes = values.cat.codes.to_numpy()
    used = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)) > 0
    if not used.all():
        values = values.cat.remove_unused_categories()
    categories = values.cat.categories
    if not all(isinstance(c, str) for c in categories):
        bad_categories = [c for c in categories if not isinstance(c, str)]
        raise _must(problem.first(values.isin(bad_categories), values, column, "expected text"))
    if column in NON_EMPTY_COLUMNS and "" in categories:
        raise _must(problem.first(values == "", values, column, "empty value"))
    if column in NON_EMPTY_COLUMNS and not MISSING_TEXT.isdisjoint(categories):
        raise _must(problem.first(values.isin(MISSING_TEXT), values, column, "missing value"))
    if column == "sharing":
        allowed = {s.value for s in Sharing}
        unknown = [c for c in categories if c not in allowed]
        if unknown:
            what = f"unknown sharing mode (use one of {', '.join(s.value for s in Sharing)})"
            raise _must(problem.first(values.isin(unknown), values, column, what))
    return values


def _numbers(values: pd.Series, column: str, problem: _Problem, *, allow_missing: bool) -> pd.Series:
    """A numeric column: native numbers pass through; text is parsed, and the first unparseable row is named."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise _must(problem.first(np.ones(len(values), bool), values, column, "expected a number, not true/false"))
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.astype("float64") if values.isna().any() else values
    else:
        text = values.astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        empty = text.isin(["", "nan", "NaN", "NA", "null", "None"])
        unparsed = numbers.isna() & ~empty
        error = problem.first(unparsed, values, column, "expected a number")
        if error:
            raise error
    if not allow_missing and numbers.isna().any():
        raise _must(problem.first(numbers.isna(), values, column, "missing value"))
    return numbers


def _counts(values: pd.Series, column: str, problem: _Problem) -> pd.Series:
    numbers = _numbers(values, column, problem, allow_missing=False)
    if not pd.api.types.is_integer_dtype(numbers.dtype):
        as_float = numbers.to_numpy(dtype="float64")
        error = problem.first(~(np.abs(as_float) < BYTES_MAX), values, column, "not a finite number in range")
        if error:
            raise error
        error = problem.first(as_float != np.round(as_float), values, column, "expected a whole number")
        if error:
            raise error
        numbers = pd.Series(as_float.astype("int64"), index=values.index)
    numbers = numbers.astype("int64")
    error = problem.first(numbers.to_numpy() < 0, values, column, "negative value")
    if error:
        raise error
    return numbers


def _fractions(values: pd.Series, column: str, problem: _Problem) -> pd.Series:
    numbers = _numbers(values, column, problem, allow_missing=True).astype("float64")
    array = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        outside = (array < -FRACTION_SLACK) | (array > 1 + FRACTION_SLACK) | np.isinf(array)
    error = problem.first(outside, values, column, "fraction outside 0..1")
    if error:
        raise error
    with np.errstate(invalid="ignore"):
        slightly_outside = bool(((array < 0) | (array > 1)).any())
    return numbers.clip(0.0, 1.0) if slightly_outside else numbers


def _timestamps(values: pd.Series, problem: _Problem) -> pd.Series:
    column = "timestamp"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        stamps = values if str(values.dt.tz) == "UTC" else values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        stamps = values.dt.tz_localize("UTC")  # Parquet written without a zone: DESIGN.md says UTC
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        stamps = _from_epoch(values.astype("float64"), values, problem)
    else:
        text = values.astype(str).str.strip()
        epoch = pd.to_numeric(text, errors="coerce")
        stamps = _from_epoch(epoch, values, problem, allow_missing=True)
        iso = epoch.isna()
        if iso.any():
            parsed = pd.to_datetime(text[iso], utc=True, format="ISO8601", errors="coerce").reindex(values.index)
            what = "unparseable time (use epoch seconds or ISO 8601)"
            error = problem.first(iso & parsed.isna(), values, column, what)
            if error:
                raise error
            stamps = stamps.where(~iso, parsed.dt.as_unit("ms"))
    if stamps.isna().any():
        raise _must(problem.first(stamps.isna(), values, column, "missing time"))
    return stamps


def _from_epoch(seconds: pd.Series, values: pd.Series, problem: _Problem, allow_missing: bool = False) -> pd.Series:
    array = seconds.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        outside = (array < 0) | (array > EPOCH_SECONDS_MAX) | np.isinf(array)
    if not allow_missing:
        outside |= np.isnan(array)
    error = problem.first(outside, values, "timestamp", "unparseable time (epoch seconds out of range)")
    if error:
        raise error
    millis = np.round(array * 1000)
    return pd.Series(pd.to_datetime(millis, unit="ms", utc=True), index=values.index).dt.as_unit("ms")


def _must(error: BadInput | None) -> BadInput:
    assert error is not None, "a check that found a problem must name its row"
    return error
