"""The exporter on the simulator, scraped over real HTTP: every value equals the simulator's, every workload is
named as the simulator intends, and promtool has nothing to say."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.exporter.promtext import Sample, one, parse, promtool_check
from tests.exporter.simulated import fleet_at, history_at, scrape, serving

# (scenario, node): every platform and sharing mode the simulator has
CASES = [
    ("h100-mig", None),  # MIG + GPM, MPS inside a GPU instance, an idle instance
    ("a100-mig", None),  # MIG without GPM, a GPU instance split into three compute instances
    ("mps", None),  # MPS clients on a whole H100
    ("timeslice", None),
    ("exclusive", None),
    ("mixed", "sim-h100-0"),  # Kubernetes, containerd, cgroup v2 systemd
    ("mixed", "sim-a100-80gb-0"),  # CRI-O
    ("mixed", "sim-a100-40gb-0"),  # cgroup v1, cgroupfs, cri-dockerd
    ("mixed", "sim-a30-0"),  # bare metal: Slurm, systemd units, Docker containers, login sessions
    ("mixed", "sim-h200-0"),
]


def _device_profiles(s: dict[str, list[Sample]]) -> dict[tuple[str, str, str], str]:
    return {
        (x.labels["gpu_uuid"], x.labels["gi"], x.labels["ci"]): x.labels["profile"]
        for x in s.get("slicewise_mig_info", [])
    }


def _per_workload_device(s: dict[str, list[Sample]], node: str) -> list[tuple[str, str, str, str, int, int]]:
    """(node, workload, gpu_uuid, profile, memory, processes) per workload and device, as the history keys them."""
    profiles = _device_profiles(s)
    memory: dict[tuple[str, ...], int] = defaultdict(int)
    count: dict[tuple[str, ...], int] = defaultdict(int)
    for x in s.get("slicewise_process_memory_used_bytes", []):
        key = (x.labels["workload"], x.labels["gpu_uuid"], x.labels["gi"], x.labels["ci"])
        memory[key] += int(x.value)
        count[key] += 1
    return sorted(
        (node, w, g, profiles.get((g, gi, ci), ""), memory[(w, g, gi, ci)], count[(w, g, gi, ci)])
        for (w, g, gi, ci) in memory
    )


@pytest.mark.parametrize(("scenario", "node"), CASES, ids=[f"{s}-{n or 'node0'}" for s, n in CASES])
def test_scrape_equals_the_simulator(tmp_path: Path, scenario: str, node: str | None) -> None:
    fleet = fleet_at(scenario)
    with serving(fleet, node) as exporter:
        fleet.clock.advance(1)  # one second after the start-up read: GPM and process samples cover exactly it
        text = scrape(exporter)
    when = int(fleet.clock.now())
    node_name = exporter.node_name
    sim_node = fleet.node(node_name)
    truth = [r for r in history_at(fleet, when, tmp_path) if r.node == node_name]
    s = parse(text)

    # Every workload named as the simulator intends, with its exact memory and process count on each device.
    expected = sorted(
        (r.node, r.workload, r.gpu_uuid, r.mig_profile, r.memory_used_bytes, r.process_count) for r in truth
    )
    assert _per_workload_device(s, node_name) == expected

    # Every process the simulated driver lists is published once, with its exact memory; MPS servers never.
    tick = sim_node.runtime.state()
    listed = {p.pid: p.memory for procs in tick.processes for p in procs}
    published = {int(x.labels["pid"]): int(x.value) for x in s["slicewise_process_memory_used_bytes"]} if listed else {}
    assert published == listed
    assert not {p.pid for p in tick.mps_servers.values()} & set(published)

    # GPUs: info labels, memory, SMs
    mps_gpus = {tick.devices[d].gpu.uuid for d in tick.mps_servers}  # an MPS server runs there
    for gpu in sim_node.gpus:
        mps = gpu.uuid in mps_gpus
        assert (
            one(
                s,
                "slicewise_gpu_info",
                gpu_uuid=gpu.uuid,
                gpu=str(gpu.index),
                model=gpu.model.name,
                node=node_name,
                mig_mode="enabled" if gpu.mig_enabled else "disabled",
                mps="active" if mps else "inactive",
                compute_mode="Exclusive_Process" if gpu.mps else "Default",
            )
            == 1
        )
        assert one(s, "slicewise_gpu_sm_count", gpu_uuid=gpu.uuid) == gpu.model.sm_count
        assert one(s, "slicewise_gpu_memory_total_bytes", gpu_uuid=gpu.uuid) == gpu.model.memory_total_bytes
        assert one(s, "slicewise_exporter_gpu_up", gpu_uuid=gpu.uuid) == 1

    # MIG devices: identity, placement, SMs, GPU-instance memory once per GI
    devices = [d for d in sim_node.devices() if d.is_mig]
    assert len(s.get("slicewise_mig_info", [])) == len(devices)
    for d in devices:
        gi, ci = str(d.gi.id), str(d.ci.id)
        assert (
            one(
                s,
                "slicewise_mig_info",
                gpu_uuid=d.gpu.uuid,
                gi=gi,
                ci=ci,
                mig_uuid=d.uuid,
                profile=d.gi.profile.name,
                placement_start=str(d.gi.placement.start),
                placement_size=str(d.gi.profile.size),
            )
            == 1
        )
        assert one(s, "slicewise_mig_sm_count", gpu_uuid=d.gpu.uuid, gi=gi, ci=ci) == d.sm_count
        assert one(s, "slicewise_mig_memory_total_bytes", gpu_uuid=d.gpu.uuid, gi=gi) == d.gi.profile.memory_bytes
    gis = {(d.gpu.uuid, d.gi.id) for d in devices}
    assert len(s.get("slicewise_mig_memory_used_bytes", [])) == len(gis)

    # SM activity: measured where NVML measures it, equal to the simulator's; absent (not 0) elsewhere.
    by_device = defaultdict(list)
    for r in truth:
        by_device[(r.gpu_uuid, r.mig_profile)].append(r)
    gpu_sms = {g.uuid: g.model.sm_count for g in sim_node.gpus}
    compared = 0
    for (uuid, profile), rows in by_device.items():
        if profile:
            continue
        for r in rows:  # whole GPU: each process's own SM ratio, summed per workload, is its GPU fraction
            mine = [
                x.value
                for x in s.get("slicewise_process_sm_active_ratio", [])
                if x.labels["gpu_uuid"] == uuid and x.labels["workload"] == r.workload
            ]
            assert len(mine) == r.process_count
            assert sum(mine) == pytest.approx(r.sm_active_gpu_fraction, abs=0.006 * r.process_count)
            compared += 1
    hopper = sim_node.gpus[0].model.has_gpm
    mig_active = s.get("slicewise_mig_sm_active_ratio", [])
    if not hopper:
        assert mig_active == [] and "slicewise_mig_sm_occupancy_ratio" not in s
        assert all(r.sm_active_gpu_fraction is None for r in truth if r.mig_profile)
    for x in mig_active:
        uuid, profile = x.labels["gpu_uuid"], x.labels["profile"]
        sms = one(s, "slicewise_mig_sm_count", gpu_uuid=uuid, gi=x.labels["gi"], ci=x.labels["ci"])
        on_it = [
            p
            for p in s["slicewise_process_memory_used_bytes"]
            if p.labels["gpu_uuid"] == uuid and p.labels["gi"] == x.labels["gi"]
        ]
        workloads = {p.labels["workload"] for p in on_it}
        if len(workloads) == 1:  # the history splits a device among its workloads; with one, it is all of it
            (row,) = [
                r
                for r in truth
                if r.gpu_uuid == uuid
                and r.workload in workloads
                and r.mig_profile == profile
                and r.memory_used_bytes == sum(int(p.value) for p in on_it)
            ]
            assert x.value * sms / gpu_sms[uuid] == pytest.approx(row.sm_active_gpu_fraction, abs=2e-4)
            compared += 1
        elif not workloads:
            assert x.value == 0.0

    measured_somewhere = hopper or any(not r.mig_profile for r in truth)
    assert compared > 0 or not measured_somewhere, "no SM activity was compared"

    assert one(s, "slicewise_exporter_nvml_up") == 1
    assert "slicewise_exporter_nvml_errors_total" not in s  # a healthy fleet: no errors
    assert promtool_check(text) == ""


def test_https_with_basic_auth_on_the_simulator(tmp_path: Path) -> None:
    import ssl

    import bcrypt
    import httpx

    from exporter.web.config import load_web_config
    from tests.exporter.certs import server_certificate

    ca, server = server_certificate(tmp_path)
    hashed = bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    fleet = fleet_at("h100-mig")
    with serving(fleet, web_config=load_web_config(config)) as exporter:
        assert exporter.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(ca.files.cert))
        assert httpx.get(f"{exporter.url}/metrics", verify=trust).status_code == 401
        fleet.clock.advance(15)
        text = scrape(exporter, verify=trust, auth=("prometheus", "scrape-me"))
    s = parse(text)
    assert len(s["slicewise_mig_info"]) == 4
    assert len(s["slicewise_mig_sm_active_ratio"]) == 4
    assert promtool_check(text) == ""


def test_the_installed_script_serves_the_simulator_and_stops_on_sigterm() -> None:
    import shutil
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from tests.support import free_port

    script = shutil.which("slicewise-exporter") or str(Path(sys.executable).with_name("slicewise-exporter"))
    port = free_port()
    proc = subprocess.Popen(
        [script, "--simulate=mixed", "--node-name", "sim-a30-0", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and not text:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        s = parse(text)
        assert {x.labels["node"] for x in s["slicewise_gpu_info"]} == {"sim-a30-0"}
        assert len(s["slicewise_gpu_info"]) == 8
        sources = {x.labels["workload"] for x in s["slicewise_process_memory_used_bytes"]}
        assert any(w.endswith(".service") for w in sources)  # systemd units on the bare-metal node
        assert promtool_check(text) == ""
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "listening on http://127.0.0.1" in stderr


def test_unknown_scenario_or_node_is_bad_input() -> None:
    from exporter.app import ExporterOptions, build_exporter
    from slicewise.errors import BadInput

    with pytest.raises(BadInput, match="--simulate: unknown scenario 'nope'"):
        build_exporter(ExporterOptions(scenario="nope"), serve=False)
    with pytest.raises(BadInput, match=r"--node-name: .*no node 'gpu-99'"):
        build_exporter(ExporterOptions(scenario="exclusive", node_name="gpu-99"), serve=False)
