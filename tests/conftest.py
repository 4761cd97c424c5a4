"""pytest configuration shared by every test package."""

from __future__ import annotations

import os

# Headless everywhere: matplotlib must never look for a display.
os.environ.setdefault("MPLBACKEND", "Agg")
