"""The simple rule users already trust, as a baseline: krr's memory sizing (peak x 1.15) on a whole or shared GPU.

robusta-dev/krr's simple strategy sets memory request = limit = max x 1.15 (shared/reference/sharing_tradeoffs.md).
Applied to GPUs, that is: give each workload peak x 1.15 of GPU memory and pack workloads onto GPUs of their model
by memory alone (first-fit decreasing), sharing a GPU wherever the memory fits. It never sizes a workload below its
peak either, but it knows nothing of compute or isolation: co-tenants can want more than the GPU's SMs at once and
take turns (time-slicing, no memory or fault isolation). This module counts the GPUs it would need and the
contention it would accept, so the report and docs can set slicewise's plan beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.model import WorkloadFeatures
from slicewise.catalogue import find_model

KRR_MEMORY_FACTOR = 1.15
BUSY_DUTY_CYCLE = 0.3  # busier than the "mostly idle" work slicewise would time-slice (decide/rules.py)


@dataclass(frozen=True)
class KrrBaseline:
    gpus: int
    shared_gpus: int  # GPUs holding more than one workload
    overcommitted_gpus: int  # shared GPUs whose tenants' summed p95 compute exceeds one GPU
    workloads_on_overcommitted: int
    mean_busy_cotenants: float  # over shared workloads: mean expected number of other tenants busy at the same time
    busy_workloads_shared: int  # workloads busy in more than 30 % of samples that it puts on a shared GPU

    def sentence(self) -> str:
        return (
            f"The simple krr rule (peak memory x 1.15 on a whole or shared GPU, packed by memory alone) would need "
            f"{self.gpus} GPUs, sharing {self.shared_gpus}: it would put {self.busy_workloads_shared} workloads busy "
            f"in more than 30 % of samples on shared GPUs, on {self.overcommitted_gpus} GPUs the tenants' summed p95 "
            f"compute would exceed the GPU, and no tenant would have memory or fault isolation (it needs a "
            "memory-aware scheduler: the device plugin's replicas let any pods land together)."
        )


def krr_baseline(features: Sequence[WorkloadFeatures]) -> KrrBaseline:
    by_model: dict[str, list[WorkloadFeatures]] = defaultdict(list)
    for f in features:
        if find_model(f.gpu_model) is not None:
            by_model[f.gpu_model].extend([f] * f.devices)
    bins: list[list[WorkloadFeatures]] = []
    for gpu_model, items in sorted(by_model.items()):
        gpu = find_model(gpu_model)
        assert gpu is not None
        capacity = gpu.memory_total_bytes
        model_bins: list[tuple[int, list[WorkloadFeatures]]] = []
        for f in sorted(items, key=lambda f: (-f.memory_peak_bytes, f.workload)):
            need = math.ceil(f.memory_peak_bytes * KRR_MEMORY_FACTOR)
            for i, (used, members) in enumerate(model_bins):
                if used + need <= capacity:
                    model_bins[i] = (used + need, [*members, f])
                    break
            else:
                model_bins.append((min(need, capacity), [f]))  # a workload above the GPU still takes one whole
        bins.extend(members for _, members in model_bins)
    shared = [b for b in bins if len(b) > 1]
    over = [b for b in shared if sum(f.compute_p95_gpu_fraction or 0.0 for f in b) > 1.0]
    busy = [sum(o.duty_cycle or 0.0 for o in b if o is not f) for b in shared for f in b]
    return KrrBaseline(
        gpus=len(bins),
        shared_gpus=len(shared),
        overcommitted_gpus=len(over),
        workloads_on_overcommitted=sum(len(b) for b in over),
        mean_busy_cotenants=round(sum(busy) / len(busy), 3) if busy else 0.0,
        busy_workloads_shared=sum(1 for b in shared for f in b if (f.duty_cycle or 0.0) > BUSY_DUTY_CYCLE),
    )
