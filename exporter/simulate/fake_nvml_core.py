"""The machinery of the fake libnvidia-ml: the symbol registry, return codes, and reading/writing ctypes arguments.

pynvml calls ``getattr(nvmlLib, "nvmlDeviceGetName")(handle, buffer, c_uint(size))`` and checks the returned
``nvmlReturn_t``. Each simulated C function here is a Python function registered under its C name with
``@symbol``; it receives the same ctypes arguments the real one would (``byref`` out-parameters, structs, arrays,
opaque handles), writes its answers into them, and returns a code — or raises ``Fail(code)``, which the dispatcher
turns into that code. Handles are addresses of small buffers the library owns, as real NVML's are pointers.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.simulate.fake_nvml import FakeNvml

# nvmlReturn_t values (nvml.h); pynvml has the same numbers.
SUCCESS = 0
ERROR_UNINITIALIZED = 1
ERROR_INVALID_ARGUMENT = 2
ERROR_NOT_SUPPORTED = 3
ERROR_NO_PERMISSION = 4
ERROR_ALREADY_INITIALIZED = 5
ERROR_NOT_FOUND = 6
ERROR_INSUFFICIENT_SIZE = 7
ERROR_DRIVER_NOT_LOADED = 9
ERROR_TIMEOUT = 10
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_LIB_RM_VERSION_MISMATCH = 18
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_IN_USE = 19
ERROR_ARGUMENT_VERSION_MISMATCH = 25
ERROR_UNKNOWN = 999

ERROR_STRINGS = {
    SUCCESS: "Success",
    ERROR_UNINITIALIZED: "Uninitialized",
    ERROR_INVALID_ARGUMENT: "Invalid Argument",
    ERROR_NOT_SUPPORTED: "Not Supported",
    ERROR_NO_PERMISSION: "Insufficient Permissions",
    ERROR_ALREADY_INITIALIZED: "Already Initialized",
    ERROR_NOT_FOUND: "Not Found",
    ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    ERROR_TIMEOUT: "Timeout",
    ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    ERROR_GPU_IS_LOST: "GPU is lost",
    ERROR_IN_USE: "In use by another client",
    ERROR_ARGUMENT_VERSION_MISMATCH: "Argument version mismatch",
    ERROR_UNKNOWN: "Unknown Error",
}

VALUE_NOT_AVAILABLE_ULL = (1 << 64) - 1
INVALID_ID = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId of a process outside MIG

Impl = Callable[..., Any]  # returns an nvmlReturn_t (nvmlErrorString: the text)
SYMBOLS: dict[str, Impl] = {}
NEEDS_NO_INIT: set[str] = set()


class Fail(Exception):
    """Raised inside a simulated function: the call returns ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def symbol(*names: str, init: bool = True) -> Callable[[Impl], Impl]:
    """Register a simulated C function under one or more exported names."""

    def register(fn: Impl) -> Impl:
        for name in names:
            SYMBOLS[name] = fn
            if not init:
                NEEDS_NO_INIT.add(name)
        return fn

    return register


_CARG = type(ctypes.byref(ctypes.c_int()))


def target(arg: Any) -> Any:
    """The ctypes object behind an out-parameter: ``byref(x)`` -> x, ``pointer(x)`` -> x, else the object itself."""
    if isinstance(arg, _CARG):
        return arg._obj  # type: ignore[attr-defined]
    if isinstance(arg, ctypes._Pointer):
        return arg.contents
    return arg


def value(arg: Any) -> int:
    """An integer argument passed as a Python int or a ctypes scalar (``c_uint(3)``, ``_nvmlClockType_t(1)``)."""
    if isinstance(arg, int):
        return arg
    if arg is None:
        return 0
    return int(arg.value)


def address(handle: Any) -> int:
    """The pointer value of an opaque handle (``c_nvmlDevice_t``, ``c_nvmlGpuInstance_t``, ...); 0 for NULL."""
    try:
        return ctypes.addressof(handle.contents)
    except ValueError:  # NULL pointer
        return 0
    except AttributeError:
        if isinstance(handle, int):
            return handle
        if isinstance(handle, ctypes.c_void_p):
            return handle.value or 0
        if isinstance(handle, _CARG):
            return address(handle._obj)  # type: ignore[attr-defined]
        return 0


def store_pointer(out: Any, value_: int) -> None:
    """Write a pointer value into a pointer-typed out-parameter (``byref(c_nvmlDevice_t())``)."""
    obj = target(out)
    ctypes.c_void_p.from_address(ctypes.addressof(obj)).value = value_


def store_pointer_at(array: Any, index: int, value_: int) -> None:
    """Write a pointer into element ``index`` of an array of handles."""
    obj = target(array)
    ctypes.c_void_p.from_address(ctypes.addressof(obj) + index * ctypes.sizeof(ctypes.c_void_p)).value = value_


def store_text(buffer: Any, length: Any, text: str) -> None:
    """Copy a NUL-terminated string into a caller's buffer of ``length`` bytes, as NVML does (or fail if short)."""
    data = text.encode()
    if len(data) + 1 > value(length):
        raise Fail(ERROR_INSUFFICIENT_SIZE)
    ctypes.memmove(buffer, data + b"\0", len(data) + 1)


def store(out: Any, value_: int | float) -> None:
    target(out).value = value_


_STRUCT_SET = ctypes.Structure.__setattr__


def put(struct: Any, **fields: Any) -> None:
    """Set struct fields directly, skipping pynvml's Python-level ``__setattr__`` on its printable structs (the
    fields are plain numbers, so nothing it converts applies); it is the bulk of a fill otherwise."""
    for name, value_ in fields.items():
        _STRUCT_SET(struct, name, value_)


def check_version(struct: Any, expected: int) -> None:
    if int(struct.version) != expected:
        raise Fail(ERROR_ARGUMENT_VERSION_MISMATCH)


class Symbol:
    """What ``getattr(nvmlLib, name)`` returns: callable like a ctypes function, with settable ``restype`` etc."""

    def __init__(self, lib: FakeNvml, name: str, impl: Impl) -> None:
        self.lib = lib
        self.name = name
        self.impl = impl
        self.needs_init = name not in NEEDS_NO_INIT
        self.restype: Any = ctypes.c_int
        self.argtypes: Any = None
        self.errcheck: Any = None
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:
        lib = self.lib
        with lib.lock:
            lib.calls += 1
            if self.needs_init and lib.init_count <= 0:
                return ERROR_UNINITIALIZED
            if self.needs_init and lib.kernel_mismatch():
                return ERROR_DRIVER_NOT_LOADED
            try:
                return self.impl(lib, *args)
            except Fail as failure:
                return failure.code
