"""Scrape output as data: parse the text format with prometheus_client's parser, check it with promtool."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.support import require_binary


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> dict[str, list[Sample]]:
    """Samples by sample name (counters appear as ``<name>_total``)."""
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append(Sample(s.name, dict(s.labels), float(s.value)))
    return found


def one(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matches = [s for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} samples"
    return matches[0].value


def promtool_check(text: str) -> str:
    """What ``promtool check metrics`` says about the text (empty when it has nothing to say)."""
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    return (done.stdout + done.stderr).strip()
