"""Simulated NVML: MIG geometry as a reader sees it — GPU-instance and compute-instance profiles, placements,
instances and their info. Creating or destroying instances needs root on a real node; the simulated exporter is
not, so those calls answer NVML_ERROR_NO_PERMISSION (change geometry with ``Gpu.configure_mig`` instead).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

from exporter.simulate.fake_nvml_core import (
    ERROR_INSUFFICIENT_SIZE,
    ERROR_INVALID_ARGUMENT,
    ERROR_NO_PERMISSION,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    SUCCESS,
    Fail,
    check_version,
    store,
    store_pointer,
    store_pointer_at,
    symbol,
    target,
    value,
)
from exporter.simulate.topology import CI_PROFILE_ENUM, GpuInstance
from slicewise.catalogue import MigProfile, Placement, check_geometry
from slicewise.errors import BadInput

if TYPE_CHECKING:
    from exporter.simulate.fake_nvml import FakeNvml, Target
    from exporter.simulate.topology import Gpu

NVML_GPU_INSTANCE_PROFILE_INFO_V2 = 0x02000098
NVML_COMPUTE_INSTANCE_PROFILE_INFO_V2 = 0x02000088
GPU_INSTANCE_PROFILE_COUNT = 0x12
COMPUTE_INSTANCE_PROFILE_COUNT = 0x9
_SLICES_OF_CI_ENUM = {enum: slices for slices, enum in CI_PROFILE_ENUM.items()}


def _mig_capable(t: Target) -> None:
    if t.is_mig_device:
        raise Fail(ERROR_INVALID_ARGUMENT)
    if not t.gpu.model.profiles:
        raise Fail(ERROR_NOT_SUPPORTED)


def _profile_by_enum(t: Target, enum: int) -> MigProfile:
    if enum >= GPU_INSTANCE_PROFILE_COUNT:
        raise Fail(ERROR_INVALID_ARGUMENT)
    prof = t.gpu.model.profile_by_enum(enum)
    if prof is None:
        raise Fail(ERROR_NOT_SUPPORTED)
    return prof


def _fill_gi_profile(info: Any, prof: MigProfile, with_name: bool) -> None:
    info.id = prof.smi_id
    info.isP2pSupported = 0
    info.sliceCount = prof.compute_slices
    info.instanceCount = prof.max_count
    info.multiprocessorCount = prof.sm_count
    info.copyEngineCount = prof.copy_engines
    info.decoderCount = prof.decoders
    info.encoderCount = 0
    info.jpegCount = prof.jpeg
    info.ofaCount = prof.ofa
    info.memorySizeMB = prof.memory_mib
    if with_name:
        info.name = f"MIG {prof.name}".encode()


@symbol("nvmlDeviceGetGpuInstanceProfileInfo")
def _gi_profile_v1(lib: FakeNvml, handle: Any, profile: Any, out: Any) -> int:
    t = lib.device(handle)
    _mig_capable(t)
    _fill_gi_profile(target(out), _profile_by_enum(t, value(profile)), with_name=False)
    return SUCCESS


@symbol("nvmlDeviceGetGpuInstanceProfileInfoV")
def _gi_profile_v2(lib: FakeNvml, handle: Any, profile: Any, out: Any) -> int:
    info = target(out)
    check_version(info, NVML_GPU_INSTANCE_PROFILE_INFO_V2)
    t = lib.device(handle)
    _mig_capable(t)
    _fill_gi_profile(info, _profile_by_enum(t, value(profile)), with_name=True)
    return SUCCESS


@symbol("nvmlDeviceGetGpuInstanceProfileInfoByIdV")
def _gi_profile_by_id(lib: FakeNvml, handle: Any, profile_id: Any, out: Any) -> int:
    info = target(out)
    check_version(info, NVML_GPU_INSTANCE_PROFILE_INFO_V2)
    t = lib.device(handle)
    _mig_capable(t)
    prof = t.gpu.model.profile_by_smi_id(value(profile_id))
    if prof is None:
        raise Fail(ERROR_INVALID_ARGUMENT)
    _fill_gi_profile(info, prof, with_name=True)
    return SUCCESS


@symbol("nvmlDeviceGetGpuInstancePossiblePlacements", "nvmlDeviceGetGpuInstancePossiblePlacements_v2")
def _gi_placements(lib: FakeNvml, handle: Any, profile: Any, placements: Any, count: Any) -> int:
    """Every placement the profile allows on this GPU, occupied or not (as NVML documents)."""
    t = lib.device(handle)
    _mig_capable(t)
    prof = _profile_by_enum(t, value(profile))
    n = target(count)
    if placements is None:
        n.value = len(prof.starts)
        return SUCCESS
    array = target(placements)
    if n.value < len(prof.starts) and n.value != 0:
        n.value = len(prof.starts)
        raise Fail(ERROR_INSUFFICIENT_SIZE)
    for i, start in enumerate(prof.starts):
        array[i].start = start
        array[i].size = prof.size
    n.value = len(prof.starts)
    return SUCCESS


def _existing(gpu: Gpu) -> list[Placement]:
    return [gi.placement for gi in gpu.instances] if gpu.mig_enabled else []


@symbol("nvmlDeviceGetGpuInstanceRemainingCapacity")
def _gi_remaining(lib: FakeNvml, handle: Any, profile: Any, out: Any) -> int:
    """How many more instances of the profile could be created now, placing them as the driver would."""
    t = lib.device(handle)
    _mig_capable(t)
    prof = _profile_by_enum(t, value(profile))
    placed = _existing(t.gpu)
    added = 0
    progress = True
    while progress:
        progress = False
        for start in prof.starts:
            candidate = Placement(prof, start)
            try:
                check_geometry(t.gpu.model, [*placed, candidate])
            except BadInput:
                continue
            placed.append(candidate)
            added += 1
            progress = True
            break
    store(out, added if t.gpu.mig_enabled else 0)
    return SUCCESS


def _gpu_instances(t: Target, profile: MigProfile) -> list[GpuInstance]:
    if not t.gpu.mig_enabled:
        raise Fail(ERROR_INVALID_ARGUMENT)
    return sorted((gi for gi in t.gpu.instances if gi.profile == profile), key=lambda g: g.id)


@symbol("nvmlDeviceGetGpuInstances")
def _gi_list(lib: FakeNvml, handle: Any, profile: Any, instances: Any, count: Any) -> int:
    t = lib.device(handle)
    _mig_capable(t)
    lib.check_privilege("nvmlDeviceGetGpuInstances", t)
    found = _gpu_instances(t, _profile_by_enum(t, value(profile)))
    for i, gi in enumerate(found):
        store_pointer_at(instances, i, lib.gi_handle(t.gpu, gi.id).address)
    store(count, len(found))
    return SUCCESS


@symbol("nvmlDeviceGetGpuInstanceById")
def _gi_by_id(lib: FakeNvml, handle: Any, gi_id: Any, out: Any) -> int:
    t = lib.device(handle)
    _mig_capable(t)
    lib.check_privilege("nvmlDeviceGetGpuInstanceById", t)
    if not t.gpu.mig_enabled:
        raise Fail(ERROR_INVALID_ARGUMENT)
    gi = t.gpu.instance_by_id(value(gi_id))
    if gi is None:
        raise Fail(ERROR_NOT_FOUND)
    store_pointer(out, lib.gi_handle(t.gpu, gi.id).address)
    return SUCCESS


@symbol("nvmlGpuInstanceGetInfo")
def _gi_info(lib: FakeNvml, handle: Any, out: Any) -> int:
    gpu, gi = lib.gpu_instance(handle)
    info = target(out)
    store_pointer(_field(info, "device"), lib.gpu_handle(gpu).address)
    info.id = gi.id
    info.profileId = gi.profile.smi_id
    info.placement.start = gi.placement.start
    info.placement.size = gi.profile.size
    return SUCCESS


def _field(struct: Any, name: str) -> Any:
    """A pointer-typed struct field as a ``c_void_p`` over the struct's memory, to write a handle into."""
    offset = getattr(type(struct), name).offset
    return ctypes.c_void_p.from_buffer(struct, offset)


