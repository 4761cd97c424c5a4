"""The vectorised scans of a history (plan/presence.py's row-order helpers, plan/today.py, decide/shared_slices.py,
configs/inventory.py) give what the plain pandas forms they replaced give, for rows in time order (a radix sort)
and out of it (the general path), for categorical and plain string columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advisor.configs.inventory import GpuNow, NodeNow, inventory_from_history
from advisor.decide.fits import instances_per_gpu
from advisor.decide.shared_slices import SharedToday
from advisor.model import WorkloadKey
from advisor.plan.today import MIN_SHARE, SATURATED, Today, today_from_history
from advisor.row_scans import most_at_once, order_by, runs_of
from slicewise.catalogue import find_model

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
LABELS = ("workload", "node", "gpu_uuid", "gpu_model", "mig_profile", "sharing")


def history(seed: int, *, by_gpu: bool, categorical: bool) -> pd.DataFrame:
    """Whole GPUs whose tenants' activity sums to about 0.95 (where summation order shows; some samples unmeasured
    for seed 1), MIG GPUs with more workloads than slices at times, sample times up to 600 ms past the minute."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2026-11-01T00:00:00Z")
    rows = []
    for g in range(8):
        model = H100 if g % 2 else A100
        for step in range(200):
            at = t0 + pd.Timedelta(seconds=60 * step, milliseconds=300 * int(rng.integers(0, 3)))
            if g < 5:
                k = int(rng.integers(1, 7))
                parts = rng.dirichlet(np.ones(k)) * rng.choice([0.95, 0.9499999999999999, 0.5])
                for i, a in enumerate(parts):
                    sm = np.nan if seed == 1 and rng.random() < 0.05 else a
                    sharing = "timeslice" if k > 1 else "exclusive"
                    rows.append((at, f"w{(g * 3 + i) % 7}", f"n{g // 3}", f"GPU-{g}", model, "", sharing, sm))
            else:
                for i in range(int(rng.integers(1, 10))):
                    profile = ("1g.10gb", "3g.40gb")[i % 2]
                    rows.append((at, f"nb/{rng.integers(0, 12)}", f"n{g // 3}", f"GPU-{g}", model, profile, "mig", 0.0))
    frame = pd.DataFrame(rows, columns=["timestamp", *LABELS, "sm_active_gpu_fraction"])
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ms, UTC]")
    frame = frame.sort_values(["gpu_uuid", "timestamp"] if by_gpu else "timestamp", kind="stable")
    frame = frame.reset_index(drop=True)
    if categorical:
        for column in LABELS:
            frame[column] = frame[column].astype("category")
    return frame


FRAMES = [
    pytest.param(seed, by_gpu, categorical, id=f"{seed}-{'by-gpu' if by_gpu else 'by-time'}-{categorical=}")
    for seed in (1, 2)
    for by_gpu in (False, True)
    for categorical in (False, True)
]


def today_by_pandas(rows: pd.DataFrame) -> Today:
    """The groupby form today_from_history replaced."""
    mig = rows[rows["mig_profile"].astype(str) != ""]
    oversubscribed: set[str] = set()
    worst: tuple[int, int, str] | None = None
    at_once = (
        mig.groupby(["gpu_uuid", "gpu_model", "mig_profile", "timestamp"], observed=True)["workload"]
        .nunique()
        .groupby(level=[0, 1, 2], observed=True)
        .max()
    )
    for (uuid, model_name, profile), n in zip(at_once.index.tolist(), at_once.tolist(), strict=True):
        gpu = find_model(str(model_name))
        assert gpu is not None
        cap = instances_per_gpu(gpu.key, str(profile))
        if int(n) > cap:
            oversubscribed.add(str(uuid))
            if worst is None or int(n) - cap > worst[0] - worst[1]:
                worst = (int(n), cap, str(profile))
    whole = rows[rows["mig_profile"].astype(str) == ""]
    per_time = whole.groupby(["gpu_uuid", "timestamp"], observed=True).agg(
        tenants=("workload", "size"), activity=("sm_active_gpu_fraction", "sum")
    )
    shared = per_time[per_time["tenants"] >= 2]
    share = (shared["activity"] >= SATURATED).groupby(level=0, observed=True).mean()
    saturated = int((share >= MIN_SHARE).sum())
    gpus = int(rows["gpu_uuid"].nunique())
    return Today(gpus, len(oversubscribed), worst, saturated, float(share.max()) if saturated else 0.0)


