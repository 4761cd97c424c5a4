"""How the exporter finds its sources off the simulator: the Kubernetes API (kubeconfig or in-cluster) or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.app import ExporterOptions, _kubernetes_directory
from exporter.attribution.precedence import parse_order
from slicewise.errors import BadInput
from tests.exporter.attribution.fake_apiserver import FakeApiServer, kubeconfig, pod, serve


def test_kubeconfig_reads_this_nodes_pods(tmp_path: Path) -> None:
    api = FakeApiServer(
        pods=[pod("u1", "ml", "trainer-0", "gpu-a", {"a" * 64: "main"}), pod("u2", "ml", "x", "gpu-b", {})]
    )
    with serve(api) as url:
        options = ExporterOptions(kubeconfig=kubeconfig(tmp_path / "kubeconfig", url))
        directory = _kubernetes_directory(options, "gpu-a")
        assert directory is not None and directory.refresh()
    assert directory.lookup("u1") is not None and directory.lookup("u2") is None


def test_off_or_not_in_a_cluster_means_no_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert _kubernetes_directory(ExporterOptions(), "gpu-a") is None
    config = kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    assert _kubernetes_directory(ExporterOptions(kubernetes="off", kubeconfig=config), "gpu-a") is None
    no_step = ExporterOptions(kubeconfig=config, order=parse_order("slurm,user"))
    assert _kubernetes_directory(no_step, "gpu-a") is None


def test_a_node_name_is_required(tmp_path: Path) -> None:
    options = ExporterOptions(kubeconfig=kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1"))
    with pytest.raises(BadInput, match="NODE_NAME"):
        _kubernetes_directory(options, "")


def test_in_cluster_without_a_service_account_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.skip("running inside a pod")
    with pytest.raises(BadInput, match="in-cluster service account"):
        _kubernetes_directory(ExporterOptions(), "gpu-a")