def _ci_slices(gi: GpuInstance, enum: int) -> int:
    slices = _SLICES_OF_CI_ENUM.get(enum)
    if enum >= COMPUTE_INSTANCE_PROFILE_COUNT:
        raise Fail(ERROR_INVALID_ARGUMENT)
    if slices is None or slices > gi.profile.compute_slices:
        raise Fail(ERROR_NOT_SUPPORTED)
    return slices


def _ci_name(gi: GpuInstance, slices: int) -> str:
    if slices == gi.profile.compute_slices:
        return f"MIG {gi.profile.name}"
    return f"MIG {slices}c.{gi.profile.name}"


def _fill_ci_profile(info: Any, gi: GpuInstance, enum: int, slices: int, with_name: bool) -> None:
    prof = gi.profile
    info.id = enum
    info.sliceCount = slices
    info.instanceCount = prof.compute_slices // slices
    info.multiprocessorCount = prof.sm_count * slices // prof.compute_slices
    info.sharedCopyEngineCount = prof.copy_engines
    info.sharedDecoderCount = prof.decoders
    info.sharedEncoderCount = 0
    info.sharedJpegCount = prof.jpeg
    info.sharedOfaCount = prof.ofa
    if with_name:
        info.name = _ci_name(gi, slices).encode()


@symbol("nvmlGpuInstanceGetComputeInstanceProfileInfo")
def _ci_profile_v1(lib: FakeNvml, handle: Any, profile: Any, engine: Any, out: Any) -> int:
    _, gi = lib.gpu_instance(handle)
    enum = value(profile)
    _fill_ci_profile(target(out), gi, enum, _ci_slices(gi, enum), with_name=False)
    return SUCCESS


