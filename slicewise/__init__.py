"""slicewise: measure how workloads use shared NVIDIA GPUs and recommend how to share them.

This small package holds what both halves of slicewise need: the ``slicewise`` command, the GPU and MIG
catalogue (read by the simulator and the advisor), the history-file schema (written by the simulator, read
by the advisor) and the error types that map to exit codes.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slicewise")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
