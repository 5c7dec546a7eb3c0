#!/usr/bin/env python3
"""The agent alone: how long the shim takes around a program, without api, broker or runner.

Starts one Python container the way the pool does in agent mode (`rce-shim agent` under
docker-init, hardened, stdin attached through `docker run -i`), hands it N `print(1)` jobs one at
a time and reports the p50 of: the job line written -> the shim's `outcome` line (what the
runner waits for), -> its `done` line (the container is clean and free again), and the
program's own `wall_ms`. The difference between the first and the last is what the shim adds
(workspace, uid drop, spawn, kill, accounting) plus the docker CLI's relay.

Usage: bench/shim-agent.py [N=50]. Needs the images (`make images`). Standard library only.
"""
import base64
import json
import statistics
import subprocess
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50
IMAGE = subprocess.run(
    ["cargo", "run", "-q", "-p", "rce-protocol", "--bin", "rce-topology", "--", "image", "python"],
    check=True, capture_output=True, text=True).stdout.strip()
LIMITS = {"wall_time_ms": 5000, "cpu_time_ms": 3000, "memory_kb": 262144, "processes": 64,
          "output_bytes": 65536, "file_size_bytes": 64 << 20, "open_files": 256}
ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1"}


def main():
    agent = subprocess.Popen(
        ["docker", "run", "-i", "--rm", "--init", "--network", "none", "--read-only",
         "--tmpfs", "/work:rw,exec,nosuid,nodev,size=128m,mode=0711",
         "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m", "--cap-drop", "ALL",
         *[x for cap in ("CHOWN", "SETUID", "SETGID", "KILL") for x in ("--cap-add", cap)],
         "--security-opt", "no-new-privileges", "--log-driver", "none",
         "--memory", "256m", "--memory-swap", "256m", "--pids-limit", "100",
         IMAGE, "/usr/local/bin/rce-shim", "agent"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    baseline = json.loads(agent.stdout.readline())
    baseline.pop("type")
    source = base64.b64encode(b"print(1)").decode()
    to_outcome, to_done, walls = [], [], []
    for i in range(N + 5):
        job = {"schema": 1, "job_id": f"j{i}", "uid": 20000 + i % 100, "baseline": baseline,
               "files": [{"name": "main.py", "content": source}],
               "steps": [{"name": "run", "argv": ["python3", "main.py"], "env": ENV, "stdin": "",
                          "limits": LIMITS}]}
        start = time.perf_counter()
        agent.stdin.write((json.dumps(job) + "\n").encode())
        agent.stdin.flush()
        while True:
            message = json.loads(agent.stdout.readline())
            if message["type"] == "outcome":
                outcome_ms = (time.perf_counter() - start) * 1000
                wall = message["steps"][0]["wall_ms"]
            elif message["type"] == "record" and not message["clean"]:
                sys.exit(f"job {i} left the container unclean")
            elif message["type"] == "done":
                break
        if i >= 5:  # warm-up
            to_outcome.append(outcome_ms)
            to_done.append((time.perf_counter() - start) * 1000)
            walls.append(wall)
    agent.stdin.close()
    agent.wait()
    print(f"{N} jobs, p50 ms: to outcome {statistics.median(to_outcome):.1f}, "
          f"to done {statistics.median(to_done):.1f}, program wall_ms {statistics.median(walls):.1f}")


if __name__ == "__main__":
    main()
