#!/usr/bin/env python3
"""Where one job's time and the machine's CPU go, through the running service (`make up` first).

1. Latency breakdown: N sequential `POST /v1/jobs?wait=true` Python `print(1)` jobs over one
   keep-alive connection; the job's own timestamps split each round trip into admission to
   pickup (`created_at` -> `started_at`: api record + publish confirm + delivery + pickup), the
   runner's part (`started_at` -> `finished_at`, of which `run.wall_ms` is the program) and the
   way back (`finished_at` -> response: result publish, recorder, Redis, wake-up, response).
2. CPU per job by process: /proc utime+stime of every process, summed by command name, before
   and after the N jobs, divided by N (processes that exit during the run, such as each job's
   program, are not counted).

Usage: bench/where-time-goes.py [N=200] [LANGUAGE=python]. Standard library only. Run it on the
same machine as the service.
"""
import http.client
import json
import os
import statistics
import sys
import time
from datetime import datetime

API = os.environ.get("RCE_API_ADDR", "127.0.0.1:8080")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
LANGUAGE = sys.argv[2] if len(sys.argv) > 2 else "python"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_by_command():
    totals = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        totals[comm] = totals.get(comm, 0) + int(fields[11]) + int(fields[12])
    return totals


def stamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def main():
    host, port = API.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    body = json.dumps({"language": LANGUAGE, "source": "print(1)"})

    def one():
        sent = time.time() * 1000
        conn.request("POST", "/v1/jobs?wait=true", body, {"content-type": "application/json"})
        job = json.loads(conn.getresponse().read())
        back = time.time() * 1000
        if job.get("verdict") != "ok":
            sys.exit(f"job failed: {job}")
        created, started, finished = (stamp(job[k]) for k in ("created_at", "started_at", "finished_at"))
        return (back - sent, started - created, finished - started, job["run"]["wall_ms"], back - finished)

    for _ in range(10):  # warm-up
        one()
    before = cpu_by_command()
    rows = [one() for _ in range(N)]
    after = cpu_by_command()

    print(f"{N} sequential {LANGUAGE} jobs, p50 of each part (ms):")
    names = ["whole round trip", "admission -> pickup", "pickup -> result", "  of which the program (wall_ms)", "result -> response"]
    for i, name in enumerate(names):
        print(f"  {name:34s} {statistics.median(r[i] for r in rows):7.1f}")
    print("CPU per job by process (ms), over 0.05:")
    deltas = {c: (after.get(c, 0) - before.get(c, 0)) * TICK_MS / N for c in after}
    for comm, ms in sorted(deltas.items(), key=lambda kv: -kv[1]):
        if ms > 0.05:
            print(f"  {comm:22s} {ms:6.2f}")


if __name__ == "__main__":
    main()
