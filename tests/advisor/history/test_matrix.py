"""The range-query parser: the same series as ``json`` reads, on the layouts Prometheus, Thanos and Mimir write."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.history.matrix import _slow, parse_matrix


def answer(result: list[dict], **extra: object) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": result, **extra}}


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        x.labels == y.labels
        and np.array_equal(x.millis, y.millis)
        and np.array_equal(x.values, y.values, equal_nan=True)
        for x, y in zip(a, b, strict=True)
    )


RESULT = [
    {
        "metric": {"__name__": "m", "workload": 'ns/a "quoted" ]] },"values":[', "gpu_uuid": "GPU-1"},
        "values": [[1767225600, "1"], [1767225660.5, "2.5e+09"], [1767225720, "NaN"]],
    },
    {"metric": {}, "values": [[1767225600, "+Inf"], [1767225660, "-Inf"], [1767225720, "0.000123"]]},
    {"metric": {"workload": "ns/b"}, "values": [[1767225600, "42"]]},
]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])  # Prometheus's compact layout, and any other
def test_fast_path_reads_what_json_reads(separators):
    body = json.dumps(answer(RESULT, stats={"samples": {"peakSamples": 7}}), separators=separators).encode()
    series, extra = parse_matrix(body)
    assert same(series, _slow(body)[0])
    assert series[0].labels["workload"] == 'ns/a "quoted" ]] },"values":['
    assert series[0].millis.tolist() == [1767225600000, 1767225660500, 1767225720000]
    assert series[0].values[1] == 2.5e9 and np.isnan(series[0].values[2])
    assert series[1].values.tolist()[:2] == [np.inf, -np.inf] and series[1].labels == {}
    assert extra["stats"] == {"samples": {"peakSamples": 7}}


def test_warnings_and_an_empty_result():
    body = json.dumps({**answer([]), "warnings": ["partial response"]}, separators=(",", ":")).encode()
    assert parse_matrix(body) == ([], {"warnings": ["partial response"]})


def test_not_a_matrix_is_an_error():
    vector = {"status": "success", "data": {"resultType": "vector", "result": []}}
    with pytest.raises(ValueError, match="not a successful matrix"):
        parse_matrix(json.dumps(vector).encode())
