"""``slicewise demo``: the whole job on a simulated fleet, on any machine, no GPU needed.

Without ``--live`` it simulates weeks of the mixed fleet's usage (the history a real exporter and Prometheus would
have recorded), runs the advisor on it exactly as ``slicewise advise --history`` does, writes the report and the
configs, and prints a short summary. With ``--live`` it runs the exporter on the simulated nodes and a real
Prometheus scraping them (see :mod:`slicewise.live`).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slicewise.progress import progress

if TYPE_CHECKING:
    from advisor.model import Recommendation

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
    rec, elapsed = run_demo(out, scenario=scenario, days=days, seed=seed)
    click.echo(summary(rec, out, elapsed))


def run_demo(out: Path, *, scenario: str = "mixed", days: float = 14, seed: int = 0) -> tuple[Recommendation, float]:
    """Simulate, advise, write; returns the recommendation and the seconds it took."""
    from advisor.output import write_out
    from advisor.pipeline import recommend
    from exporter.simulate.history import write_history

    started = time.monotonic()
    history = out / HISTORY_FILE
    with progress("slicewise demo", total=3) as bar:
        bar.describe(f"simulating {days:g} days of the {scenario!r} fleet")
        write_history(history, scenario=scenario, days=days, seed=seed)
        bar.advance()
        bar.describe("running the advisor: features, classes, decisions, fleet plan")
        rec = recommend(history, timedelta(days=days), seed)
        bar.advance()
        bar.describe("writing the report and configs")
        write_out(rec, out)
        bar.advance()
    return rec, time.monotonic() - started


def summary(rec: Recommendation, out: Path, elapsed: float) -> str:
    """What a newcomer wants from the terminal: the headline, the classes and where the files are."""
    from advisor.report.formatting import decision_title, short_model

    plan = rec.plan
    days = (rec.window.end - rec.window.start).total_seconds() / 86400
    models = ", ".join(f"{m.gpus_now} x {short_model(m.gpu_model)}" for m in plan.models if m.gpus_now)
    lines = [
        f"slicewise demo: {len(rec.workloads)} workloads on a simulated fleet of {plan.gpus_now} GPUs ({models}),",
        f"{days:.0f} days of history, advised in {elapsed:.1f} s.",
        "",
        f"GPUs: {plan.gpus_now} in use now -> {plan.gpus_needed} needed after the change "
        f"(no plan can use fewer than {plan.gpus_lower_bound}).",
        "",
        "Classes and their decisions:",
    ]
    for cls in rec.classes:
        decided = sorted({f"{decision_title(d)} on {short_model(d.gpu_model)}" for d in cls.decisions})
        lines.append(f"  {cls.id:<4} {len(cls.members):>3} workloads  {cls.label}")
        lines.append(f"       -> {'; '.join(decided)}")
    outliers = sum(1 for w in rec.workloads if w.outlier)
    if outliers:
        lines.append(f"  and {outliers} outlier(s), each decided on its own")
    lines += [
        "",
        f"Report:  {(out / 'report.html').resolve()}  (also report.md)",
        f"Data:    {out / 'recommendation.json'}, {out / 'advisor.prom'}",
        f"Configs: {out / 'configs'}/ (mig-parted, device plugin, resource requests)",
        f"History: {out / HISTORY_FILE} (try: slicewise advise --history {out / HISTORY_FILE})",
    ]
    return "\n".join(lines) + "\n"
