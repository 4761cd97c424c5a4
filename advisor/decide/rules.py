"""The thresholds behind every decision, in one place, each with the reason a platform engineer would accept.

The figures cited come from ``shared/reference/sharing_tradeoffs.md`` (nebuly nos's YOLOS demo on an A100-80GB,
robusta-dev/krr's simple strategy, the Kubernetes VPA recommender); docs/advisor-decisions.md explains them with a
worked example.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    # Memory: the peak plus this margin, as krr's simple strategy (memory limit = max x 1.15) and the VPA
    # recommender (+15 %) do; never a percentile, since an OOM kill is not a slowdown.
    headroom: float = 0.15
    # Compute: the p95, as krr's simple strategy sizes CPU (request = p95, no margin): samples above it run
    # slower, they do not fail, and the share of them is reported as the decision's risk.
    compute_headroom: float = 0.0

    # "Mostly idle": busy (above 1 % of a GPU) in at most this share of samples, the threshold the class labels use.
    # Time-slicing is only for such work (notebooks, dev): it has no memory isolation, and contexts take turns, so
    # a busy co-tenant halves a burst's speed.
    idle_duty_cycle: float = 0.3

    # Time-slicing replicas are capped so that a burst shares the GPU with few others: the expected number of other
    # tenants busy during a burst, (replicas - 1) x duty cycle, stays at or below this (a burst keeps >= 2/3 of its
    # speed on average). nos measured time-sliced latency growing from 0.088 s (1 pod) to 0.685 s (7 pods).
    timeslice_max_busy_cotenants: float = 0.5
    timeslice_max_replicas: int = 8
    # Measured (decide/contention.py): a tenant's busy samples in which a co-tenant was busy too. Above this, fewer
    # replicas, and no time-slicing where even two contend more. It is the line past which the risk is rated high
    # (contention_high below): advice never takes a high contention risk; a pair busy together 56 % of the time
    # is refused.
    timeslice_max_contention: float = 0.5

    # MPS clients share one server and have no fault isolation: one client's fatal error ends all of them. 16 keeps
    # that blast radius small and is far below the 48 clients MPS allows per GPU on Volta and later.
    mps_max_replicas: int = 16
    # MPS is for fine-grained compute: only where MIG's 1/7 steps are too coarse, i.e. the smallest MIG slice that
    # covers the workload gives at least this multiple of the compute it needs (or no slice short of a whole GPU
    # does). Where MIG fits the compute well, its isolation wins even if MPS would pack a little more.
    mps_min_mig_overshoot: float = 1.5
    # A namespace's MIG workloads move to one MPS pool (decide/mps_pool.py) only where that frees at least this
    # much of a GPU against their slices: MIG's isolation is worth more than a sliver.
    mps_min_gpus_saved: float = 0.5
    # A time-slicing or MPS pool gives way to its members' MIG slices where those take at least this much of a GPU
    # less than the pool's GPUs (a pool of one notebook fills a GPU; its slice takes a seventh).
    pool_min_gpus_saved: float = 0.5

    # Bursty members of a MIG class (a notebook whose bursts would need a 3g slice) are time-sliced instead where
    # that packs at least this many times as many like them per GPU, all of them in one pool, and only where that
    # pool fills no more GPUs than their slices take. A smaller gain (8 time-sliced against 7 on 1g slices) is not
    # worth the isolation.
    member_own_mode_min_gain: float = 2.0

    # Evidence (decide/evidence.py): a workload seen for less than a day and less than a quarter of the window, or
    # in fewer than 30 samples, has not shown its peak (the real trace's pods peak 1 to 17 hours into their day).
    evidence_min_span_s: float = 24 * 3600.0
    evidence_min_span_share: float = 0.25
    evidence_min_samples: int = 30
    # Members of a class reach this quantile of their classmates' peak-to-median ratios; the calibrated headroom is
    # this quantile of what doubling the history did to their peaks, from at least this many well-observed members
    # (else the fleet's), and at most 100 %.
    evidence_peak_quantile: float = 0.9
    evidence_growth_quantile: float = 0.9
    evidence_min_members: int = 5
    evidence_max_headroom: float = 1.0

    # A decision whose setting changes when its demand moves by this much either way is flagged as near the line
    # (decide/margin.py): a few percent is the noise of one p95 sample more or less.
    near_line_margin: float = 0.05

    # Risk levels: compute exceedance (share of past samples that wanted more compute than the limit gives: they
    # run slower, they do not fail) at or below `low` is low risk, above `high` is high risk.
    compute_exceed_low: float = 0.01
    compute_exceed_high: float = 0.05
    contention_low: float = 0.2
    contention_high: float = 0.5


DEFAULT_RULES = Rules()
