"""nvitop, an independent pynvml user, runs on an attached simulated node (a bench/test dependency: skipped when
nvitop is not installed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

nvitop = pytest.importorskip("nvitop")


def test_nvitop_device_api_lists_the_simulated_gpus(attach_scenario) -> None:
    a = attach_scenario("h100-mig")
    devices = nvitop.Device.all()
    assert len(devices) == 1
    gpu = devices[0]
    assert gpu.name() == "NVIDIA H100 80GB HBM3"
    assert gpu.uuid() == a.node.gpus[0].uuid
    assert gpu.is_mig_mode_enabled()
    assert gpu.memory_total() == a.node.gpus[0].model.memory_total_bytes
    assert isinstance(gpu.temperature(), int) and isinstance(gpu.power_usage(), int)
    migs = gpu.mig_devices()
    assert sorted(m.name().rsplit(" ", 1)[-1] for m in migs) == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]
    tick = a.node.runtime.state()
    expected = {p.pid for procs in tick.processes for p in procs if not procs or not tick.devices[p.device].mps}
    expected |= {s.pid for s in tick.mps_servers.values()}
    listed = set()
    for mig in migs:
        listed |= set(mig.processes())
    assert listed == expected


def test_nvitop_once_prints_the_fleet() -> None:
    code = (
        "import sys\n"
        "from exporter.simulate import ManualClock, attach, build_scenario\n"
        "attach(build_scenario('timeslice', clock=ManualClock(1795442400)))\n"
        "from nvitop.cli import main\n"
        "sys.argv = ['nvitop', '--once']\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "A100-SXM4-80GB" in done.stdout
    assert "550.127.08" in done.stdout
    assert "ERROR" not in done.stdout + done.stderr
