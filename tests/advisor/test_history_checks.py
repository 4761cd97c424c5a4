"""The history reader's checks against the GPU catalogue (issue 14): MIG profiles the GPU has, memory within its
total; for a GPU the catalogue does not know, the driver's MIG table beside the file, else a warning."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd
import pytest

from advisor.history import read_history
from advisor.history.profiles import write_beside
from slicewise import catalogue
from slicewise.catalogue.tables import from_model
from slicewise.errors import BadInput

FUTURE = "NVIDIA B999"  # no catalogue knows it


def _history(path: Path, model: str, profile: str, memory: int = 1 << 30) -> Path:
    pd.DataFrame(
        {
            "timestamp": [1795370400, 1795370460],
            "workload": ["team/a", "team/a"],
            "node": ["node-1", "node-1"],
            "gpu_uuid": ["GPU-1", "GPU-1"],
            "gpu_model": [model, model],
            "mig_profile": [profile, profile],
            "sharing": ["mig", "mig"],
            "memory_used_bytes": [memory, memory],
            "sm_active_gpu_fraction": [0.1, 0.2],
        }
    ).to_csv(path, index=False)
    return path


def test_a_profile_of_another_model_is_named_with_the_models_own(tmp_path: Path) -> None:
    path = _history(tmp_path / "h.csv", "NVIDIA H100 80GB HBM3", "1g.5gb")
    with pytest.raises(BadInput) as error:
        read_history(path)
    message = str(error.value)
    assert "row 1 (line 2), column 'mig_profile'" in message and "'1g.5gb'" in message and "3g.40gb" in message
    assert len(read_history(_history(tmp_path / "ok.csv", "NVIDIA H100 80GB HBM3", "7g.80gb"))) == 2


def test_an_unknown_gpu_is_checked_against_its_drivers_table_beside_the_file(tmp_path: Path) -> None:
    table = dataclasses.replace(from_model(catalogue.model("NVIDIA B200")), model=FUTURE, pci_device_id="0x3FFF10DE")
    good = _history(tmp_path / "good.csv", FUTURE, "1g.23gb")
    write_beside(good, [table])
    assert len(read_history(good)) == 2
    bad = _history(tmp_path / "bad.csv", FUTURE, "1g.10gb")
    write_beside(bad, [table])
    with pytest.raises(BadInput, match=r"column 'mig_profile': the NVIDIA B999 has no MIG profile '1g.10gb'"):
        read_history(bad)


def test_an_unknown_gpu_without_a_table_is_read_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _history(tmp_path / "h.csv", FUTURE, "1g.30gb", memory=500 << 30)  # no total known to compare with
    with caplog.at_level(logging.WARNING):
        assert len(read_history(path)) == 2
    assert f"GPU model '{FUTURE}' is not in the catalogue" in caplog.text


def test_memory_above_the_gpus_total_is_refused(tmp_path: Path) -> None:
    path = _history(tmp_path / "h.csv", "NVIDIA A100-SXM4-40GB", "", memory=41 << 30)
    with pytest.raises(BadInput, match=r"row 1 \(line 2\), column 'memory_used_bytes': more memory than the NVIDIA"):
        read_history(path)
