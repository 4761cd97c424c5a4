"""The fake libnvidia-ml: the object installed as ``pynvml.nvmlLib`` for one simulated node.

pynvml resolves every C function with ``getattr(nvmlLib, name)``; a name this library simulates returns a callable
that answers as the driver would on that node's GPUs. Any other name, and any name the node's driver release does
not export (``exporter.simulate.drivers``), raises ``AttributeError``, which pynvml turns into
NVML_ERROR_FUNCTION_NOT_FOUND exactly as for a symbol missing from that driver. The simulated functions live in
``fake_nvml_system``, ``fake_nvml_device``, ``fake_nvml_mig``, ``fake_nvml_procs`` and ``fake_nvml_gpm``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from exporter.simulate import (  # noqa: F401 (imported for their @symbol registrations)
    fake_nvml_device,
    fake_nvml_gpm,
    fake_nvml_mig,
    fake_nvml_procs,
    fake_nvml_system,
)
from exporter.simulate.drivers import UNPRIVILEGED_ALWAYS, UNPRIVILEGED_PARENT
from exporter.simulate.fake_nvml_core import (
    ERROR_GPU_IS_LOST,
    ERROR_INVALID_ARGUMENT,
    ERROR_NO_PERMISSION,
    ERROR_TIMEOUT,
    ERROR_UNKNOWN,
    SYMBOLS,
    Fail,
    Symbol,
    address,
)
from exporter.simulate.faults import FaultKind
from exporter.simulate.fleet import Node
from exporter.simulate.runtime import NodeRuntime, Tick
from exporter.simulate.topology import Device, Gpu


@dataclass(eq=False)
class Handle:
    """Something a handle points at; ``buffer`` is the memory whose address the caller holds."""

    buffer: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.buffer = ctypes.create_string_buffer(16)

    @property
    def address(self) -> int:
        return ctypes.addressof(self.buffer)


@dataclass(eq=False)
class DeviceHandle(Handle):
    gpu: Gpu
    key: str | None  # None: the whole GPU; else the MIG device's key
    generation: int


@dataclass(eq=False)
class GpuInstanceHandle(Handle):
    gpu: Gpu
    gi_id: int
    generation: int


@dataclass(eq=False)
class ComputeInstanceHandle(Handle):
    gpu: Gpu
    gi_id: int
    ci_id: int
    generation: int


@dataclass(eq=False)
class GpmSampleHandle(Handle):
    scope: tuple[object, ...] | None = None  # what was sampled (GPU or GPU instance, and its generation)
    time: float = 0.0
    counters: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # sm, occupancy, dram, graphics (s)


@dataclass
class Target:
    """A device handle resolved against the node's state now."""

    handle: DeviceHandle
    gpu: Gpu
    tick: Tick
    device: int | None  # index into tick.devices: the whole GPU (no MIG) or the MIG device; None for a MIG parent

    @property
    def is_mig_device(self) -> bool:
        return self.handle.key is not None

    @property
    def mig_parent(self) -> bool:
        """A handle to a whole GPU that has MIG enabled."""
        return self.handle.key is None and self.gpu.mig_enabled

    def dev(self) -> Device:
        assert self.device is not None
        return self.tick.devices[self.device]

    def gpu_devices(self) -> list[int]:
        """Indices of every device (MIG devices, or the whole GPU) on this GPU."""
        return self.tick.by_gpu.get(self.gpu.index, [])