@symbol("nvmlGpuInstanceGetComputeInstanceProfileInfoV")
def _ci_profile_v2(lib: FakeNvml, handle: Any, profile: Any, engine: Any, out: Any) -> int:
    info = target(out)
    check_version(info, NVML_COMPUTE_INSTANCE_PROFILE_INFO_V2)
    _, gi = lib.gpu_instance(handle)
    enum = value(profile)
    _fill_ci_profile(info, gi, enum, _ci_slices(gi, enum), with_name=True)
    return SUCCESS


@symbol("nvmlGpuInstanceGetComputeInstanceRemainingCapacity")
def _ci_remaining(lib: FakeNvml, handle: Any, profile: Any, out: Any) -> int:
    _, gi = lib.gpu_instance(handle)
    slices = _ci_slices(gi, value(profile))
    free = gi.profile.compute_slices - sum(ci.slices for ci in gi.compute_instances)
    store(out, free // slices)
    return SUCCESS


@symbol("nvmlGpuInstanceGetComputeInstances")
def _ci_list(lib: FakeNvml, handle: Any, profile: Any, instances: Any, count: Any) -> int:
    gpu, gi = lib.gpu_instance(handle)
    slices = _ci_slices(gi, value(profile))
    found = [ci for ci in gi.compute_instances if ci.slices == slices]
    for i, ci in enumerate(found):
        store_pointer_at(instances, i, lib.ci_handle(gpu, gi.id, ci.id).address)
    store(count, len(found))
    return SUCCESS


@symbol("nvmlGpuInstanceGetComputeInstanceById")
def _ci_by_id(lib: FakeNvml, handle: Any, ci_id: Any, out: Any) -> int:
    gpu, gi = lib.gpu_instance(handle)
    ci = next((c for c in gi.compute_instances if c.id == value(ci_id)), None)
    if ci is None:
        raise Fail(ERROR_NOT_FOUND)
    store_pointer(out, lib.ci_handle(gpu, gi.id, ci.id).address)
    return SUCCESS


@symbol("nvmlComputeInstanceGetInfo", "nvmlComputeInstanceGetInfo_v2")
def _ci_info(lib: FakeNvml, handle: Any, out: Any) -> int:
    gpu, gi, ci = lib.compute_instance(handle)
    info = target(out)
    store_pointer(_field(info, "device"), lib.gpu_handle(gpu).address)
    store_pointer(_field(info, "gpuInstance"), lib.gi_handle(gpu, gi.id).address)
    info.id = ci.id
    info.profileId = ci.profile_enum
    info.placement.start = ci.start
    info.placement.size = ci.slices
    return SUCCESS


@symbol(
    "nvmlDeviceSetMigMode",
    "nvmlDeviceCreateGpuInstance",
    "nvmlDeviceCreateGpuInstanceWithPlacement",
    "nvmlGpuInstanceDestroy",
    "nvmlGpuInstanceCreateComputeInstance",
    "nvmlGpuInstanceCreateComputeInstanceWithPlacement",
    "nvmlComputeInstanceDestroy",
)
def _needs_root(lib: FakeNvml, *args: Any) -> int:
    return ERROR_NO_PERMISSION
