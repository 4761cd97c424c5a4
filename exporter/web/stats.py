"""``slicewise_exporter_http_errors_total{reason}``: what the server refused or dropped, counted instead of logged.

A port scanner, a wrong password or a TLS client that gives up are the client's business; printing a traceback for
each would flood the log (a probe run once printed 1,151 lines). The reasons are a fixed set, all published from
the start at 0, so the label set never grows with what clients send.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from enum import StrEnum

from prometheus_client.core import CounterMetricFamily


class HttpError(StrEnum):
    TLS_HANDSHAKE = "tls_handshake"  # the handshake failed or the client left during it
    CLIENT_CERTIFICATE = "client_certificate"  # a verified certificate naming none of client_allowed_sans
    HEADER_TIMEOUT = "header_timeout"  # handshake + request line + headers not complete within the deadline
    MALFORMED_REQUEST = "malformed_request"  # headers too large, or not HTTP
    CONNECTION_SHED = "connection_shed"  # too many open connections or a full worker queue: the oldest idle closed
    UNAUTHORIZED = "unauthorized"  # no or wrong basic auth credentials
    AUTH_BUSY = "auth_busy"  # unverified credentials while every bcrypt slot was busy: 503, not checked
    CLIENT_GONE = "client_gone"  # reset, closed or too slow to read while the response was written


class HttpStats:
    """Thread-safe counters the listener, the workers and the app share; a prometheus_client collector."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(HttpError, 0)

    def count(self, reason: HttpError) -> None:
        with self._lock:
            self._counts[reason] += 1

    def snapshot(self) -> dict[HttpError, int]:
        with self._lock:
            return dict(self._counts)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "slicewise_exporter_http_errors",
            "Connections and requests the HTTP server refused or dropped, by reason.",
            labels=["reason"],
        )
        for reason, value in self.snapshot().items():
            family.add_metric([reason.value], value)
        yield family
