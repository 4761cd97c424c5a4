"""The --out directory: DESIGN.md's layout, metrics Prometheus can parse, and a failed run leaves the previous
report exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import advisor.report
from advisor import output
from advisor.model import Recommendation, Window
from advisor.pipeline import recommend_from_features
from slicewise.errors import JobFailed
from tests.advisor.plan.fleet_fixtures import A100, H100, mixed_fleet

LAYOUT = {
    "recommendation.json",
    "report.html",
    "report.md",
    "configs/mig-parted.yaml",
    "configs/device-plugin.yaml",
    "configs/resource-requests.yaml",
    "configs/mig-parted-configmap.yaml",
    "configs/gpu-operator-values.yaml",
    "configs/rollout.md",
    "configs/rollout.json",
    "configs/nos.yaml",
    "advisor.prom",
}


@pytest.fixture(scope="module")
def rec() -> Recommendation:
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    return recommend_from_features(
        mixed_fleet(3),
        window=window,
        source="fleet.parquet",
        gpus_now={H100: 30, A100: 3},
        generated_at=datetime(2026, 11, 15, 6, 0, tzinfo=UTC),
    )


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_writes_the_design_layout(rec: Recommendation, tmp_path: Path) -> None:
    written = output.write_out(rec, tmp_path / "out")
    files = _files(tmp_path / "out")
    assert set(files) == LAYOUT == {str(p.relative_to(tmp_path / "out")) for p in written}
    assert Recommendation.from_json(files["recommendation.json"]) == rec
    assert files["configs/mig-parted.yaml"].decode() == rec.configs.mig_parted
    assert yaml.safe_load(files["configs/device-plugin.yaml"])["kind"] == "ConfigMap"
    assert files["report.html"].lstrip().lower().startswith(b"<!doctype html")
    assert b"GPU" in files["report.md"]


def test_metrics_have_the_design_names_and_labels(rec: Recommendation) -> None:
    families = {f.name: f for f in text_string_to_metric_families(output.advisor_metrics(rec).decode())}
    gpus = {(s.labels["state"], s.labels["gpu_model"]): s.value for s in families["slicewise_advisor_gpus"].samples}
    for m in rec.plan.models:
        assert gpus[("now", m.gpu_model)] == m.gpus_now
        assert gpus[("needed", m.gpu_model)] == m.gpus_needed
        assert gpus[("lower_bound", m.gpu_model)] == m.gpus_lower_bound
    info = families["slicewise_advisor_workload_decision_info"].samples
    assert len(info) == len(rec.workloads)
    assert {frozenset(s.labels) for s in info} == {frozenset({"workload", "class", "gpu_model", "mode", "profile"})}
    by_workload = {s.labels["workload"]: s for s in info}
    for w in rec.workloads:
        labels = by_workload[w.workload].labels
        assert (labels["mode"], labels["profile"], labels["class"]) == (
            w.decision.mode.value,
            w.decision.profile or "",
            w.class_id or "",
        )
    limits = {s.labels["workload"]: s.value for s in families["slicewise_advisor_workload_memory_limit_bytes"].samples}
    assert limits == {w.workload: float(w.decision.memory_limit_bytes) for w in rec.workloads}
    (last,) = families["slicewise_advisor_last_run_timestamp_seconds"].samples
    assert last.value == rec.generated_at.timestamp()


def test_a_run_that_fails_while_rendering_leaves_the_previous_report(
    rec: Recommendation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    output.write_out(rec, out)
    before = _files(out)

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("chart backend crashed")

    monkeypatch.setattr(advisor.report, "render_html", broken)
    with pytest.raises(RuntimeError):
        output.write_out(rec, out)
    assert _files(out) == before


def test_a_run_that_fails_while_writing_renames_nothing(
    rec: Recommendation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    output.write_out(rec, out)
    before = _files(out)
    real_write = Path.write_bytes
    calls = {"n": 0}

    def fail_on_fourth(self: Path, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_on_fourth)
    with pytest.raises(JobFailed, match="No space left"):
        output.write_out(rec, out)
    monkeypatch.undo()
    assert _files(out) == before  # no file replaced, and no temporary left behind


def test_previous_recommendation_is_read_back_or_ignored_when_damaged(rec: Recommendation, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert output.read_previous(out) is None
    output.write_out(rec, out)
    assert output.read_previous(out) == rec
    (out / "recommendation.json").write_text("{ not json")
    assert output.read_previous(out) is None


def test_out_must_be_a_directory(rec: Recommendation, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(JobFailed, match="not a directory"):
        output.write_files(tmp_path / "file", {"a.txt": b"x"})
