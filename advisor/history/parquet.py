"""Read the columns of a Parquet history into pandas with little more memory than the result itself.

``pyarrow.parquet.read_table(...).to_pandas()`` holds the whole Arrow table, its decompression buffers and the
pandas copy at once: about three times the frame (7.5 GiB peak for the 40 M-row benchmark). Here the file is read
one batch at a time into arrays allocated once for all rows, text columns straight into categorical codes (int8,
widened as distinct values grow), timestamps as UTC milliseconds; the reader does not pre-buffer, which would keep
every column chunk it read. Files whose types are not the native ones (text where a number belongs, a null in a
required column) take the plain path, where the validators can name the offending row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slicewise.progress import progress

BATCH_ROWS = 1 << 20


class _Fallback(Exception):
    """A column is not in its native type, or holds a null where none may be: use the plain path."""


class _Text:
    """Categorical codes for one text column, filled batch by batch from Arrow dictionaries."""

    def __init__(self, rows: int) -> None:
        self.codes = np.empty(rows, dtype=np.int8)  # widened when a batch brings more distinct values
        self.index: dict[str, int] = {}

    def put(self, start: int, chunk: Any) -> None:
        import pyarrow as pa

        if chunk.null_count or not isinstance(chunk, pa.DictionaryArray):
            raise _Fallback
        lookup = np.array([self.index.setdefault(s, len(self.index)) for s in chunk.dictionary.to_pylist()])
        while len(self.index) > np.iinfo(self.codes.dtype).max:
            self.codes = self.codes.astype(np.int16 if self.codes.dtype == np.int8 else np.int32)
        indices = chunk.indices.to_numpy()
        self.codes[start : start + len(chunk)] = lookup[indices] if len(lookup) else indices

    def series(self) -> pd.Series:
        categories = pd.Index(list(self.index), dtype=object)
        return pd.Series(pd.Categorical.from_codes(self.codes, categories=categories), copy=False)


class _Numbers:
    """A numeric or timestamp column copied batch by batch into one preallocated array."""

    def __init__(self, rows: int, arrow_type: Any, nullable: bool) -> None:
        import pyarrow as pa

        self.unit: str | None = None
        self.nullable = nullable
        if pa.types.is_timestamp(arrow_type):
            self.unit = "ms"  # what the features work in; sub-millisecond precision means nothing at 1 s sampling
            dtype: Any = np.int64
        elif pa.types.is_integer(arrow_type) and not nullable:
            dtype = np.int64
        elif pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type):
            dtype = np.float64
        else:
            raise _Fallback
        self.values = np.empty(rows, dtype=dtype)

    def put(self, start: int, chunk: Any) -> None:
        import pyarrow as pa

        if chunk.null_count and not self.nullable:
            raise _Fallback
        if self.unit is not None:
            data = chunk.cast(pa.timestamp(self.unit), safe=False).to_numpy(zero_copy_only=False).view(np.int64)
        else:
            data = chunk.to_numpy(zero_copy_only=False)  # floats: nulls become NaN ("not measured")
        self.values[start : start + len(chunk)] = data

    def series(self) -> pd.Series:
        if self.unit is None:
            return pd.Series(self.values, copy=False)
        # Arrow stores instants as UTC whatever the zone; a naive column is UTC by DESIGN.md
        stamps = pd.DatetimeIndex(self.values.view(f"datetime64[{self.unit}]")).tz_localize("UTC")
        self.values = np.empty(0, dtype=np.int64)  # the localized copy replaces it
        return pd.Series(stamps, copy=False)


def read_columns(
    path: Path, columns: list[str], text_columns: tuple[str, ...], nullable: tuple[str, ...]
) -> pd.DataFrame:
    """The named columns of a Parquet file as a frame (text as categoricals); raises pyarrow's errors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    textual = [c for c in columns if c in text_columns and _is_text(schema.field(c).type)]
    # pre_buffer would cache every column chunk it has read for the reader's lifetime (+560 MiB at 40 M rows)
    parquet = pq.ParquetFile(path, read_dictionary=textual, pre_buffer=False)
    rows = parquet.metadata.num_rows
    sinks: dict[str, _Text | _Numbers] = {}
    try:
        sinks = {
            c: _Text(rows) if c in textual else _Numbers(rows, schema.field(c).type, c in nullable) for c in columns
        }
        if any(c in text_columns and c not in textual for c in columns):
            raise _Fallback
        start = 0
        with progress(f"Reading {path.name}", total=rows) as bar:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                for column in columns:
                    sinks[column].put(start, batch.column(column))
                start += batch.num_rows
                bar.advance(batch.num_rows)
        return pd.DataFrame({c: sinks[c].series() for c in columns}, copy=False)
    except _Fallback:
        sinks.clear()
        table = pq.read_table(path, columns=columns, read_dictionary=textual)
        pa.default_memory_pool().release_unused()
        return table.to_pandas(self_destruct=True, split_blocks=True, ignore_metadata=True)


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))
