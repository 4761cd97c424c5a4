"""dcgm-exporter: owners from pod names, and the catalogue's MIG fractions."""

from __future__ import annotations

import pytest

from advisor.history import dcgm


@pytest.mark.parametrize(
    ("pod", "owner"),
    [
        ("api-7d9f8b6c5d-x2k4p", "api"),  # Deployment: template hash, then the pod's suffix
        ("web-bcdfg-7d9f8b6c5d-x2k4p", "web-bcdfg"),
        ("etl-29301840-q8z7m", "etl"),  # CronJob: scheduled minute, then the pod's suffix
        ("db-2", "db"),  # StatefulSet ordinal
        ("train-x2k4p", "train"),  # Job or DaemonSet
        ("notebook", "notebook"),  # a bare pod
        ("my-app", "my-app"),  # "app" has a vowel: never a Kubernetes suffix
    ],
)
def test_owner_from_pod_name(pod, owner):
    assert dcgm.owner_of(pod) == owner


def test_mig_fractions_come_from_the_catalogue_and_are_unique():
    table = dcgm.mig_fractions()
    keys = [(model, profile) for model, profile, _ in table]
    assert len(keys) == len(set(keys))
    fractions = {(m, p): f for m, p, f in table}
    assert fractions[("NVIDIA H100 80GB HBM3", "1g.10gb")] == pytest.approx(16 / 132)
    assert fractions[("NVIDIA A100-SXM4-80GB", "7g.80gb")] == pytest.approx(98 / 108)
