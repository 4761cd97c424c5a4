"""Scans over history rows by integer codes: who ran where and when, without a pandas groupby or a Python object
per row.

A history frame's label columns are categoricals; their codes, combined into one integer key per row and sorted
with numpy's radix sort (keys of 16 bits or fewer) or a stable sort that finds rows already in time order, give
runs of equal keys whose lengths and starts answer "how many at once", "which distinct", "the most per device" in
a few passes over the arrays. Presence, today's fleet, contention, shared slices, the rollout inventory and the
GPUs seen all scan the same way (tests/advisor/plan/test_row_scans.py holds them to the pandas answers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def label_codes(
    values: pd.Series, *, sort: bool = False, rows: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """Integer codes and their labels, from a categorical without touching the strings. ``sort``: other columns
    are coded in sorted order, as ``groupby`` orders them (a categorical's order is its categories'). ``rows``:
    the codes of these rows only (a mask).

    The codes keep the categorical's own narrow type (int8, int16) and may be the frame's array: read them, or
    widen them before arithmetic (``combined``)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, labels = values.cat.codes.to_numpy(), [str(c) for c in values.cat.categories]
    else:
        codes, uniques = pd.factorize(values, sort=sort)
        labels = [str(u) for u in uniques]
    return (codes if rows is None else codes[rows]), labels


# ---------------------------------------------------------------------------------------------------- row order
# The scans below group rows by a small integer key and then by time. A history is written in time order (the
# simulator, the exporter's Prometheus rows, ``Timeline.frame``), so a stable sort by the key alone yields that
# order: a radix sort of 16-bit keys, several times faster than sorting composite 64-bit keys. Rows out of time
# order take the general path (``np.lexsort``), which gives the same order.


def epoch_seconds(rows: pd.DataFrame) -> np.ndarray:
    """Each row's time in whole epoch seconds (read-only: it may be the frame's own array)."""
    return np.asarray(rows["timestamp"].to_numpy("datetime64[s]")).view(np.int64)


def seconds_since_first(rows: pd.DataFrame) -> np.ndarray:
    """Each row's whole seconds since the first sample, as int32 where the span allows (half the memory of int64
    over every row; 68 years fit)."""
    seconds = epoch_seconds(rows)
    first = int(seconds.min())
    narrow = np.int32 if int(seconds.max()) - first < 1 << 31 else np.int64
    out = np.empty(len(seconds), dtype=narrow)
    np.subtract(seconds, first, out=out, casting="unsafe")
    return out


