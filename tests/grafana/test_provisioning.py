"""Grafana provisioning files: the shapes Grafana's provisioning documentation gives, pointing at our dashboards."""

from __future__ import annotations

import json

import yaml

from grafana import build
from tests.support import REPO

PROVISIONING = REPO / "grafana" / "provisioning"


def test_datasource_provisioning_defines_a_prometheus_source() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "slicewise-prometheus.yaml").read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["url"].startswith("http")
    assert source["uid"] and source["name"]
    # the dashboards find it through their datasource variable, which lists sources of this type
    for path in build.DASHBOARD_DIR.glob("*.json"):
        (variable,) = [v for v in json.loads(path.read_text())["templating"]["list"] if v["type"] == "datasource"]
        assert variable["query"] == source["type"]


def test_dashboard_provider_loads_files_from_one_folder() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "slicewise.yaml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    assert provider["folder"] == "slicewise"
    assert provider["allowUiUpdates"] is False  # edits belong in the generator
