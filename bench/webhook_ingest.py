"""Webhook ingestion benchmark.

Signed `issues.labeled` deliveries (GitHub's example payload, with AgentVine's label, so every
one of them stores a job that the dispatcher then acknowledges against the GitHub fake while
the load goes on). Measured in one run on one machine:

1. throughput, closed loop (N concurrent senders), of AgentVine and of a bare aiohttp handler
   that only answers 202 (the ceiling), in alternating rounds; medians;
2. latency of the 202 (p50/p99) at a fixed arrival rate (open loop, 200 deliveries/s): each
   latency counts from the moment the delivery was due, so a stall is not hidden;
3. acknowledgement latency: delivery → 👀 + tracking comment + check run on GitHub (from the
   job's event log), for deliveries sent one at a time;
4. how long the worker takes to import the backlog (1) left in the inbox.

Each server runs in its own process. Usage: python bench/webhook_ingest.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.fakes.github.webhooks import delivery_headers, labeled_issue, sign  # noqa: E402

# GitHub's recorded example delivery (12.7 KB), from the shared test data beside the checkout.
TESTDATA = Path(os.environ.get("AGENTVINE_TESTDATA", ROOT.parent / "shared" / "testdata"))
EXAMPLE = TESTDATA / "github" / "webhooks" / "issues" / "labeled.payload.json"

SECRET = "bench-secret"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    stderr = open(log, "w") if log else None  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=stderr, text=True)


async def wait_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


EVENTS = itertools.count(1)  # across every Sender of the run
MARKER = "bench-marker"  # 12 characters, in the label's node_id: each delivery's body is a new event's, of the same size


class Sender:
    def __init__(self, url: str, payload: dict) -> None:
        self.url = url + "/webhooks"
        marked = {**payload, "label": {**payload["label"], "node_id": MARKER}}
        self.body = json.dumps(marked).encode()  # wrk sends this one body: after the first, replays that start nothing
        self._head, self._tail = self.body.split(MARKER.encode())
        self.statuses: dict[int, int] = {}

    def next_body(self) -> bytes:
        """The body of a new event (AgentVine starts nothing for a signed body it has seen: a replay)."""
        return b"%s%012d%s" % (self._head, next(EVENTS), self._tail)

    async def send(self, session: aiohttp.ClientSession) -> float:
        body = self.next_body()
        headers = delivery_headers("issues", body, SECRET, delivery_id=str(uuid.uuid4()))
        began = time.perf_counter()
        async with session.post(self.url, data=body, headers=headers) as response:
            await response.read()
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        return time.perf_counter() - began


def wrk_rate(url: str, body: bytes, seconds: float, concurrency: int) -> float:
    """Deliveries/s that wrk (C, one thread) gets answered 2xx: a client that is not the bottleneck."""
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(body)
        file.flush()
        env = {**os.environ, "BODY_FILE": file.name, "SIGNATURE": sign(body, SECRET), "DELIVERY_PREFIX": uuid.uuid4().hex}
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(ROOT / "bench" / "deliveries.lua"), url + "/webhooks"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(out.split("Requests/sec:")[1].split()[0])


CLIENT = "wrk"


async def closed_loop(sender: Sender, seconds: float, concurrency: int) -> float:
    if CLIENT == "wrk" and shutil.which("wrk"):
        return await asyncio.to_thread(wrk_rate, sender.url.removesuffix("/webhooks"), sender.body, seconds, concurrency)
    if CLIENT == "wrk":
        print("wrk not found (apt-get install wrk): the Python client may be the bottleneck", file=sys.stderr)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await sender.send(session)
            done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - began)


async def open_loop(sender: Sender, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        await sender.send(session)
        latencies.append(time.perf_counter() - due)  # from when it was due: no coordinated omission

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        began = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            due = began + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, due)))
        await asyncio.gather(*tasks)
    return latencies


async def imported_jobs(session: aiohttp.ClientSession, url: str, delivery_id: str, timeout: float = 600) -> list[str]:
    """The jobs a delivery started, once the worker has taken it from the inbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{url}/deliveries/{delivery_id}") as response:
            if response.status == 200:
                return (await response.json())["jobs"]
        await asyncio.sleep(0.005)
    raise TimeoutError(f"delivery {delivery_id} was not imported")


async def wait_imported(url: str, sender: Sender, timeout: float = 600) -> None:
    """Until a delivery sent now is in the store: the inbox is imported in order."""
    async with aiohttp.ClientSession() as session:
        body = sender.next_body()
        headers = delivery_headers("issues", body, SECRET, delivery_id=str(uuid.uuid4()))
        async with session.post(sender.url, data=body, headers=headers) as response:
            delivery_id = (await response.json())["delivery"]
        await imported_jobs(session, url, delivery_id, timeout)


