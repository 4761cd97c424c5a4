"""scripts/real-gpu-check without a GPU: its parsing of nvidia-smi's outputs (in the formats NVIDIA's tools print),
its comparison against a scrape (agreeing, and catching each kind of difference), and its timing of NVML calls on
the simulated driver."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest
from prometheus_client import generate_latest

from exporter.app import ExporterOptions, build_exporter
from exporter.nvml import realcheck
from exporter.simulate import ManualClock, attach, build_scenario
from exporter.simulate.fleet import Node
from tests.exporter.simulate.conftest import AFTERNOON

REPO = Path(__file__).resolve().parents[3]
MIB = 2**20

LGI = """\
+-------------------------------------------------------+
| GPU instances:                                        |
| GPU   Name             Profile  Instance   Placement  |
|                          ID       ID       Start:Size |
|=======================================================|
|   0  MIG 3g.40gb          9        2          4:4     |
+-------------------------------------------------------+
|   0  MIG 1g.10gb         19        9          2:1     |
+-------------------------------------------------------+
"""
LCI_OLD = """\
+-------------------------------------------------------+
| Compute instances:                                    |
| GPU     GPU       Name             Profile   Instance |
|       Instance                       ID        ID     |
|         ID                                            |
|=======================================================|
|   0      2       MIG 1c.3g.40gb       0         0     |
+-------------------------------------------------------+
|   0      2       MIG 1c.3g.40gb       0         1     |
+-------------------------------------------------------+
"""
XML = """<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log><driver_version>550.127.08</driver_version>
<gpu id="00000000:18:00.0"><uuid>GPU-1</uuid>
<mig_devices>
<mig_device><index>0</index><gpu_instance_id>2</gpu_instance_id><compute_instance_id>0</compute_instance_id>
<fb_memory_usage><total>40192 MiB</total><reserved>0 MiB</reserved><used>13 MiB</used><free>40179 MiB</free>
</fb_memory_usage></mig_device>
<mig_device><index>1</index><gpu_instance_id>9</gpu_instance_id><compute_instance_id>0</compute_instance_id>
<fb_memory_usage><total>N/A</total><used>N/A</used></fb_memory_usage></mig_device>
</mig_devices></gpu>
<gpu id="00000000:2A:00.0"><uuid>GPU-2</uuid><mig_devices>None</mig_devices></gpu>
</nvidia_smi_log>
"""


def test_parsers_read_nvidia_smi_output() -> None:
    gpus = realcheck.parse_query_gpu(
        "0, GPU-1, NVIDIA H100 80GB HBM3, 550.127.08, 81559, 1234, Enabled\n"
        "1, GPU-2, NVIDIA H100 80GB HBM3, 550.127.08, 81559, [N/A], Disabled\n"
    )
    assert gpus[0] == realcheck.SmiGpu(0, "GPU-1", "NVIDIA H100 80GB HBM3", "550.127.08", 81559, 1234, True)
    assert gpus[1].memory_used_mib is None and not gpus[1].mig
    apps = realcheck.parse_compute_apps("GPU-1, 4242, /usr/bin/python3, 2048\nGPU-1, 77, nvidia-cuda-mps-server, 30\n")
    assert apps[0] == realcheck.SmiApp("GPU-1", 4242, "/usr/bin/python3", 2048)
    assert realcheck.parse_compute_apps("No running processes found\n") == []
    assert realcheck.parse_lgi(LGI) == [
        realcheck.SmiInstance(0, 2, None, "3g.40gb", 4, 4),
        realcheck.SmiInstance(0, 9, None, "1g.10gb", 2, 1),
    ]
    lci = LGI.replace("GPU instances", "Compute instances")  # a layout that is not -lci's: nothing matches
    assert realcheck.parse_lci(lci) == []
    assert [(c.gi, c.ci, c.profile, c.start) for c in realcheck.parse_lci(LCI_OLD)] == [
        (2, 0, "1c.3g.40gb", None),
        (2, 1, "1c.3g.40gb", None),
    ]
    assert realcheck.parse_mig_memory(XML) == [
        realcheck.SmiMigMemory("GPU-1", 2, 0, 40192, 13),
        realcheck.SmiMigMemory("GPU-1", 9, 0, None, None),
    ]
    with pytest.raises(ValueError, match="expected 7 columns"):
        realcheck.parse_query_gpu("0, GPU-1, 81559\n")


def _smi_outputs(node: Node) -> dict[str, str]:
    """What nvidia-smi would print for the simulated node now (the simulator's truth, in nvidia-smi's formats);
    the node is attached and NVML initialised."""
    gpu = node.gpus[0]
    mig = gpu.mig_enabled
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    used_mib = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2).used // MIB
    query = f"0, {gpu.uuid}, {gpu.model.name}, {node.driver_version}, {gpu.model.memory_total_bytes // MIB}, "
    query += f"{used_mib}, {'Enabled' if mig else 'Disabled'}\n"
    apps = "".join(
        f"{gpu.uuid}, {p.pid}, {'nvidia-cuda-mps-server' if p.workload is None else 'python3'}, "
        f"{p.memory_bytes // MIB}\n"
        for p in node.processes()
    )
    lgi = lci = ""
    devices = ""
    for gi in gpu.instances if mig else []:
        place = f"{gi.placement.start}:{gi.profile.size}"
        lgi += f"|   0  MIG {gi.profile.name}   {gi.profile.smi_id}   {gi.id}   {place}  |\n"
        for ci in gi.compute_instances:
            lci += f"|   0      {gi.id}       MIG {gi.profile.name}   0   {ci.id}   {ci.start}:{ci.slices}  |\n"
            devices += (
                f"<mig_device><gpu_instance_id>{gi.id}</gpu_instance_id><compute_instance_id>{ci.id}"
                f"</compute_instance_id><fb_memory_usage><total>{gi.profile.memory_bytes // MIB} MiB</total>"
                "<used>0 MiB</used></fb_memory_usage></mig_device>"
            )
    xml = f"<nvidia_smi_log><gpu><uuid>{gpu.uuid}</uuid><mig_devices>{devices}</mig_devices></gpu></nvidia_smi_log>"
    return {"query-gpu.csv": query, "compute-apps.csv": apps, "mig-lgi.txt": lgi, "mig-lci.txt": lci, "q.xml": xml}


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A simulated H100 node under MIG: its scrape saved, and the nvidia-smi outputs that match it."""
    fleet = build_scenario("h100-mig", clock=ManualClock(AFTERNOON))
    exporter = build_exporter(ExporterOptions(kubernetes="off"), serve=False, fleet=fleet)
    try:
        fleet.clock.advance(15)  # type: ignore[attr-defined]
        (tmp_path / "scrape.prom").write_text(generate_latest(exporter.registry).decode())
        outputs = _smi_outputs(fleet.nodes[0])
    finally:
        exporter.close()
    smi = tmp_path / "smi"
    smi.mkdir()
    for name, text in outputs.items():
        (smi / name).write_text(text)
    yield tmp_path / "scrape.prom", smi, outputs


