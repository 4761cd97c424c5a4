"""``slicewise demo``: the whole job on a simulated fleet, on any machine, no GPU needed.

Without ``--live`` it simulates weeks of the mixed fleet's usage (the history a real exporter and Prometheus would
have recorded), runs the advisor on it exactly as ``slicewise advise --history`` does, writes the report and the
configs, and prints a short summary. With ``--live`` it runs the exporter on the simulated nodes and a real
Prometheus scraping them (see :mod:`slicewise.live`).
"""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slicewise.progress import progress

if TYPE_CHECKING:
    from advisor.backtest.model import BacktestResult
    from advisor.model import Decision, Recommendation

HISTORY_FILE = "history/fleet.parquet"


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("slicewise-demo"),
    show_default=True,
    metavar="DIR",
    help="Where the history, report and configs go.",
)
@click.option("--live", is_flag=True, help="Run the exporter and a real Prometheus on the simulated fleet instead.")
@click.option("--scenario", default="mixed", show_default=True, help="Simulated fleet (see `slicewise simulate`).")
@click.option("--days", type=click.FloatRange(min=1), default=14, show_default=True, help="Days of history.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, live: bool, scenario: str, days: float, seed: int) -> None:
    """Simulate a mixed GPU fleet, run the advisor on its history and write the report (no GPU needed)."""
    if live:
        from exporter.simulate import build_scenario
        from slicewise import live as live_stack

        live_stack.run(scenario, build_scenario(scenario).node_names, say=click.echo)
        return
    rec, backtest, elapsed = run_demo(out, scenario=scenario, days=days, seed=seed)
    click.echo(summary(rec, out, elapsed, backtest))


def run_demo(
    out: Path, *, scenario: str = "mixed", days: float = 14, seed: int = 0
) -> tuple[Recommendation, BacktestResult, float]:
    """Simulate, advise, backtest, write; returns the recommendation, its backtest and the seconds it took."""
    from advisor.backtest.advise import advise_with_backtest
    from advisor.output import write_out
    from exporter.simulate.history import write_history

    started = time.monotonic()
    history = out / HISTORY_FILE
    with progress("slicewise demo", total=3) as bar:
        bar.describe(f"simulating {days:g} days of the {scenario!r} fleet")
        write_history(history, scenario=scenario, days=days, seed=seed)
        bar.advance()
        bar.describe("running the advisor: features, classes, decisions, fleet plan; and its backtest")
        rec, backtest = advise_with_backtest(history, timedelta(days=days), seed)
        bar.advance()
        bar.describe("writing the report and configs")
        write_out(rec, out, backtest=backtest)
        bar.advance()
    return rec, backtest, time.monotonic() - started


def summary(rec: Recommendation, out: Path, elapsed: float, backtest: BacktestResult | None = None) -> str:
    """What a newcomer wants from the terminal: the headline, the classes and where the files are."""
    from advisor.report.formatting import short_model

    plan = rec.plan
    days = (rec.window.end - rec.window.start).total_seconds() / 86400
    models = ", ".join(f"{m.gpus_now} x {short_model(m.gpu_model)}" for m in plan.models if m.gpus_now)
    lines = [
        f"slicewise demo: {len(rec.workloads)} workloads on a simulated fleet of {plan.gpus_now} GPUs ({models}),",
        f"{days:.0f} days of history, advised in {elapsed:.1f} s.",
        "",
        f"GPUs: {plan.gpus_now} in the fleet"
        + (f" ({plan.gpus_busy_max} busy at once at most)" if plan.gpus_busy_max is not None else "")
        + f" -> {plan.gpus_needed} needed after the change (no plan can use fewer than {plan.gpus_lower_bound}).",
        *([textwrap.fill(backtest.headline, 110, break_on_hyphens=False)] if backtest is not None else []),
        "",
        "Classes and their decisions:",
    ]
    for cls in rec.classes:
        # what the members take: a class is sized for its largest member, each member then on its own
        members = [w.decision for w in rec.workloads if w.class_id == cls.id]
        lines.append(f"  {cls.id:<4} {len(cls.members):>3} workloads  {cls.label}")
        lines.append("       -> " + _taken(members))
    outliers = sum(1 for w in rec.workloads if w.outlier)
    if outliers:
        lines.append(f"  and {outliers} outlier(s), each decided on its own")
    lines += [
        "",
        f"Report:  {(out / 'report.html').resolve()}  (also report.md)",
        f"Data:    {out / 'recommendation.json'}, {out / 'backtest.json'}, {out / 'advisor.prom'}",
        f"Configs: {out / 'configs'}/ (mig-parted, device plugin, resource requests)",
        f"History: {out / HISTORY_FILE} (try: slicewise advise --history {out / HISTORY_FILE})",
    ]
    return "\n".join(lines) + "\n"


_MODE_NAMES = {"mig": "MIG", "mps": "MPS", "timeslice": "time-slicing", "exclusive": "whole GPU"}


def _taken(decisions: Sequence[Decision]) -> str:
    """``MIG 24 (1g.5gb 14, 1g.10gb 7, ...), MPS 11, whole GPU 2``: modes by count, MIG's commonest profiles."""
    modes = Counter(d.mode.value for d in decisions)
    parts = []
    for mode, n in modes.most_common():
        text = f"{_MODE_NAMES[mode]} {n}"
        if mode == "mig":
            profiles = Counter(d.profile for d in decisions if d.mode.value == "mig" and d.profile).most_common()
            shown = ", ".join(f"{p} {k}" for p, k in profiles[:3])
            text += f" ({shown}{', ...' if len(profiles) > 3 else ''})"
        parts.append(text)
    return ", ".join(parts)