async def ack_latencies(url: str, payload: dict, count: int) -> list[float]:
    """From the 202 to the acknowledgement: the worker imports the delivery from the inbox,
    routes it, stores the job, then reacts, comments and creates the check run."""
    sender = Sender(url, payload)
    results = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            body = sender.next_body()
            headers = delivery_headers("issues", body, SECRET, delivery_id=str(uuid.uuid4()))
            async with session.post(sender.url, data=body, headers=headers) as response:
                delivery_id = (await response.json())["delivery"]
            received = time.time()
            (job_id,) = await imported_jobs(session, url, delivery_id)
            while True:
                async with session.get(f"{url}/jobs/{job_id}") as response:
                    page = await response.json()
                if any(e["kind"] in ("acknowledged", "failed", "rejected") for e in page["events"]):
                    break
                await asyncio.sleep(0.005)
            acknowledged = next(e["at"] for e in page["events"] if e["kind"] == "acknowledged")
            results.append(acknowledged - received)
    return results


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    key_file = work / "app.pem"
    fake_port, bot_port, bare_port = free_port(), free_port(), free_port()
    # The fake stands in for GitHub, whose CPU is not ours: it runs at the lowest priority.
    procs = [start(["nice", "-n", "19", sys.executable, "bench/servers.py", "fake", "--port", str(fake_port), "--key-file", str(key_file)])]
    try:
        fake = json.loads(procs[0].stdout.readline())
        env = {
            "AGENTVINE_APP_ID": str(fake["app_id"]),
            "AGENTVINE_PRIVATE_KEY_PATH": str(key_file),
            "AGENTVINE_WEBHOOK_SECRET": SECRET,
            "AGENTVINE_GITHUB_API_URL": fake["url"],
            "AGENTVINE_DATA_DIR": str(work / "agentvine"),
        }
        procs.append(start([sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                            "--port", str(bot_port)], env, log=work / "agentvine.log"))
        procs.append(start([sys.executable, "bench/servers.py", "bare", "--port", str(bare_port)]))
        bot_url, bare_url = f"http://127.0.0.1:{bot_port}", f"http://127.0.0.1:{bare_port}"
        await wait_up(bot_url + "/health")
        await wait_up(bare_url + "/")
        payload = labeled_issue(json.loads(EXAMPLE.read_text()), label=args.label, repo=fake["repository"],
                                issue=fake["issue"], installation_id=1001, sender="alice")

        # The first delivery meets a worker process that may still be starting (imports, Docker check).
        cold = (await ack_latencies(bot_url, payload, 1))[0] if args.acks else 0.0
        ack = await ack_latencies(bot_url, payload, args.acks) if args.acks else [0.0]
        async with aiohttp.ClientSession() as session:
            async with session.get(bot_url + "/health") as response:
                worker_pid = (await response.json())["worker_pid"]
        bare_sender, bot_sender = Sender(bare_url, payload), Sender(bot_url, payload)
        await closed_loop(bare_sender, 1, args.concurrency)  # warm-up
        # (a) ingestion capacity: the worker is busy elsewhere (stopped), deliveries only pile up.
        # Rounds alternate between the two servers, so a drift of the machine hits both alike.
        bare_rounds, ingest_rounds = [], []
        os.kill(worker_pid, signal.SIGSTOP)
        try:
            for _ in range(args.rounds):
                bare_rounds.append(await closed_loop(bare_sender, args.seconds / args.rounds, args.concurrency))
                ingest_rounds.append(await closed_loop(bot_sender, args.seconds / args.rounds, args.concurrency))
        finally:
            os.kill(worker_pid, signal.SIGCONT)
        bare_rps, ingest_rps = statistics.median(bare_rounds), statistics.median(ingest_rounds)
        backlog = sum(ingest_rounds) * args.seconds / args.rounds
        import_began = time.monotonic()
        await wait_imported(bot_url, bot_sender)
        import_s = time.monotonic() - import_began
        # (b) the same while the worker acknowledges the backlog's jobs against the fake, on the
        # same 2 cores; then the 202's latency, still with the worker at work.
        bot_rps = await closed_loop(bot_sender, args.seconds / args.rounds, args.concurrency)
        latencies = await open_loop(bot_sender, args.rate, args.seconds)
        bare_latencies = await open_loop(bare_sender, args.rate, args.seconds)
        ms = [v * 1000 for v in latencies]
        bare_ms = [v * 1000 for v in bare_latencies]
        return {
            "client": CLIENT if CLIENT == "python" or shutil.which("wrk") else "python",
            "label": args.label,
            "deliveries_per_s_bare_aiohttp": round(bare_rps),
            "ingest_per_s_worker_paused": round(ingest_rps),
            "ingest_ratio": round(ingest_rps / bare_rps, 2),
            "rounds_bare": [round(v) for v in bare_rounds],
            "rounds_ingest": [round(v) for v in ingest_rounds],
            "backlog_deliveries": round(backlog),
            "backlog_imported_in_s": round(import_s, 1),
            "ingest_per_s_worker_acknowledging": round(bot_rps),
            "ratio_worker_acknowledging": round(bot_rps / bare_rps, 2),
            "open_loop_rate": args.rate,
            "p50_ms": round(pct(ms, 50), 2),
            "p99_ms": round(pct(ms, 99), 2),
            "max_ms": round(max(ms), 2),
            "bare_p50_ms": round(pct(bare_ms, 50), 2),
            "bare_p99_ms": round(pct(bare_ms, 99), 2),
            "ack_first_ms": round(cold * 1000, 1),
            "ack_median_ms": round(statistics.median(ack) * 1000, 1),
            "ack_max_ms": round(max(ack) * 1000, 1),
            "statuses": {"agentvine": bot_sender.statuses, "bare": bare_sender.statuses},
        }
    finally:
        for proc in reversed(procs):  # AgentVine before the fake it talks to
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="closed-loop time per server, split into rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--acks", type=int, default=20)
    parser.add_argument("--label", default="agentvine:bugfix", help="'bug' measures ingestion alone (no job starts)")
    parser.add_argument("--quick", action="store_true", help="short run, for a smoke test")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk",
                        help="closed-loop load generator (python: aiohttp, which caps the bare ceiling)")
    args = parser.parse_args()
    global CLIENT
    CLIENT = args.client
    if args.quick:
        args.seconds, args.rounds, args.acks = 2, 1, 5
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
