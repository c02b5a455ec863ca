"""The egress proxy's cost: throughput of a large download and the latency it adds per request,
against the same requests straight to the server on loopback.

Four processes, as in a job: an HTTP server on 127.0.0.1 (Python's http.server, serving files
from memory), the egress proxy on a job's Unix socket, socat forwarding TCP to that socket (the
sandbox's forwarder), and the client (this process, blocking sockets, one request per connection
as the proxy serves them). Paths measured:

  direct    client → server
  socat     client → socat → proxy → server        (what the sandbox's tools take; plain HTTP)
  connect   client → socat → proxy → server        (CONNECT, then the request through the tunnel)
  unix      client → proxy's Unix socket → server  (the proxy alone, without the forwarder)

Usage: python bench/egress_proxy.py [--mb 256] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JOB = "bench"


def _serve_files(port_file: Path, big_mb: int) -> None:
    """The upstream server's process: /big (big_mb MiB) and /small (100 bytes), from memory."""
    blobs = {"/big": b"x" * (big_mb << 20), "/small": b"y" * 100}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = blobs.get(self.path.split("?")[0], b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            view = memoryview(body)
            for i in range(0, len(view), 1 << 20):
                self.wfile.write(view[i:i + (1 << 20)])

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def _serve_proxy(socket_dir: Path, upstream_port: int) -> None:
    """The proxy's process: one job whose allow-list holds the upstream server."""
    from app.agent.egress import EgressPolicy, EgressProxy

    async def main() -> None:
        proxy = EgressProxy(socket_dir)
        allow = [f"127.0.0.1:{upstream_port}"]
        await proxy.open_job(JOB, EgressPolicy(allow, allow), enabled=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(target: tuple | str) -> socket.socket:
    if isinstance(target, str):
        s = socket.socket(socket.AF_UNIX)
        s.connect(target)
    else:
        s = socket.create_connection(target)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _drain(s: socket.socket) -> int:
    total = 0
    buffer = bytearray(1 << 20)
    while n := s.recv_into(buffer):
        total += n
    return total


def fetch(path: str, upstream: int, via: tuple | str | None, tunnel: bool = False) -> int:
    """One request on its own connection; the bytes received (head included)."""
    s = _connect(via or ("127.0.0.1", upstream))
    try:
        if tunnel:
            s.sendall(f"CONNECT 127.0.0.1:{upstream} HTTP/1.1\r\n\r\n".encode())
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += s.recv(1)
        target = path if via is None or tunnel else f"http://127.0.0.1:{upstream}{path}"
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\nConnection: close\r\n\r\n".encode())
        return _drain(s)
    finally:
        s.close()


def measure(paths: dict, upstream: int, mb: int, requests: int) -> dict:
    results = {}
    for name, (via, tunnel) in paths.items():
        fetch("/small", upstream, via, tunnel)  # warm up
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            got = fetch("/big", upstream, via, tunnel)
            rates.append(got / (time.perf_counter() - started) / 1e6)
        latencies = []
        for _ in range(requests):
            started = time.perf_counter()
            fetch("/small", upstream, via, tunnel)
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        results[name] = {"MB_per_s": round(statistics.median(rates)),
                         "ms_median": round(statistics.median(latencies), 3),
                         "ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 3)}
    direct = results["direct"]["ms_median"]
    for name, row in results.items():
        row["ms_added_median"] = round(row["ms_median"] - direct, 3)
    return results


def run(mb: int, requests: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-eg-"))
    port_file = work / "port"
    children = [subprocess.Popen([sys.executable, __file__, "--serve-files", str(port_file), str(mb)])]
    try:
        _wait_for(port_file)
        time.sleep(0.05)
        upstream = int(port_file.read_text())
        children.append(subprocess.Popen([sys.executable, __file__, "--serve-proxy", str(work), str(upstream)]))
        sock = work / JOB / "egress.sock"
        _wait_for(sock)
        forward = _free_port()
        children.append(subprocess.Popen(["socat", f"TCP-LISTEN:{forward},bind=127.0.0.1,fork,reuseaddr",
                                          f"UNIX-CONNECT:{sock}"]))
        time.sleep(0.3)
        paths = {"direct": (None, False), "socat": (("127.0.0.1", forward), False),
                 "connect": (("127.0.0.1", forward), True), "unix": (str(sock), False)}
        return {"download_MiB": mb, "requests": requests, "cpus": os.cpu_count(),
                **measure(paths, upstream, mb, requests)}
    finally:
        for child in children:
            child.terminate()
            child.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-files":
        threading.excepthook = lambda args: None
        return _serve_files(Path(sys.argv[2]), int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-proxy":
        return _serve_proxy(Path(sys.argv[2]), int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="size of the large download, MiB")
    parser.add_argument("--requests", type=int, default=300, help="small requests per path")
    args = parser.parse_args()
    print(json.dumps(run(args.mb, args.requests), indent=2))


if __name__ == "__main__":
    main()
