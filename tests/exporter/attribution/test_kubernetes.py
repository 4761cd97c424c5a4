"""KubernetesPodDirectory against a local server that answers like the API server (pods, ReplicaSets, Jobs)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import config

from exporter.attribution.kubernetes import KubernetesPodDirectory
from exporter.attribution.sources import PodMeta
from tests.exporter.attribution.fake_apiserver import FakeApiServer, kubeconfig, owner, pod, serve

NODE = "gpu-node-a"
CID = {n: f"{n:x}" * 64 for n in range(1, 10)}  # 64-hex container ids: "111…", "222…"


def cluster() -> FakeApiServer:
    api = FakeApiServer()
    api.pods = [
        pod(
            "u-deploy",
            "ml",
            "trainer-7d9f8c6b5-x2x7q",
            NODE,
            {CID[1]: "pytorch", CID[2]: "sidecar"},
            [owner("ReplicaSet", "trainer-7d9f8c6b5")],
            {"app": "trainer", "pod-template-hash": "7d9f8c6b5"},
        ),
        pod("u-sts", "serving", "vllm-0", NODE, {CID[3]: "vllm"}, [owner("StatefulSet", "vllm")], runtime="cri-o"),
        pod(
            "u-cron",
            "eval",
            "nightly-eval-28934520-5kq2p",
            NODE,
            {CID[4]: "eval"},
            [owner("Job", "nightly-eval-28934520", "batch/v1")],
        ),
        pod(
            "u-job", "ml", "finetune-llama-8xk2m", NODE, {CID[5]: "train"}, [owner("Job", "finetune-llama", "batch/v1")]
        ),
        pod("u-bare", "dev", "scratch", NODE, {CID[6]: "main"}),
        pod(
            "u-locked",
            "locked",
            "api-5c4d8f7b9d-abcde",
            NODE,
            {CID[7]: "api"},
            [owner("ReplicaSet", "api-5c4d8f7b9d")],
            {"pod-template-hash": "5c4d8f7b9d"},
        ),
        pod(
            "u-ds",
            "gpu-operator",
            "nvidia-dcgm-exporter-9xk2l",
            NODE,
            {CID[8]: "exporter"},
            [owner("DaemonSet", "nvidia-dcgm-exporter")],
            runtime="docker",
        ),
        pod("u-static", "kube-system", f"etcd-{NODE}", NODE, {}, [owner("Node", NODE, "v1")]),
        pod(
            "u-elsewhere",
            "ml",
            "trainer-7d9f8c6b5-zzzzz",
            "gpu-node-b",
            {CID[9]: "pytorch"},
            [owner("ReplicaSet", "trainer-7d9f8c6b5")],
        ),
    ]
    api.replicasets[("ml", "trainer-7d9f8c6b5")] = {
        "kind": "ReplicaSet",
        "metadata": {
            "name": "trainer-7d9f8c6b5",
            "namespace": "ml",
            "ownerReferences": [owner("Deployment", "trainer")],
        },
    }
    api.jobs[("eval", "nightly-eval-28934520")] = {
        "kind": "Job",
        "metadata": {
            "name": "nightly-eval-28934520",
            "namespace": "eval",
            "ownerReferences": [owner("CronJob", "nightly-eval", "batch/v1")],
        },
    }
    api.jobs[("ml", "finetune-llama")] = {"kind": "Job", "metadata": {"name": "finetune-llama", "namespace": "ml"}}
    api.forbidden = {"locked"}
    return api


def _get(pods: KubernetesPodDirectory, uid: str) -> PodMeta:
    found = pods.lookup(uid)
    assert found is not None, uid
    return found


def directory(tmp_path: Path, url: str, **kwargs: float) -> KubernetesPodDirectory:
    api_client = config.new_client_from_config(config_file=str(kubeconfig(tmp_path / "kubeconfig", url)))
    return KubernetesPodDirectory(api_client, NODE, **kwargs)


def test_owners_containers_and_node_filter(tmp_path: Path) -> None:
    api = cluster()
    with serve(api) as url:
        pods = directory(tmp_path, url)
        assert pods.refresh()
    assert _get(pods, "u-deploy") == PodMeta(
        "u-deploy", "ml", "trainer-7d9f8c6b5-x2x7q", "Deployment", "trainer", {CID[1]: "pytorch", CID[2]: "sidecar"}
    )
    assert (_get(pods, "u-sts").owner_kind, _get(pods, "u-sts").owner_name) == ("StatefulSet", "vllm")
    assert _get(pods, "u-sts").containers == {CID[3]: "vllm"}  # cri-o:// stripped
    assert _get(pods, "u-cron").owner_name == "nightly-eval"
    assert _get(pods, "u-cron").owner_kind == "CronJob"
    assert (_get(pods, "u-job").owner_kind, _get(pods, "u-job").owner_name) == ("Job", "finetune-llama")
    assert (_get(pods, "u-bare").owner_kind, _get(pods, "u-bare").owner_name) == ("", "")
    assert _get(pods, "u-ds").owner_name == "nvidia-dcgm-exporter"
    assert _get(pods, "u-static").owner_name == ""  # mirror pod: owned by the Node
    assert pods.lookup("u-elsewhere") is None  # another node's pod is never listed
    # RBAC refused the ReplicaSet: the Deployment is named from the ReplicaSet name minus the pod-template-hash
    assert (_get(pods, "u-locked").owner_kind, _get(pods, "u-locked").owner_name) == ("Deployment", "api")
    assert "/api/v1/pods" in api.requests
    assert set(api.auth_headers) == {"Bearer sa-token-of-slicewise"}
    assert pods.health().pods == 8


def test_owner_lookups_are_cached(tmp_path: Path) -> None:
    api = cluster()
    with serve(api) as url:
        pods = directory(tmp_path, url)
        pods.refresh()
        first = [r for r in api.requests if "replicasets" in r or "jobs" in r]
        pods.refresh()
        again = [r for r in api.requests if "replicasets" in r or "jobs" in r]
    assert len(first) == 4  # trainer RS, locked RS (403), nightly-eval Job, finetune Job
    assert again == first  # second listing: no owner lookups at all (the 403 is remembered too)


def test_a_failed_listing_keeps_the_last_good_cache(tmp_path: Path) -> None:
    api = cluster()
    with serve(api) as url:
        pods = directory(tmp_path, url)
        assert pods.refresh()
        api.fail_pods = True
        assert not pods.refresh()
    assert pods.lookup("u-deploy") is not None
    assert pods.health().errors == 1


def test_unreachable_api_server_is_an_error_not_a_crash(tmp_path: Path) -> None:
    from tests.support import free_port

    pods = directory(tmp_path, f"http://127.0.0.1:{free_port()}", request_timeout_s=2)
    assert not pods.refresh()
    assert pods.lookup("u-deploy") is None


def test_a_slow_api_server_never_blocks_lookup(tmp_path: Path) -> None:
    api = cluster()
    api.delay_s = 1.5
    with serve(api) as url:
        pods = directory(tmp_path, url, refresh_interval_s=60, min_refresh_s=0.1)
        pods.start()
        try:
            started = time.perf_counter()
            assert pods.lookup("u-deploy") is None  # the listing is still under way
            assert time.perf_counter() - started < 0.05
            deadline = time.monotonic() + 10
            while pods.lookup("u-deploy") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pods.lookup("u-deploy") is not None
        finally:
            pods.stop()


def test_an_unknown_pod_triggers_an_early_refresh(tmp_path: Path) -> None:
    api = cluster()
    with serve(api) as url:
        pods = directory(tmp_path, url, refresh_interval_s=3600, min_refresh_s=0.2)
        pods.start()
        try:
            deadline = time.monotonic() + 10
            while pods.lookup("u-deploy") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            api.pods.append(pod("u-new", "ml", "fresh", NODE, {CID[9]: "main"}))
            assert pods.lookup("u-new") is None  # unknown: asks for a refresh without waiting an hour
            while pods.lookup("u-new") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pods.lookup("u-new") is not None
        finally:
            pods.stop()


@pytest.mark.parametrize("runtime", ["containerd", "cri-o", "docker"])
def test_container_ids_lose_their_runtime_prefix(tmp_path: Path, runtime: str) -> None:
    api = FakeApiServer(pods=[pod("u1", "a", "p", NODE, {CID[1]: "c"}, runtime=runtime)])
    with serve(api) as url:
        pods = directory(tmp_path, url)
        pods.refresh()
    assert _get(pods, "u1").containers == {CID[1]: "c"}