def split_key(key: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """The codes that ``combined`` combined, back from the combined keys."""
    codes = []
    for size in reversed(sizes[1:]):
        codes.append(key % size)
        key = key // size
    return [key, *reversed(codes)]


def combined_key(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """One int64 code per row for a combination of codes (each below its size), ordered as the combinations are
    lexicographically: ``(a * size_b + b) * size_c + c``."""
    key = codes[0].astype(np.int64)
    for column, size in zip(codes[1:], sizes[1:], strict=True):
        key *= size
        key += column
    return key


def is_sorted(values: np.ndarray) -> bool:
    return len(values) < 2 or not bool((values[1:] < values[:-1]).any())


def run_starts(*columns: np.ndarray) -> np.ndarray:
    """Where each run of equal values (in all ``columns`` together) begins."""
    new = np.empty(len(columns[0]), dtype=bool)
    if len(new):
        new[0] = True
        np.not_equal(columns[0][1:], columns[0][:-1], out=new[1:])
        for column in columns[1:]:
            new[1:] |= column[1:] != column[:-1]
    return np.flatnonzero(new)


def run_lengths(starts: np.ndarray, n: int) -> np.ndarray:
    """The length of each run, from where the runs begin in ``n`` values."""
    return np.diff(starts, append=n)


def narrow_run_lengths(starts: np.ndarray, n: int) -> np.ndarray:
    """``lengths`` as int32 where ``n`` allows, written straight into one array (``np.diff`` with ``append``
    copies ``starts`` first): a run per (workload, sample time) is about one per row."""
    lengths = np.empty(len(starts), dtype=np.int32 if n < 1 << 31 else np.int64)
    if len(starts):
        np.subtract(starts[1:], starts[:-1], out=lengths[:-1], casting="unsafe")
        lengths[-1] = n - starts[-1]
    return lengths


def distinct_values(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)``, without a sort where the values are already in order (and without numpy 2's hash
    table, which takes seconds on millions of rows)."""
    if not is_sorted(values):
        values = np.sort(values)
    return values[run_starts(values)]


def dense_codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative ``key`` renumbered 0..n-1 in the same order, and the key of each number: through a table of
    all key values where that is no larger than the rows (a few combinations of categories), else one sort."""
    if not fits_radix(key):
        present, number = np.unique(key, return_inverse=True)
        return number.astype(np.int64), present
    present = np.flatnonzero(np.bincount(key))
    narrow = np.int32 if len(present) < 1 << 31 else np.int64  # a number per row: half the memory of int64
    table = np.zeros(int(present[-1]) + 1, dtype=narrow)
    table[present] = np.arange(len(present))
    return table[key], present


def distinct_keys(key: np.ndarray) -> np.ndarray:
    """The distinct values of a non-negative ``key``, ascending (a table or a sort, as ``dense``)."""
    return np.flatnonzero(np.bincount(key)) if fits_radix(key) else distinct_values(key)


def fits_radix(key: np.ndarray) -> bool:
    return len(key) > 0 and int(key.max()) < max(1 << 20, len(key))


def order_by(key: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Row order by non-negative ``key``, then by ``then``, ties in row order: ``np.lexsort((then, key))``."""
    if not is_sorted(then):
        return np.lexsort((then, key))
    if len(key) and int(key.max()) < 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")  # numpy radix-sorts 16-bit keys
    return np.argsort(key, kind="stable")


def runs_of(key: np.ndarray, then: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (key, then) pairs in (key, then) order, and where each begins in the rows taken in that order
    (``lengths`` gives the rows per pair): ``np.unique`` of the pairs, for a non-negative ``key`` and any integer
    ``then``."""
    dense, present = dense_codes(key)
    t = then[order_by(dense, then)]
    per_key = np.bincount(dense, minlength=len(present))
    del dense
    first = np.cumsum(per_key) - per_key  # each key's first row in (key, then) order
    new = np.empty(len(t), dtype=bool)
    new[0] = True
    np.not_equal(t[1:], t[:-1], out=new[1:])
    new[first] = True
    starts = np.flatnonzero(new)
    per_key = np.add.reduceat(new, first, dtype=np.int64)  # distinct pairs per key
    del new  # each temporary over the rows goes before the next is made: these run over every row of a history
    times = t[starts]
    del t
    return np.repeat(present, per_key), times, starts


def most_at_once(device: np.ndarray, times: np.ndarray, workload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per device (non-negative codes), the most distinct workloads on it at one sample time (integer ``times``):
    the devices in ascending order, and their most. Composite (device, time, workload) keys are taken in (device,
    time) order and sorted by timsort, which then has only each sample's few workloads to order."""
    dense, present = dense_codes(device)
    time = times - times.min()
    time //= max(1, int(np.gcd.reduce(time)))  # the common step out: fewer bits, the same distinct times
    n_times, n_workloads = int(time.max()) + 1, int(workload.max()) + 1
    if (len(present) * n_times * n_workloads).bit_length() > 63:  # times as ranks instead
        _, time = np.unique(time, return_inverse=True)
        n_times = int(time.max()) + 1
    triples = combined_key([dense, time, workload], [len(present), n_times, n_workloads])[order_by(dense, time)]
    triples.sort(kind="stable")
    cells = triples[run_starts(triples)] // n_workloads  # (device, time), once per distinct workload there
    starts = run_starts(cells)
    device_of = cells[starts] // n_times
    edges = run_starts(device_of)
    return present[device_of[edges]], np.maximum.reduceat(run_lengths(starts, len(cells)), edges)
