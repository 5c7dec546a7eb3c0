#!/usr/bin/env python3
"""Live output and cancellation, measured through the running service (`make up` first).

1. Streaming: a Python job prints 1 MB in 10,000 lines of 100 bytes; one SSE client follows it.
   Reports how many stdout events carried it (each is at most one Redis write by the runner,
   batched, so far fewer than lines) and the time from submit to `done`.
2. Cancel latency: N times, a job prints a line and sleeps; once its line arrives over SSE the
   client sends DELETE and times until the `done` event (status `cancelled`) arrives.

Usage: bench/live.py [N_CANCEL=10]. Standard library only.
"""
import http.client
import json
import os
import statistics
import sys
import time

HOST, PORT = os.environ.get("RCE_API_ADDR", "127.0.0.1:8080").split(":")


def request(method, path, body=None):
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=60)
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"null")


def follow(job_id, on_event=lambda e: None):
    """Yields SSE events of a job until done; calls on_event for each as it arrives."""
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=60)
    conn.request("GET", f"/v1/jobs/{job_id}/events")
    resp = conn.getresponse()
    events, event = [], {}
    while True:
        line = resp.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            if "event" in event:
                events.append(event)
                on_event(event)
                if event["event"] == "done":
                    break
            event = {}
        elif line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data:"):
            event.setdefault("data", []).append(line[5:].removeprefix(" "))
    conn.close()
    return events


def streaming():
    src = "import sys\nline = 'x' * 99 + '\\n'\nfor i in range(10000): sys.stdout.write(line)\n"
    start = time.monotonic()
    status, body = request("POST", "/v1/jobs", {"language": "python", "source": src,
                                                "limits": {"output_bytes": 4194304}})
    assert status == 202, body
    events = follow(body["id"])
    took = (time.monotonic() - start) * 1000
    chunks = [e for e in events if e["event"] == "stdout"]
    size = sum(len("\n".join(e["data"])) for e in chunks)
    done = json.loads("\n".join(events[-1]["data"]))
    assert done["verdict"] == "ok", done
    return len(chunks), size, took, done["run"]["wall_ms"]


def cancel_once():
    src = "import time\nprint('started', flush=True)\ntime.sleep(20)\n"
    status, body = request("POST", "/v1/jobs", {"language": "python", "source": src,
                                                "limits": {"wall_time_ms": 25000}})
    assert status == 202, body
    job_id, asked = body["id"], []

    def on_event(e):
        if e["event"] == "stdout" and not asked:
            asked.append(time.monotonic())
            code, _ = request("DELETE", f"/v1/jobs/{job_id}")
            assert code == 202, code

    events = follow(job_id, on_event)
    took = (time.monotonic() - asked[0]) * 1000
    done = json.loads("\n".join(events[-1]["data"]))
    assert done["verdict"] == "cancelled", done
    return took


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    chunks, size, took, wall = streaming()
    print(f"streaming: 10000 lines, {size} bytes in {chunks} stdout events; "
          f"submit to done {took:.0f} ms (program wall {wall} ms)")
    latencies = sorted(cancel_once() for _ in range(n))
    p90 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.9 + 0.999) - 1)]
    print(f"cancel: DELETE to done event over {n} running jobs: "
          f"median {statistics.median(latencies):.0f} ms, p90 {p90:.0f} ms, max {latencies[-1]:.0f} ms")


if __name__ == "__main__":
    main()
