"""Tool-server throughput: cache-hit requests/s and p50/p99 latency with 1 and 16 loopback clients.

    python benchmarks/tool_server.py [--duration 20] [--clients 1 16] [--cache tool_cache.sqlite]

Starts ``alpha-umi serve-tools`` as a real uvicorn process on a free 127.0.0.1 port (with a cache built
from ``../shared/reference/toolbench_data_example/answer`` unless ``--cache`` is given), drives it with
N client threads, each holding one keep-alive connection and cycling through cached calls, and checks
that the server is still healthy afterwards. Clients and server share the machine: the numbers are a
lower bound on the server, and the 16-vs-1 ratio is what to compare between runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ANSWERS = REPO.parent / "shared" / "reference" / "toolbench_data_example" / "answer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cache: str, port: int, log_path: str) -> subprocess.Popen:
    log = open(log_path, "w")
    cmd = [
        sys.executable,
        "-m",
        "toolbench_multillm.server",
        "--cache",
        cache,
        "--port",
        str(port),
        "--log_level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early; see {log_path}")
        try:
            if get_json(port, "/health")["status"] == "ok":
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start in 30 s; see {log_path}")


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def cached_payloads(cache: str) -> list[bytes]:
    from toolbench_multillm.cache import ResponseCache

    keys = ResponseCache(cache).keys()
    if not keys:
        raise SystemExit(f"{cache}: empty cache")
    return [
        json.dumps(
            {
                "category": c,
                "tool_name": t,
                "api_name": a,
                "tool_input": i,
                "strip": "truncate",
                "toolbench_key": "",
            }
        ).encode()
        for c, t, a, i in keys
    ]


def run_clients(port: int, payloads: list[bytes], clients: int, duration: float) -> dict:
    """N threads posting cache hits for ``duration`` seconds; latencies of successful requests."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        i = k
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            body = payloads[i % len(payloads)]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/rapidapi", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200 and b'"error":"no cached' not in data
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            if ok:
                latencies[k].append(time.perf_counter() - t0)
            else:
                errors[k] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    stop_at[0] = t_start + duration
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    flat = sorted(x for lat in latencies for x in lat)
    if not flat:
        return {
            "clients": clients,
            "requests": 0,
            "errors": sum(errors),
            "req_per_s": 0.0,
            "p50_ms": None,
            "p99_ms": None,
        }
    return {
        "clients": clients,
        "requests": len(flat),
        "errors": sum(errors),
        "req_per_s": len(flat) / elapsed,
        "p50_ms": 1000 * statistics.median(flat),
        "p99_ms": 1000 * flat[min(len(flat) - 1, int(0.99 * len(flat)))],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per client count")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    p.add_argument("--cache", default=None, help="existing cache (default: built from the reference answers)")
    p.add_argument("--answers", default=str(DEFAULT_ANSWERS))
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="tool_server_bench_")
    cache = args.cache
    if cache is None:
        from toolbench_multillm.cache import build_cache

        cache = os.path.join(workdir, "cache.sqlite")
        build_cache(args.answers, cache)
    payloads = cached_payloads(cache)
    port = free_port()
    proc = start_server(cache, port, os.path.join(workdir, "server.log"))
    try:
        results = [run_clients(port, payloads, n, args.duration) for n in args.clients]
        health = get_json(port, "/health")
        stats = get_json(port, "/stats")
        alive = proc.poll() is None and health.get("status") == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(
        f"tool server, cache hits over {len(payloads)} cached calls, {args.duration:g} s per row, cpus={os.cpu_count()}"
    )
    print(f"{'clients':>7}  {'requests':>9}  {'errors':>6}  {'req/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}")
    for r in results:
        p50 = f"{r['p50_ms']:.2f}" if r["p50_ms"] is not None else "-"
        p99 = f"{r['p99_ms']:.2f}" if r["p99_ms"] is not None else "-"
        print(
            f"{r['clients']:>7}  {r['requests']:>9}  {r['errors']:>6}  {r['req_per_s']:>9.1f}  {p50:>7}  {p99:>7}"
        )
    base = results[0]
    for r in results[1:]:
        if base["req_per_s"] and base["p50_ms"] and r["p50_ms"]:
            print(
                f"{r['clients']} vs {base['clients']} clients: throughput x{r['req_per_s'] / base['req_per_s']:.2f}, "
                f"p50 latency x{r['p50_ms'] / base['p50_ms']:.2f}"
            )
    print(
        f"server healthy after the run: {alive} (stats: hits={stats['hits']}, misses={stats['misses']}, bad={stats['bad_requests']})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "healthy_after": alive, "stats": stats}, f, indent=2)
    return 0 if alive and all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
