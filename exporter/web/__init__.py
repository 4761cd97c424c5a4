"""Serving the metrics: exporter-toolkit web config (TLS, basic auth) and the HTTP(S) server."""
