"""slicewise's Grafana dashboards, written as code with grafana-foundation-sdk.

``python -m grafana.build`` writes the committed JSON under ``grafana/dashboards/``; ``--check`` says whether it is
in sync. The dashboards read the exporter's metrics, the recording rules in ``deploy/prometheus/`` and the advisor's
``slicewise_advisor_*`` metrics (DESIGN.md, "Metric contract" and "What --out DIR holds").
"""
