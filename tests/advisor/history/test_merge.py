"""Putting per-chunk, per-series summaries together: exact where it can be, close where it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.history.merge import SUMMARY_LEVELS, Summary, mixture_quantiles


def summarise(values: np.ndarray) -> Summary:
    return Summary(
        count=len(values),
        total=float(values.sum()),
        low=float(values.min()),
        high=float(values.max()),
        quantiles={q: float(np.quantile(values, q)) for q in SUMMARY_LEVELS},
    )


LEVELS = (0.5, 0.9, 0.95, 0.99)


def test_one_part_is_taken_as_it_is():
    values = np.random.default_rng(0).gamma(2, size=500)
    got = mixture_quantiles([summarise(values)], (*LEVELS, 1.0))
    assert got == {q: pytest.approx(np.quantile(values, q), abs=1e-12) for q in (*LEVELS, 1.0)}


def test_parts_of_one_distribution_give_the_pooled_quantiles_closely():
    rng = np.random.default_rng(1)
    chunks = [rng.normal(10, 2, 1440) for _ in range(14)]
    pooled = np.concatenate(chunks)
    got = mixture_quantiles([summarise(c) for c in chunks], LEVELS)
    for q in LEVELS:
        assert got[q] == pytest.approx(np.quantile(pooled, q), rel=0.01)


def test_different_parts_weigh_by_their_counts():
    idle, busy = np.zeros(900), np.full(100, 0.8)  # 90 % idle, then busy
    got = mixture_quantiles([summarise(idle), summarise(busy)], (0.5, 0.89, 0.95))
    assert got[0.5] == 0.0 and got[0.89] == 0.0
    assert got[0.95] == pytest.approx(0.8)


def test_point_masses_and_empty_parts():
    got = mixture_quantiles([summarise(np.full(5, 3.0)), summarise(np.full(5, 7.0))], (0.25, 0.75))
    assert got == {0.25: 3.0, 0.75: 7.0}
    assert np.isnan(mixture_quantiles([], (0.5,))[0.5])
