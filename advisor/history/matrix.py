"""Range-query answers (``resultType: matrix``) as numpy arrays, without a Python object per sample.

A range query of per-workload series over a chunk returns up to millions of ``[timestamp, "value"]`` pairs;
``json.loads`` makes three Python objects of each (about 150 bytes a sample, seconds per million). Here only the
label sets go through ``json``; each series' values block is turned into numbers by numpy's C parser after its
brackets, quotes and commas are blanked out. ``NaN``, ``+Inf`` and ``-Inf`` parse as such. An answer that is not
laid out as Prometheus (and Thanos, Mimir) write it — ``{"metric":{…},"values":[[t,"v"],…]}`` — is read with
``json`` instead, so correctness never depends on the fast path.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_LINES = bytes.maketrans(b"]", b"\n")
_METRIC = b'{"metric":'
_VALUES = b'},"values":['


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels, sample times (epoch ms) and values."""

    labels: dict[str, str]
    millis: np.ndarray  # int64
    values: np.ndarray  # float64


def parse_matrix(body: bytes) -> tuple[list[Series], dict[str, Any]]:
    """The series of a successful range-query answer, and its ``stats`` and ``warnings`` where it has them."""
    head = body[:200]
    if b'"status":"success"' not in head or b'"resultType":"matrix"' not in head:
        return _slow(body)
    labels: list[dict[str, str]] = []
    blocks: list[bytes] = []
    pos = end_of_result = body.find(b'"result":[')
    while True:
        start = body.find(_METRIC, pos)
        if start < 0:
            break
        close = body.find(_VALUES, start)
        stop = body.find(b"]]", close)
        if close < 0 or stop < 0:
            return _slow(body)
        labels.append(json.loads(body[start + len(_METRIC) : close + 1]))
        blocks.append(body[close + len(_VALUES) - 1 : stop + 1])  # [t,"v"],[t,"v"]
        pos = end_of_result = stop + 2
    try:
        pairs = _numbers(blocks)
    except (ValueError, pd.errors.ParserError):
        return _slow(body)
    out, at = [], 0
    for names, block in zip(labels, blocks, strict=True):
        n = block.count(b"]")
        names.pop("__name__", None)
        out.append(Series(names, np.rint(pairs[at : at + n, 0] * 1000).astype(np.int64), pairs[at : at + n, 1]))
        at += n
    if at != len(pairs):
        return _slow(body)
    tail = body[end_of_result:].decode()
    extra: dict[str, Any] = {}
    for key in ("stats", "warnings"):
        found = tail.find(f'"{key}":')
        if found >= 0:
            extra[key] = json.JSONDecoder().raw_decode(tail, found + len(key) + 3)[0]
    return out, extra


def _numbers(blocks: list[bytes]) -> np.ndarray:
    """``[t,"v"],[t,"v"]`` blocks as one (n, 2) array: made CSV (``,t,v`` lines) for pandas' C parser."""
    if not blocks:
        return np.empty((0, 2))
    text = b"," + b",".join(blocks).translate(_LINES, b'["')
    frame = pd.read_csv(io.BytesIO(text), header=None, usecols=[1, 2], dtype=np.float64, engine="c")
    return frame.to_numpy()


def _slow(body: bytes) -> tuple[list[Series], dict[str, Any]]:
    document = json.loads(body)
    data = document.get("data") or {}
    if document.get("status") != "success" or data.get("resultType") != "matrix":
        raise ValueError(f"not a successful matrix answer: {body[:200]!r}")
    out = []
    for item in data.get("result", []):
        labels = dict(item.get("metric", {}))
        labels.pop("__name__", None)
        values = item.get("values", [])
        millis = np.array([round(float(t) * 1000) for t, _ in values], dtype=np.int64)
        out.append(Series(labels, millis, np.array([float(v) for _, v in values], dtype=float)))
    extra = {k: v for k, v in (("stats", data.get("stats")), ("warnings", document.get("warnings"))) if v}
    return out, extra
