"""The file report opens in a real browser, offline, with its charts drawn (headless Chromium screenshot)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advisor.report import render_html
from advisor.report.charts import BEFORE
from tests.advisor.report.fixtures import last_week, this_week
from tests.support import require_binary


@pytest.mark.needs_binary
def test_chromium_draws_the_self_contained_report_with_its_charts(tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    page = tmp_path / "report.html"
    page.write_text(render_html(this_week(), last_week()).document, encoding="utf-8")
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the fleet chart's "in the fleet now" bars: a colour only the charts use, so they were decoded and drawn
    grey = np.array([int(BEFORE[i : i + 2], 16) for i in (1, 3, 5)])
    bars = int((np.abs(pixels - grey).sum(axis=2) <= 6).sum())
    assert bars > 2000, f"only {bars} pixels of the chart colour: the inline PNG charts were not drawn"
    # the page is laid out within its 800 px card: the right margin stays the page background
    background = pixels[200:2000, 1020:1150]
    assert (np.abs(background - np.array([0xF3, 0xF4, 0xF6])).sum(axis=2) <= 3).mean() > 0.99
