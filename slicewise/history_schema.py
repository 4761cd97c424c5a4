"""The history file: the contract between whatever records GPU usage and the advisor (DESIGN.md, "History file").

Long format, one row per sample of one workload on one device, in Parquet or CSV with the same columns. The
simulator writes it, the advisor reads and validates it; both take the column names and types from here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from slicewise.errors import BadInput


class Sharing(StrEnum):
    """How a workload ran in a sample. Derived from what NVML showed, never configured."""

    EXCLUSIVE = "exclusive"  # alone on a whole, non-MIG GPU
    MIG = "mig"  # on a MIG device
    MPS = "mps"  # an MPS client
    TIMESLICE = "timeslice"  # more than one workload on the same non-MIG GPU in the same sample


# column -> logical type; "timestamp" is a UTC timestamp in Parquet and epoch seconds (or ISO 8601) in CSV
REQUIRED_COLUMNS: dict[str, str] = {
    "timestamp": "timestamp",
    "workload": "string",
    "node": "string",
    "gpu_uuid": "string",
    "gpu_model": "string",
    "mig_profile": "string",  # empty when not on MIG
    "sharing": "string",  # one of Sharing
    "memory_used_bytes": "int64",
    "sm_active_gpu_fraction": "float64",  # 0..1 of the whole GPU's SMs
}
OPTIONAL_COLUMNS: dict[str, str] = {
    "namespace": "string",
    "process_count": "int64",
    # a row that stands for a bin of samples (Prometheus read at a coarse step): sm_active_gpu_fraction is the bin's
    # mean and this its largest value, from which the compute quantiles are taken (advisor/features.py)
    "sm_active_peak_gpu_fraction": "float64",
    "bin_samples": "int64",  # how many samples such a row stands for (absent: each row is its bin's largest)
}
PEAK_COLUMN = "sm_active_peak_gpu_fraction"
BIN_SAMPLES_COLUMN = "bin_samples"

# The simulator knows each workload's true archetype and writes it beside the history as <file>.truth.csv.
TRUTH_SUFFIX = ".truth.csv"
TRUTH_COLUMNS: tuple[str, ...] = ("workload", "archetype")


def truth_path(history: Path) -> Path:
    """Where the truth file of a history file lives: ``fleet.parquet`` -> ``fleet.parquet.truth.csv``."""
    return history.with_name(history.name + TRUTH_SUFFIX)


def file_format(path: Path) -> str:
    """``parquet`` or ``csv``, by extension (``.csv.gz`` counts as CSV)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if ".csv" in suffixes:
        return "csv"
    raise BadInput(f"{path}: unknown history format (use .parquet or .csv)")