class FakeNvml:
    """libnvidia-ml for one simulated node."""

    def __init__(self, node: Node, loads_at: float) -> None:
        self.node = node
        self.runtime: NodeRuntime = node.runtime
        self.lock = self.runtime.lock
        self.init_count = 0
        self.calls = 0
        self.loads_at = loads_at
        self._symbols: dict[str, Symbol] = {}
        self._handles: dict[int, Handle] = {}
        self._gpu_handles: dict[int, DeviceHandle] = {}
        self._mig_handles: dict[tuple[int, int, str], DeviceHandle] = {}
        self._gi_handles: dict[tuple[int, int, int], GpuInstanceHandle] = {}
        self._ci_handles: dict[tuple[int, int, int, int], ComputeInstanceHandle] = {}

    def __getattr__(self, name: str) -> Symbol:
        impl = SYMBOLS.get(name)
        if impl is None or name.startswith("_") or not self.node.driver.exports(name):
            raise AttributeError(f"libnvidia-ml {self.node.driver.version} (simulated) has no symbol {name}")
        found = self._symbols.get(name)
        if found is None:
            found = self._symbols[name] = Symbol(self, name, impl)
        return found

    def __repr__(self) -> str:
        return f"<simulated libnvidia-ml.so.1 for node {self.node.name}>"

    # --- handles --------------------------------------------------------------------------------------------------

    def _keep(self, handle: Handle) -> Handle:
        self._handles[handle.address] = handle
        return handle

    def gpu_handle(self, gpu: Gpu) -> DeviceHandle:
        found = self._gpu_handles.get(gpu.index)
        if found is None:
            found = DeviceHandle(gpu, None, 0)
            self._gpu_handles[gpu.index] = found
            self._keep(found)
        return found

    def mig_handle(self, gpu: Gpu, key: str) -> DeviceHandle:
        k = (gpu.index, gpu.generation, key)
        found = self._mig_handles.get(k)
        if found is None:
            self._forget_destroyed(gpu)
            found = DeviceHandle(gpu, key, gpu.generation)
            self._mig_handles[k] = found
            self._keep(found)
        return found

    def gi_handle(self, gpu: Gpu, gi_id: int) -> GpuInstanceHandle:
        k = (gpu.index, gpu.generation, gi_id)
        found = self._gi_handles.get(k)
        if found is None:
            self._forget_destroyed(gpu)
            found = GpuInstanceHandle(gpu, gi_id, gpu.generation)
            self._gi_handles[k] = found
            self._keep(found)
        return found

    def ci_handle(self, gpu: Gpu, gi_id: int, ci_id: int) -> ComputeInstanceHandle:
        k = (gpu.index, gpu.generation, gi_id, ci_id)
        found = self._ci_handles.get(k)
        if found is None:
            self._forget_destroyed(gpu)
            found = ComputeInstanceHandle(gpu, gi_id, ci_id, gpu.generation)
            self._ci_handles[k] = found
            self._keep(found)
        return found

    def _forget_destroyed(self, gpu: Gpu) -> None:
        """Drop the handles of MIG devices and instances this GPU has re-created since (as NVML frees them): using
        one again is INVALID_ARGUMENT either way, and keeping them grew memory with every MIG reconfiguration."""
        tables: list[dict[Any, Any]] = [self._mig_handles, self._gi_handles, self._ci_handles]
        for table in tables:
            for k in [k for k in table if k[0] == gpu.index and k[1] != gpu.generation]:
                del self._handles[table.pop(k).address]

    def new_sample(self) -> GpmSampleHandle:
        sample = GpmSampleHandle()
        self._keep(sample)
        return sample

    def free(self, handle: Any) -> None:
        found = self._handles.get(address(handle))
        if not isinstance(found, GpmSampleHandle):
            raise Fail(ERROR_INVALID_ARGUMENT)
        del self._handles[found.address]

    def lookup(self, handle: Any) -> Handle | None:
        return self._handles.get(address(handle))

    def kernel_mismatch(self) -> bool:
        """The loaded kernel module is not this library's driver (``drivers.upgrade_kernel_module``)."""
        module = self.node.kernel_module
        return module is not None and module != self.node.driver.version

    def check_privilege(self, function: str, t: Target | None = None) -> None:
        """NVML_ERROR_NO_PERMISSION where an unprivileged caller is refused (``exporter.simulate.drivers``)."""
        if self.node.privileged:
            return
        if function in UNPRIVILEGED_ALWAYS or (function in UNPRIVILEGED_PARENT and t is not None and t.mig_parent):
            raise Fail(ERROR_NO_PERMISSION)

    # --- resolving with faults ------------------------------------------------------------------------------------

    def _faults(self, gpu: Gpu, parent: bool) -> None:
        faults = self.node.faults
        if gpu.lost:
            raise Fail(ERROR_GPU_IS_LOST)
        if not faults.rates:
            return
        if faults.draw(FaultKind.GPU_LOST):
            gpu.lost = True
            raise Fail(ERROR_GPU_IS_LOST)
        if faults.draw(FaultKind.UNKNOWN):
            raise Fail(ERROR_UNKNOWN)
        if faults.draw(FaultKind.TIMEOUT):
            raise Fail(ERROR_TIMEOUT)
        if parent and gpu.mig_enabled and faults.draw(FaultKind.MIG_RECONFIGURE):
            gpu.recreate_instances()

    def device(self, handle: Any) -> Target:
        """Resolve a device handle (GPU or MIG device), applying faults; ``Fail`` for a bad or stale handle."""
        found = self._handles.get(address(handle))
        if not isinstance(found, DeviceHandle):
            raise Fail(ERROR_INVALID_ARGUMENT)
        gpu = found.gpu
        self._faults(gpu, parent=found.key is None)
        tick = self.runtime.state()
        if found.key is None:
            index = None if gpu.mig_enabled else self.runtime.device_index(f"{gpu.node}/{gpu.index}")
            return Target(found, gpu, tick, index)
        if found.generation != gpu.generation or not gpu.mig_enabled:
            raise Fail(ERROR_INVALID_ARGUMENT)  # the MIG device was destroyed (re-created since)
        index = self.runtime.device_index(found.key)
        if index is None:
            raise Fail(ERROR_INVALID_ARGUMENT)
        return Target(found, gpu, tick, index)

    def gpu_instance(self, handle: Any) -> tuple[Gpu, Any]:
        found = self._handles.get(address(handle))
        if not isinstance(found, GpuInstanceHandle):
            raise Fail(ERROR_INVALID_ARGUMENT)
        self._faults(found.gpu, parent=False)
        gi = found.gpu.instance_by_id(found.gi_id)
        if gi is None or found.generation != found.gpu.generation:
            raise Fail(ERROR_INVALID_ARGUMENT)
        return found.gpu, gi

    def compute_instance(self, handle: Any) -> tuple[Gpu, Any, Any]:
        found = self._handles.get(address(handle))
        if not isinstance(found, ComputeInstanceHandle):
            raise Fail(ERROR_INVALID_ARGUMENT)
        self._faults(found.gpu, parent=False)
        gi = found.gpu.instance_by_id(found.gi_id)
        if gi is None or found.generation != found.gpu.generation:
            raise Fail(ERROR_INVALID_ARGUMENT)
        ci = next((c for c in gi.compute_instances if c.id == found.ci_id), None)
        if ci is None:
            raise Fail(ERROR_INVALID_ARGUMENT)
        return found.gpu, gi, ci
