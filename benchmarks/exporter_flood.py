"""Benchmark: do scrapes keep working while hostile clients flood the exporter? Does RSS stay flat under faults?

``flood``: the exporter on the simulated ``mixed`` fleet's first node, TLS plus basic auth (bcrypt cost 10, as
``htpasswd -B`` makes it), on loopback. For ``--seconds`` it is flooded at once by ``--idle`` connections that
never say a word, ``--slowloris`` TLS clients sending their headers a byte every 0.1 s (reconnecting when cut
off), ``--guessers`` threads trying a new wrong password each request, and threads sending random bytes instead of
a TLS handshake. Meanwhile a scraper with the right password scrapes every second with Prometheus's default 10 s
timeout. Printed: connections tried, scrapes kept, scrape latency with and without the flood, threads in the
process, and ``slicewise_exporter_http_errors_total`` by reason.

``soak``: ``--collects`` collects of the same node with MIG reconfigurations and process exits drawn at random
(what issue 14 measured growing 66 -> 116 MiB over 10,000), RSS from /proc/self/statm before and after.

    .venv/bin/python benchmarks/exporter_flood.py flood            # ~30 s
    .venv/bin/python benchmarks/exporter_flood.py soak             # ~2 minutes on a 2-core VM
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import bcrypt
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.app import ExporterOptions, build_exporter
from exporter.simulate import ANCHOR, FaultKind, ManualClock, build_scenario
from exporter.web.config import load_web_config
from tests.exporter.certs import server_certificate

PASSWORD = "prometheus-scrape-password"


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def flood(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="slicewise-flood-"))
    ca, cert = server_certificate(work)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    (work / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {cert.cert}\n  key_file: {cert.key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    fleet = build_scenario("mixed", clock=ManualClock(ANCHOR + 14 * 3600))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ExporterOptions(listen_address=f"127.0.0.1:{port}", web_config=load_web_config(work / "web.yml"))
    exporter = build_exporter(options, fleet=fleet)
    exporter.serve_in_thread()
    context = ssl.create_default_context(cafile=str(ca.files.cert))
    url = f"https://127.0.0.1:{port}/metrics"
    scraper = httpx.Client(verify=context, auth=("prometheus", PASSWORD), timeout=10)

    def scrape() -> tuple[str, float]:
        began = time.monotonic()
        try:
            status = str(scraper.get(url).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        return status, time.monotonic() - began

    quiet = [scrape() for _ in range(10)]
    threads_before = threading.active_count()  # the server's own threads, as they are when idle
    stop = threading.Event()
    tried: Counter[str] = Counter()
    lock = threading.Lock()

    def counted(what: str) -> None:
        with lock:
            tried[what] += 1

    def loop(body: object) -> None:
        while not stop.is_set():
            try:
                body()  # type: ignore[operator]
            except (OSError, httpx.HTTPError):
                counted("client-side errors")

    guesses = iter(range(10**9))

    def guess() -> None:
        counted("wrong-password requests")
        with httpx.Client(verify=context, timeout=30) as client:
            client.get(url, auth=("prometheus", f"guess-{next(guesses)}"))

    def slowloris() -> None:
        counted("slowloris connections")
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000:
                tls.sendall(bytes([byte]))
                if stop.wait(0.1):
                    return

    def garbage() -> None:
        counted("garbage connections")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            raw.sendall(os.urandom(517))
        time.sleep(0.01)

    idle = []
    for _ in range(args.idle):
        try:
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            counted("idle connections")
        except OSError:
            counted("idle connections refused or timed out")
    workers = [threading.Thread(target=loop, args=(guess,), daemon=True) for _ in range(args.guessers)]
    workers += [threading.Thread(target=loop, args=(slowloris,), daemon=True) for _ in range(args.slowloris)]
    workers += [threading.Thread(target=loop, args=(garbage,), daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    flooded = []
    peak_threads = 0
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        flooded.append(scrape())
        peak_threads = max(peak_threads, threading.active_count() - threads_before - len(workers))
        time.sleep(1)
    stop.set()
    for worker in workers:
        worker.join(30)
    for sock in idle:
        sock.close()
    errors = [line for line in scraper.get(url).text.splitlines() if line.startswith("slicewise_exporter_http_err")]
    scraper.close()
    exporter.close()

    def latency(results: list[tuple[str, float]]) -> str:
        times = [t for _, t in results]
        return f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"

    kept = sum(1 for status, _ in flooded if status == "200")
    print(f"connections tried during {args.seconds:.0f} s: {sum(tried.values()):,} ({dict(tried)})")
    print(f"scrapes before the flood: {latency(quiet)}")
    print(f"scrapes during the flood: {kept} of {len(flooded)} answered 200; {latency(flooded)}")
    print(f"  outcomes: {dict(Counter(status for status, _ in flooded))}")
    print(f"threads the server added during the flood, at most: {peak_threads}")
    print("\n".join(errors) or "(no slicewise_exporter_http_errors_total)")


def soak(args: argparse.Namespace) -> None:
    clock = ManualClock(ANCHOR + 14 * 3600)
    fleet = build_scenario("mixed", clock=clock)
    exporter = build_exporter(ExporterOptions(), serve=False, fleet=fleet)
    fleet.faults.set(FaultKind.MIG_RECONFIGURE, 0.01)
    fleet.faults.set(FaultKind.PROCESS_EXIT, 0.05)
    for _ in range(300):
        clock.advance(15)
        list(exporter.collector.collect())
    gc.collect()
    before = rss_mib()
    marks = []
    for i in range(args.collects):
        clock.advance(15)
        list(exporter.collector.collect())
        if (i + 1) % (args.collects // 5) == 0:
            marks.append(f"{i + 1}: {rss_mib():.1f}")
    gc.collect()
    after = rss_mib()
    exporter.close()
    print(f"RSS after 300 warm-up collects: {before:.1f} MiB; after {args.collects:,} more: {after:.1f} MiB")
    print("  along the way (collects: MiB): " + ", ".join(marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("flood")
    f.add_argument("--seconds", type=float, default=20)
    f.add_argument("--idle", type=int, default=1000)
    f.add_argument("--slowloris", type=int, default=50)
    f.add_argument("--guessers", type=int, default=16)
    s = sub.add_parser("soak")
    s.add_argument("--collects", type=int, default=10_000)
    args = parser.parse_args()
    flood(args) if args.what == "flood" else soak(args)


if __name__ == "__main__":
    main()
