"""nos.yaml against nebuly-ai/nos @12e0a72: only requests nos can serve, and the knownMigGeometries it needs.

- pkg/gpu/mig/gpu.go (NewGPU, GetAllowedGeometries): a node whose nvidia.com/gpu.product (pkg/gpu/util.go, GetModel)
  is not in gpuPartitioner.knownMigGeometries is refused, and only listed geometries are planned.
- helm-charts/nos/values.yaml: the default list covers A30 and A100 40/80 GB only.
- pkg/constant/constants.go: MIG requests are read with nvidia\\.com\\/mig-\\d+g\\.\\d+gb (no +me profiles).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import yaml

from advisor.configs.naming import product_label
from advisor.configs.nos import nos_plan
from advisor.configs.schema import NosPlan
from advisor.model import Mode
from slicewise import catalogue
from tests.advisor.configs.conftest import Planned
from tests.advisor.plan.fleet_fixtures import H100


def test_known_geometries_cover_every_model_and_geometry_nos_must_plan(planned: Planned) -> None:
    plan, _, configs = planned
    assert configs.nos is not None
    doc = NosPlan.model_validate(yaml.safe_load(configs.nos))
    assert doc.helmValues is not None
    known = doc.helmValues.gpuPartitioner.knownMigGeometries
    allowed: dict[str, list[dict[str, int]]] = {}
    for entry in known:
        for m in entry.models:
            assert m not in allowed, f"{m} in two entries"
            allowed[m] = entry.allowedGeometries
    mig_models = {w.gpu_model for w in doc.workloads if w.partitioning == "mig"}
    assert product_label(H100) in allowed  # H100 is not in nos's default list
    for gpu_model in mig_models:
        label = product_label(gpu_model)
        assert label in allowed, f"nos would refuse {label}: not associated with any known GPU"
        for g in plan.gpus:
            if g.gpu_model == gpu_model and g.mode == Mode.MIG:
                geo = dict(Counter(i.profile for i in g.mig_instances))
                assert geo in allowed[label]
                gpu = catalogue.model(gpu_model)
                catalogue.place(gpu, [p for p, n in geo.items() for _ in range(n)])
    for entry in known:  # no profile nos would misread
        assert all("+" not in p for geo in entry.allowedGeometries for p in geo)


def test_what_nos_cannot_serve_is_said_per_workload_not_requested(planned: Planned) -> None:
    plan, workloads, _ = planned
    mig = next(w for w in workloads if w.decision.mode == Mode.MIG and w.gpu_model == H100)
    mps = next(w for w in workloads if w.decision.mode == Mode.MPS)
    media = replace(mig, decision=replace(mig.decision, profile="1g.10gb+me"))
    huge = replace(mps, features=replace(mps.features, memory_peak_bytes=200 * 1000**3))
    changed = {media.workload: media, huge.workload: huge}
    text = nos_plan(plan, [changed.get(w.workload, w) for w in workloads])
    assert text is not None
    doc = NosPlan.model_validate(yaml.safe_load(text))
    why = {n.workload: n.reason for n in doc.notServed}
    assert "no +me profiles" in why[media.workload]
    assert "more than the H100-80GB's memory" in why[huge.workload]
    assert {media.workload, huge.workload}.isdisjoint(w.workload for w in doc.workloads)
