"""Driver-published MIG profile tables for the advisor: from Prometheus, from a file beside a history file, or from
an exporter's /metrics text.

The exporter publishes, per GPU model, the table its driver reports (``slicewise_mig_profile_info`` with the ids,
slices and placements as labels, ``slicewise_mig_profile_memory_bytes``, ``slicewise_mig_profile_sm_count``). A
history file may carry the same table beside it, as ``<history>.mig-profiles.yaml`` (or ``.json``), in the form of
``slicewise.catalogue.tables.to_dict``. :func:`learn` turns the tables into catalogue models for the GPUs the
catalogue lacks, and into warnings where the catalogue and the driver disagree (the catalogue then still applies).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from slicewise.catalogue import GpuModel, resolve_model
from slicewise.catalogue.tables import (
    PROFILE_INFO_LABELS,
    DriverProfile,
    DriverTable,
    disagreements,
    from_dict,
    to_dict,
    to_model,
)
from slicewise.errors import BadInput

if TYPE_CHECKING:
    from advisor.history.prometheus import PrometheusClient, Sample

SUFFIXES = (".mig-profiles.yaml", ".mig-profiles.json")
_INFO_LABELS = PROFILE_INFO_LABELS
INFO_QUERY = f"max by ({', '.join(_INFO_LABELS)}) (slicewise_mig_profile_info)"
MEMORY_QUERY = "max by (model, profile) (slicewise_mig_profile_memory_bytes)"
SM_QUERY = "max by (model, profile) (slicewise_mig_profile_sm_count)"


@dataclass(frozen=True)
class Learned:
    """What the driver tables add to the catalogue for one advice run."""

    models: tuple[GpuModel, ...]  # for GPU models the catalogue lacks
    warnings: tuple[str, ...]  # where a driver's table and the catalogue disagree, one sentence each


def learn(tables: Iterable[DriverTable]) -> Learned:
    models: list[GpuModel] = []
    warnings: list[str] = []
    for table in tables:
        known = resolve_model(table.model)
        if known is None:
            models.append(to_model(table))
            continue
        found = disagreements(table, known)
        if found:
            warnings.append(
                "The driver's MIG profile table differs from slicewise's catalogue (the catalogue is used): "
                + "; ".join(found)
                + "."
            )
    return Learned(tuple(models), tuple(warnings))


# --- beside a history file ------------------------------------------------------------------------------------------


def beside(history: Path) -> Path | None:
    """The table file beside a history file, if there is one."""
    for suffix in SUFFIXES:
        candidate = history.with_name(history.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_beside(history: Path) -> list[DriverTable]:
    """The tables in ``<history>.mig-profiles.yaml`` (or ``.json``); none when there is no such file."""
    path = beside(history)
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the MIG profile tables ({exc})") from None
    return from_dict(raw, str(path))


def write_beside(history: Path, tables: Sequence[DriverTable]) -> Path:
    """Write ``<history>.mig-profiles.yaml`` (whole, or not at all: a temporary file renamed into place)."""
    path = history.with_name(history.name + SUFFIXES[0])
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(to_dict(tables), sort_keys=False), encoding="utf-8")
    partial.replace(path)
    return path


# --- from Prometheus or an exporter's exposition --------------------------------------------------------------------


def from_prometheus(client: PrometheusClient, at: datetime) -> list[DriverTable]:
    """The tables the exporters publish, as Prometheus has them at ``at`` (none where no exporter publishes one)."""
    return _tables(
        [s.labels for s in client.query(INFO_QUERY, at)],
        _values(client.query(MEMORY_QUERY, at)),
        _values(client.query(SM_QUERY, at)),
    )


def from_exposition(text: str) -> list[DriverTable]:
    """The tables in an exporter's /metrics text (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    info: list[dict[str, str]] = []
    memory: dict[tuple[str, str], float] = {}
    sms: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.labels.get("model", ""), sample.labels.get("profile", ""))
            if sample.name == "slicewise_mig_profile_info":
                info.append(dict(sample.labels))
            elif sample.name == "slicewise_mig_profile_memory_bytes":
                memory[key] = sample.value
            elif sample.name == "slicewise_mig_profile_sm_count":
                sms[key] = sample.value
    return _tables(info, memory, sms)


def _values(samples: Iterable[Sample]) -> dict[tuple[str, str], float]:
    return {(s.labels.get("model", ""), s.labels.get("profile", "")): s.value for s in samples}


def _tables(
    info: Iterable[dict[str, str]], memory: dict[tuple[str, str], float], sms: dict[tuple[str, str], float]
) -> list[DriverTable]:
    by_model: dict[str, list[DriverProfile]] = {}
    pci: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for labels in info:
        model, name = labels.get("model", ""), labels.get("profile", "")
        key = (model, name)
        if not model or not name or key in seen or key not in memory or key not in sms:
            continue  # half a table (a scrape between the three series) is left for the next run
        seen.add(key)
        try:
            profile = DriverProfile(
                name=name,
                profile_id=int(labels["profile_id"]),
                nvml_enum=int(labels.get("nvml_enum") or -1),
                compute_slices=int(labels["compute_slices"]),
                instances_max=int(labels["instances_max"]),
                memory_mib=int(memory[key]) // (1024 * 1024),
                sm_count=int(sms[key]),
                copy_engines=int(labels.get("copy_engines") or 0),
                decoders=int(labels.get("decoders") or 0),
                jpeg=int(labels.get("jpeg") or 0),
                ofa=int(labels.get("ofa") or 0),
                placement_starts=tuple(int(s) for s in labels.get("placement_starts", "").split(",") if s),
                placement_size=int(labels.get("placement_size") or 0),
            )
        except (KeyError, ValueError) as exc:
            raise BadInput(f"slicewise_mig_profile_info for {model} {name}: a malformed label ({exc})") from None
        by_model.setdefault(model, []).append(profile)
        pci.setdefault(model, labels.get("pci_device_id", ""))
    return [
        DriverTable(model, pci[model], tuple(sorted(profiles, key=lambda p: p.nvml_enum)))
        for model, profiles in sorted(by_model.items())
    ]
