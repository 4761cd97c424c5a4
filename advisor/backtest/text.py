"""The backtest as plain text: one paragraph per origin, the workloads that met trouble, the new workloads.

``slicewise backtest --format text`` prints this; the reports lay out the same figures from ``BacktestResult``.
"""

from __future__ import annotations

from advisor.backtest.model import BacktestResult, OriginResult, WorkloadReplay

MAX_ROWS = 15  # workloads listed per origin; backtest.json has them all


def troubled(o: OriginResult, limit: int | None = MAX_ROWS) -> list[WorkloadReplay]:
    """Workloads with OOM, time-slicing OOM, slowed, contended or queued samples: worst first."""
    rows = [
        w
        for w in o.workloads
        if w.oom_samples or w.timeslice_oom_samples or w.slowed_samples or w.contended_samples or w.queued_samples
    ]
    rows.sort(
        key=lambda w: (
            -(w.oom_samples + w.timeslice_oom_samples),
            -w.queued_samples,
            -w.slowed_samples,
            -w.contended_samples,
            w.workload,
        )
    )
    return rows if limit is None else rows[:limit]


def render_text(result: BacktestResult) -> str:
    lines = [f"slicewise backtest: {result.source}", ""]
    if not result.origins:
        lines.append(result.headline)
        return "\n".join(lines) + "\n"
    for o in result.origins:
        t = o.totals
        lines.append(f"Origin {o.origin:%Y-%m-%d %H:%M} UTC: {o.sentence}.")
        modes = ", ".join(f"{mode} {n}" for mode, n in o.modes.items())
        lines.append(
            f"  {len(o.workloads)} workloads advised ({modes}); {t.samples:,} samples replayed at a {o.step_s} s step"
            f" up to {o.replay_end:%Y-%m-%d %H:%M} UTC."
        )
        lines.append(
            f"  OOM over a MIG/MPS limit: {t.oom_samples} samples; time-sliced/MPS GPUs over their memory: "
            f"{t.timeslice_oom_gpu_steps} GPU-steps ({t.timeslice_oom_samples} tenant samples)."
        )
        lines.append(
            f"  Slowed (compute over the grant): {t.slowed_samples} of {t.measured_samples:,} measured samples; "
            f"time-sliced busy samples that met another busy tenant: {t.contended_samples} of "
            f"{t.timeslice_busy_samples}; samples that found no free slot: {t.queued_samples}."
        )
        lines.append(
            f"  GPUs: {t.gpus_needed} needed by the plan; before the origin {t.gpus_before} in use; after it "
            f"{t.gpus_in_use} in use, at most {t.gpus_busy_at_once_max} holding a workload at once."
        )
        rows = troubled(o)
        if rows:
            lines.append(
                "  workload                                 decision          samples  OOM  ts-OOM  slowed  "
                "contended  queued"
            )
            for w in rows:
                decision = w.mode + (f" {w.profile}" if w.profile else "")
                lines.append(
                    f"  {w.workload[:40]:<40} {decision[:17]:<17} {w.samples:>7} {w.oom_samples:>4} "
                    f"{w.timeslice_oom_samples:>7} {w.slowed_samples:>7} {w.contended_samples:>10} "
                    f"{w.queued_samples:>7}"
                )
            more = len(troubled(o, None)) - len(rows)
            if more > 0:
                lines.append(f"  and {more} more (backtest.json lists every workload)")
        if o.new:
            names = ", ".join(f"{n.workload} ({n.samples} samples)" for n in o.new[:MAX_ROWS])
            extra = f" and {len(o.new) - MAX_ROWS} more" if len(o.new) > MAX_ROWS else ""
            lines.append(f"  New after the origin, no advice for them: {names}{extra}.")
        lines.append("")
    return "\n".join(lines)
