"""Write the dashboards' JSON: ``python -m grafana.build`` (or ``--check`` to fail when the committed JSON is stale).

The JSON under ``grafana/dashboards/`` is generated, committed, and what Grafana loads (provisioning or import); the
Python modules beside this one are its source. Each dashboard is validated (grafana.validate) before it is written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana import advisor, fleet, gpu, validate, workloads
from slicewise import atomic

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

# file name (the dashboard's uid) -> the function that builds it
DASHBOARDS: dict[str, Callable[[], builders.Dashboard]] = {
    fleet.UID: fleet.dashboard,
    gpu.UID: gpu.dashboard,
    workloads.UID: workloads.dashboard,
    advisor.UID: advisor.dashboard,
}


def render(board: builders.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON, with panel ids numbered in layout order (Grafana wants them unique)."""
    model = board.build()
    next_id = 1
    for panel in model.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next_id
            next_id += 1
    rendered: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return rendered


def render_text(board: builders.Dashboard) -> str:
    return json.dumps(render(board), indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """file name -> JSON text for every dashboard; raises ValueError naming the problems of an invalid one."""
    texts: dict[str, str] = {}
    for uid, build in DASHBOARDS.items():
        text = render_text(build())
        problems = validate.validate(json.loads(text))
        if problems:
            raise ValueError(f"dashboard {uid} is invalid:\n  " + "\n  ".join(problems))
        texts[f"{uid}.json"] = text
    return texts


def stale_files(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Files under ``directory`` that differ from what the generator writes, are missing, or are left over."""
    wanted = generate()
    present = {path.name for path in directory.glob("*.json")}
    differing = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    return sorted(differing + sorted(present - set(wanted)))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the committed JSON is out of date.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DASHBOARD_DIR,
    show_default=True,
    help="Directory for the JSON files.",
)
def main(check: bool, out: Path) -> None:
    """Generate slicewise's Grafana dashboards as JSON."""
    try:
        if check:
            stale = stale_files(out)
            if stale:
                click.echo(f"out of date in {out}: {', '.join(stale)} (run: python -m grafana.build)", err=True)
                sys.exit(1)
            click.echo(f"{len(DASHBOARDS)} dashboards in {out} are up to date")
            return
        for name, text in generate().items():
            atomic.write_text(out / name, text)
            click.echo(out / name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