def _check(scrape: Path, smi: Path, out: Path) -> tuple[int, str]:
    code = realcheck.main(["--scrape", str(scrape), "--recorded", str(smi), "--out", str(out)])
    return code, (out / "report.md").read_text()


def test_agreeing_node_reports_everything_agrees(recorded: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    scrape, smi, _ = recorded
    code, report = _check(scrape, smi, tmp_path / "out")
    assert code == 0, report
    assert "DIFFERS" not in report and "Result: everything agrees" in report
    for check in ("GPU 0 memory", "process list", "MIG devices", "MIG profiles and placements", "MIG memory"):
        assert f"| {check} | ok |" in report


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda o: o.__setitem__("compute-apps.csv", o["compute-apps.csv"] + "X, 99999, ghost, 10\n"), "process list"),
        (lambda o: o.__setitem__("mig-lgi.txt", o["mig-lgi.txt"].replace("2:", "3:", 1)), "placements"),
        (lambda o: o.__setitem__("mig-lci.txt", o["mig-lci.txt"].split("\n", 1)[1]), "MIG devices"),
        (lambda o: o.__setitem__("q.xml", o["q.xml"].replace("<total>", "<total>1", 1)), "MIG memory"),
    ],
)
def test_each_difference_is_caught(
    recorded: tuple[Path, Path, dict[str, str]], tmp_path: Path, change: object, check: str
) -> None:
    scrape, smi, outputs = recorded
    changed = dict(outputs)
    change(changed)  # type: ignore[operator]
    for name, text in changed.items():
        (smi / name).write_text(text)
    code, report = _check(scrape, smi, tmp_path / "out")
    assert code == 1
    assert any(check in line and "DIFFERS" in line for line in report.splitlines()), report


def test_costs_of_each_nvml_call_are_recorded_on_the_simulated_driver() -> None:
    fleet = build_scenario("h100-mig", clock=ManualClock(AFTERNOON))
    with attach(fleet):  # beneath pynvml: measure() builds the exporter on "the driver" as on a real node
        measured = realcheck.measure(scrapes=2, interval_s=0.0)
    assert len(measured.scrape_seconds) == 2
    assert measured.costs["nvmlDeviceGetCount"].calls == 2
    assert measured.costs["nvmlDeviceGetComputeRunningProcesses_v3"].calls >= 2 * 4  # every MIG device
    assert measured.diagnostics["process_list_version"] == "_v3 (v2 struct)"
    assert "slicewise_mig_info" in measured.scrape


def test_script_refuses_bad_usage(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts/real-gpu-check"), "--scrapes", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--scrapes must be at least 1" in done.stderr
