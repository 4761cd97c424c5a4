"""Expected utilisation before and after the change: the same demand over the GPUs now and the GPUs needed.

memory = sum of the workloads' mean memory / sum of the GPUs' memory; compute = sum of their mean compute (whole-GPU
fractions) / number of GPUs, over workloads whose compute was measured (None if none was). Models the catalogue
does not know are left out (their memory is unknown), as are unplaced workloads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from advisor.model import ModelPlan, Utilisation, WorkloadRecommendation
from slicewise.catalogue import find_model


def utilisation(
    workloads: Sequence[WorkloadRecommendation],
    unplaced: Collection[tuple[str, str]],
    gpus_now: Mapping[str, int],
    plans: Sequence[ModelPlan],
) -> tuple[Utilisation, Utilisation]:
    memory_used = 0.0
    compute_used = 0.0
    compute_seen = False
    for w in workloads:
        if (w.workload, w.gpu_model) in unplaced or find_model(w.gpu_model) is None:
            continue
        memory_used += w.features.memory_mean_bytes
        if w.features.compute_mean_gpu_fraction is not None:
            compute_used += w.features.compute_mean_gpu_fraction
            compute_seen = True

    def over(count_of: Mapping[str, int]) -> Utilisation:
        memory_total = 0
        gpus = 0
        for name, n in count_of.items():
            gpu = find_model(name)
            if gpu is not None:
                memory_total += n * gpu.memory_total_bytes
                gpus += n
        return Utilisation(
            memory=round(memory_used / memory_total, 4) if memory_total else 0.0,
            compute=round(compute_used / gpus, 4) if compute_seen and gpus else None,
        )

    return over(gpus_now), over({m.gpu_model: m.gpus_needed for m in plans})
