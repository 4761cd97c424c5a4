"""A stand-in for the pynvml *functions* the reader calls, for unit tests of the reader's own logic.

The simulator (``exporter.simulate``) replaces libnvidia-ml beneath pynvml and is what the end-to-end tests use;
this fake sits one level higher so a test can state exactly what each call answers or which error it raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

ERR = pynvml.NVMLError


@dataclass
class FakeProcessInfo:
    pid: int
    usedGpuMemory: int | None  # noqa: N815 (the field name of pynvml's process struct)


@dataclass
class FakeMig:
    gi: int
    ci: int
    uuid: str
    profile_id: int
    profile_name: str
    start: int
    size: int
    sm: int
    memory: tuple[int, int]
    compute: list[FakeProcessInfo] = field(default_factory=list)
    mps: list[FakeProcessInfo] = field(default_factory=list)


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    cores: int = 16896
    capability: tuple[int, int] = (9, 0)
    memory: tuple[int, int] = (80 * 2**30, 2**30)
    mig: bool = False
    compute_mode: int = pynvml.NVML_COMPUTEMODE_DEFAULT
    util: int = 40
    compute: list[FakeProcessInfo] = field(default_factory=list)
    graphics: list[FakeProcessInfo] = field(default_factory=list)
    mps: list[FakeProcessInfo] = field(default_factory=list)
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (pid, timestamp_us, smUtil)
    migs: list[FakeMig] = field(default_factory=list)
    gpm: bool = True
    gpm_values: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # gi -> (sm, occ, dram) %
    gpm_mig_handles: bool = False  # nvmlGpmSampleGet accepts MIG device handles (R550+ in the simulator)
    gpm_device_values: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # MIG uuid -> %
    parent_memory_denied: bool = False  # MIG mode, unprivileged: NO_PERMISSION for the GPU's own memory
    empty_slot_error: int = pynvml.NVML_ERROR_NOT_FOUND  # what an unused MIG slot answers
    fail: dict[str, int] = field(default_factory=dict)  # function name -> NVML error code it raises


class FakeNvml:
    def __init__(self, gpus: list[FakeGpu], names: dict[int, str] | None = None) -> None:
        self.gpus = gpus
        self.names = names or {}
        self.calls: list[str] = []
        self.fail: dict[str, int] = {}  # system-wide failures
        self.samples_alive = 0
        self.absent: set[str] = set()  # C symbols the library does not export (driver generation)

    # helpers
    def _gpu(self, handle: Any) -> FakeGpu:
        return handle if isinstance(handle, FakeGpu) else handle[0]

    def _check(self, fn: str, handle: Any = None) -> None:
        self.calls.append(fn)
        code = self.fail.get(fn)
        if code is None and handle is not None:
            code = self._gpu(handle).fail.get(fn)
        if code is not None:
            raise ERR(code)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        p = pynvml
        m = monkeypatch.setattr
        m(p, "nvmlSystemGetDriverVersion", lambda: (self._check("nvmlSystemGetDriverVersion"), "550.90.07")[1])
        m(p, "nvmlDeviceGetCount", lambda: (self._check("nvmlDeviceGetCount"), len(self.gpus))[1])

        def by_index(i: int) -> FakeGpu:
            self._check("nvmlDeviceGetHandleByIndex", self.gpus[i])
            return self.gpus[i]

        m(p, "nvmlDeviceGetHandleByIndex", by_index)

        def uuid(h: Any) -> str:
            self._check("nvmlDeviceGetUUID", h)
            return h.uuid if isinstance(h, FakeGpu) else h[1].uuid

        m(p, "nvmlDeviceGetUUID", uuid)

        def name(h: Any) -> str:
            self._check("nvmlDeviceGetName", h)
            if isinstance(h, FakeGpu):
                return h.name
            gpu, mig = h
            split = sum(1 for x in gpu.migs if x.gi == mig.gi) > 1  # one of several CIs: "1c.<profile>"
            return f"{gpu.name} MIG {'1c.' if split else ''}{mig.profile_name}"

        m(p, "nvmlDeviceGetName", name)
        m(p, "nvmlDeviceGetNumGpuCores", lambda h: (self._check("nvmlDeviceGetNumGpuCores", h), h.cores)[1])
        m(
            p,
            "nvmlDeviceGetCudaComputeCapability",
            lambda h: (self._check("nvmlDeviceGetCudaComputeCapability", h), h.capability)[1],
        )

        def memory(h: Any, version: Any = None) -> Any:
            self._check("nvmlDeviceGetMemoryInfo", h)
            if isinstance(h, FakeGpu) and h.mig and h.parent_memory_denied:
                raise ERR(pynvml.NVML_ERROR_NO_PERMISSION)
            total, used = h.memory if isinstance(h, FakeGpu) else h[1].memory
            return SimpleNamespace(total=total, used=used, free=total - used)

        m(p, "nvmlDeviceGetMemoryInfo", memory)

        def mig_mode(h: Any) -> list[int]:
            self._check("nvmlDeviceGetMigMode", h)
            if not h.mig and h.name.startswith("NVIDIA GeForce"):
                raise ERR(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return [int(h.mig), int(h.mig)]

        m(p, "nvmlDeviceGetMigMode", mig_mode)
        m(p, "nvmlDeviceGetComputeMode", lambda h: (self._check("nvmlDeviceGetComputeMode", h), h.compute_mode)[1])

        def util(h: Any) -> Any:
            self._check("nvmlDeviceGetUtilizationRates", h)
            if h.mig:
                raise ERR(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return SimpleNamespace(gpu=h.util, memory=0)

        m(p, "nvmlDeviceGetUtilizationRates", util)

        def lists(kind: str) -> Any:
            def get(h: Any) -> list[FakeProcessInfo]:
                self._check(f"nvmlDeviceGet{kind}RunningProcesses", h)
                source = h if isinstance(h, FakeGpu) else h[1]
                return list(
                    getattr(source, {"Compute": "compute", "Graphics": "graphics", "MPSCompute": "mps"}[kind], [])
                )

            return get

        for kind in ("Compute", "Graphics", "MPSCompute"):
            for suffix in ("_v3", "_v2"):  # what the reader calls for drivers with the v2 struct
                m(p, f"nvmlDeviceGet{kind}RunningProcesses{suffix}", lists(kind))

        def function_pointer(name: str) -> Any:
            if name in self.absent:
                raise ERR(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            return lambda *args: pynvml.NVML_ERROR_NOT_SUPPORTED  # probed for its presence only

        m(p, "_nvmlGetFunctionPointer", function_pointer)

        def name_of(pid: int) -> str:
            self._check("nvmlSystemGetProcessName")
            if pid not in self.names:
                raise ERR(pynvml.NVML_ERROR_NOT_FOUND)
            return self.names[pid]

        m(p, "nvmlSystemGetProcessName", name_of)

        def proc_util(h: Any, since: int) -> list[Any]:
            self._check("nvmlDeviceGetProcessUtilization", h)
            found = [SimpleNamespace(pid=pid, timeStamp=ts, smUtil=sm) for pid, ts, sm in h.samples if ts > since]
            if not found:
                raise ERR(pynvml.NVML_ERROR_NOT_FOUND)
            return found

        m(p, "nvmlDeviceGetProcessUtilization", proc_util)
        m(p, "nvmlDeviceGetMaxMigDeviceCount", lambda h: (self._check("nvmlDeviceGetMaxMigDeviceCount", h), 7)[1])

        def mig_handle(h: Any, slot: int) -> Any:
            self._check("nvmlDeviceGetMigDeviceHandleByIndex", h)
            if slot >= len(h.migs):
                raise ERR(h.empty_slot_error)
            return (h, h.migs[slot])

        m(p, "nvmlDeviceGetMigDeviceHandleByIndex", mig_handle)
        m(p, "nvmlDeviceGetGpuInstanceId", lambda h: (self._check("nvmlDeviceGetGpuInstanceId", h), h[1].gi)[1])
        m(p, "nvmlDeviceGetComputeInstanceId", lambda h: (self._check("nvmlDeviceGetComputeInstanceId", h), h[1].ci)[1])
        m(
            p,
            "nvmlDeviceGetAttributes",
            lambda h: (
                self._check("nvmlDeviceGetAttributes", h),
                SimpleNamespace(
                    multiprocessorCount=h[1].sm, gpuInstanceSliceCount=1, memorySizeMB=h[1].memory[0] >> 20
                ),
            )[1],
        )

        def gi_by_id(h: Any, gi: int) -> Any:
            self._check("nvmlDeviceGetGpuInstanceById", h)
            return next(x for x in h.migs if x.gi == gi)

        m(p, "nvmlDeviceGetGpuInstanceById", gi_by_id)
        m(
            p,
            "nvmlGpuInstanceGetInfo",
            lambda mig: (
                self._check("nvmlGpuInstanceGetInfo"),
                SimpleNamespace(profileId=mig.profile_id, placement=SimpleNamespace(start=mig.start, size=mig.size)),
            )[1],
        )

        def profile_by_id(h: Any, profile_id: int) -> Any:
            self._check("nvmlDeviceGetGpuInstanceProfileInfoById", h)
            name = next(x.profile_name for x in h.migs if x.profile_id == profile_id)
            return SimpleNamespace(id=profile_id, name=f"MIG {name}".encode())

        m(p, "nvmlDeviceGetGpuInstanceProfileInfoById", profile_by_id)

        def gpm_support(h: Any) -> Any:
            self._check("nvmlGpmQueryDeviceSupport", h)
            return SimpleNamespace(isSupportedDevice=int(h.gpm))

        m(p, "nvmlGpmQueryDeviceSupport", gpm_support)

        def alloc() -> Any:
            self._check("nvmlGpmSampleAlloc")
            self.samples_alive += 1
            return SimpleNamespace(values=None)

        def free(sample: Any) -> None:
            self.samples_alive -= 1

        def mig_sample(h: Any, gi: int, sample: Any) -> Any:
            self._check("nvmlGpmMigSampleGet", h)
            sample.values = h.gpm_values.get(gi, (0.0, 0.0, 0.0))
            return sample

        def device_sample(h: Any, sample: Any) -> Any:
            self._check("nvmlGpmSampleGet", h)
            if isinstance(h, FakeGpu) or not h[0].gpm_mig_handles:
                raise ERR(pynvml.NVML_ERROR_NOT_SUPPORTED)
            sample.values = h[0].gpm_device_values.get(h[1].uuid, (0.0, 0.0, 0.0))
            return sample

        m(p, "nvmlGpmSampleGet", device_sample)
        m(p, "nvmlGpmSampleAlloc", alloc)
        m(p, "nvmlGpmSampleFree", free)
        m(p, "nvmlGpmMigSampleGet", mig_sample)

        def metrics_get(request: Any) -> Any:
            self._check("nvmlGpmMetricsGet")
            values = request.sample2.values
            for i in range(request.numMetrics):
                request.metrics[i].nvmlReturn = 0
                request.metrics[i].value = values[i]
            return request

        m(p, "nvmlGpmMetricsGet", metrics_get)

        class Request:
            def __init__(self) -> None:
                self.metrics = [SimpleNamespace(metricId=0, nvmlReturn=0, value=0.0) for _ in range(3)]

        m(p, "c_nvmlGpmMetricsGet_t", Request)