@pytest.mark.parametrize(("seed", "by_gpu", "categorical"), FRAMES)
def test_today_is_what_the_groupby_gives(seed: int, by_gpu: bool, categorical: bool) -> None:
    rows = history(seed, by_gpu=by_gpu, categorical=categorical)
    expected = today_by_pandas(rows)
    assert expected.shared_gpus_saturated and expected.mig_gpus_oversubscribed  # the frame exercises both
    assert today_from_history(rows) == expected
    shuffled = rows.sample(frac=1, random_state=seed)
    assert today_from_history(shuffled) == today_by_pandas(shuffled)


def shared_by_pandas(rows: pd.DataFrame) -> frozenset[WorkloadKey]:
    """The drop_duplicates/groupby form SharedToday.from_history replaced."""
    mig = rows[rows["sharing"] == "mig"]
    frame = mig[["gpu_uuid", "gpu_model", "mig_profile", "workload"]].astype(str)
    frame["time"] = mig["timestamp"].to_numpy("datetime64[s]")
    device = ["gpu_uuid", "gpu_model", "mig_profile"]
    at_once = frame.drop_duplicates().groupby([*device, "time"]).size().groupby(level=[0, 1, 2]).max()
    keys: set[WorkloadKey] = set()
    for (uuid, model_name, profile), n in at_once.items():
        gpu = find_model(model_name)
        assert gpu is not None
        if n > instances_per_gpu(gpu.key, profile):
            on = frame[(frame["gpu_uuid"] == uuid) & (frame["mig_profile"] == profile)]["workload"]
            keys.update(WorkloadKey(w, model_name) for w in on)
    return frozenset(keys)


def inventory_by_pandas(rows: pd.DataFrame) -> tuple[NodeNow, ...]:
    """The drop_duplicates/groupby form inventory_from_history replaced."""
    seen = rows[["node", "gpu_uuid", "gpu_model", "workload", "mig_profile", "sharing"]].drop_duplicates().astype(str)
    nodes = []
    for node, per_node in seen.groupby("node", sort=True):
        gpu_model = str(per_node.groupby("gpu_model")["gpu_uuid"].nunique().idxmax())
        mine = per_node[per_node["gpu_model"] == gpu_model]
        gpus = []
        for uuid, g in mine.groupby("gpu_uuid", sort=True):
            profiles = sorted({p for p in g["mig_profile"] if p})
            setup = "mig:" + ",".join(profiles) if profiles else "mps" if (g["sharing"] == "mps").any() else "whole"
            gpus.append(GpuNow(str(uuid), setup, tuple(sorted(set(g["workload"])))))
        nodes.append(NodeNow(str(node), gpu_model, tuple(gpus)))
    return tuple(nodes)


@pytest.mark.parametrize(("seed", "by_gpu", "categorical"), FRAMES)
def test_shared_slices_and_inventory_are_what_the_groupby_gives(seed: int, by_gpu: bool, categorical: bool) -> None:
    rows = history(seed, by_gpu=by_gpu, categorical=categorical)
    for frame in (rows, rows.sample(frac=1, random_state=seed)):
        expected = shared_by_pandas(frame)
        assert expected  # the frame has slices shared by more workloads than they hold
        assert SharedToday.from_history(frame).keys == expected
        assert inventory_from_history(frame) == inventory_by_pandas(frame)


@pytest.mark.parametrize("keys", [12, 70_000])
@pytest.mark.parametrize("in_time_order", [True, False])
def test_runs_and_order_are_unique_and_lexsort(keys: int, in_time_order: bool) -> None:
    rng = np.random.default_rng(keys)
    key = rng.integers(0, keys, 5_000)
    then = rng.integers(0, 50, 5_000)
    if in_time_order:
        then.sort()
    assert np.array_equal(order_by(key, then), np.lexsort((then, key)))
    pairs, counts = np.unique(np.stack([key, then]), axis=1, return_counts=True)
    got_key, got_then, starts = runs_of(key, then)
    assert np.array_equal(np.stack([got_key, got_then]), pairs)
    assert np.array_equal(np.diff(starts, append=len(key)), counts)


def test_most_at_once_counts_distinct_workloads_per_sample_time() -> None:
    rng = np.random.default_rng(3)
    device, workload = rng.integers(0, 5, 2_000), rng.integers(0, 9, 2_000)
    times = rng.integers(0, 40, 2_000) * 60_000 + 1_700_000_000_000  # epoch milliseconds
    frame = pd.DataFrame({"d": device, "t": times, "w": workload})
    expected = frame.groupby(["d", "t"])["w"].nunique().groupby(level=0).max()
    devices, most = most_at_once(device, times, workload)
    assert devices.tolist() == expected.index.tolist() and most.tolist() == expected.tolist()
