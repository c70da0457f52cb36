"""Load on `ldmkit serve` (the shipped text-to-image model, loopback only, bounded in count and
time): N concurrent clients each submit M jobs; throughput, p50 / p95 latency from submission to
done, and how many submissions the full queue refused with 429 (a refused client waits the
Retry-After it was given and tries again). Every accepted job must finish. Then the server is
killed with SIGKILL while jobs wait, started again on the same folder, and every job it had
accepted must finish there.

    python benchmarks/serve_load.py                         # 4 clients x 5 jobs, queue of 8
    python benchmarks/serve_load.py --clients 8 --jobs 10 --queue-size 4 --steps 20
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PROMPTS = (
    "a large red circle",
    "a small blue star",
    "a medium green ring",
    "a large yellow square",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def start(folder: Path, port: int, queue_size: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "ldmkit", "serve", "--data", str(folder)]
    command += ["--port", str(port), "--queue-size", str(queue_size)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while True:
        try:
            if call(base, "GET", "/v1/health")[1].get("status") == "ready":
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)


def wait_done(base: str, job_ids: list[str], limit_s: float) -> dict[str, dict]:
    """Each job's final state (polled); a job not finished in `limit_s` fails the run."""
    final: dict[str, dict] = {}
    deadline = time.monotonic() + limit_s
    while len(final) < len(job_ids):
        for job_id in job_ids:
            if job_id not in final:
                job = call(base, "GET", f"/v1/jobs/{job_id}")[1]
                if job.get("state") in ("done", "failed", "cancelled"):
                    final[job_id] = job
        if time.monotonic() > deadline:
            missing = [j for j in job_ids if j not in final]
            raise SystemExit(f"{len(missing)} accepted jobs did not finish in {limit_s} s")
        time.sleep(0.1)
    return final


def load(base: str, clients: int, jobs: int, steps: int) -> dict:
    accepted: list[tuple[str, float]] = []
    refused = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        for j in range(jobs):
            body = {"prompts": [PROMPTS[(index + j) % len(PROMPTS)]], "steps": steps, "seed": j}
            while True:
                submitted = time.monotonic()
                status, answer, headers = call(base, "POST", "/v1/jobs", body)
                if status == 202:
                    with lock:
                        accepted.append((answer["id"], submitted))
                    break
                assert status == 429, (status, answer)
                with lock:
                    refused[0] += 1
                time.sleep(float(headers.get("Retry-After", "1")))

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = wait_done(base, [job_id for job_id, _ in accepted], limit_s=600)
    elapsed = time.monotonic() - started
    failed = [j for j in final.values() if j["state"] != "done"]
    assert not failed, f"accepted jobs that did not succeed: {failed[:3]}"
    latencies = sorted(j["finished"] - j["created"] for j in final.values())
    return {
        "part": "load",
        "clients": clients,
        "jobs_each": jobs,
        "accepted": len(accepted),
        "refused_429": refused[0],
        "jobs_per_s": round(len(accepted) / elapsed, 2),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(latencies[max(0, round(0.95 * len(latencies)) - 1)], 2),
        "all_done": True,
    }


def kill_and_restart(folder: Path, port: int, queue_size: int, steps: int, count: int) -> dict:
    server = start(folder, port, queue_size)
    base = f"http://127.0.0.1:{port}"
    ids = []
    for j in range(count):
        status, answer, _ = call(
            base, "POST", "/v1/jobs", {"prompts": [PROMPTS[j % 4]], "steps": steps}
        )
        assert status == 202, answer
        ids.append(answer["id"])
    while call(base, "GET", "/v1/health")[1]["running"] == []:
        time.sleep(0.05)  # the first job is running: kill it mid-job
    done_before = sum(call(base, "GET", f"/v1/jobs/{j}")[1]["state"] == "done" for j in ids)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    server = start(folder, port, queue_size)
    try:
        final = wait_done(base, ids, limit_s=600)
        lost = [j for j in ids if final[j]["state"] != "done"]
        assert not lost, f"jobs lost or failed across the SIGKILL: {[final[j] for j in lost]}"
        for job in final.values():  # every image whole and served
            for url in job["images"]:
                with urllib.request.urlopen(base + url) as answer:
                    assert answer.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(30)
    return {
        "part": "sigkill",
        "accepted": len(ids),
        "done_before_kill": done_before,
        "done_after_restart": len(ids),
        "lost": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=5, help="jobs per client")
    parser.add_argument("--queue-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from ldmkit.hardware import machine_report

    print("machine:", json.dumps(machine_report()), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        port = _free_port()
        server = start(Path(folder) / "load", port, args.queue_size)
        try:
            print(
                json.dumps(load(f"http://127.0.0.1:{port}", args.clients, args.jobs, args.steps)),
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(30)
        result = kill_and_restart(
            Path(folder) / "kill", _free_port(), args.queue_size, args.steps, args.queue_size
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
