#!/usr/bin/env python3
"""What one step's cgroup costs the shim, on this host's cgroup filesystem (v1 or v2).

Times, per step: mkdir in the memory (and v1 cpuacct) hierarchy, the limit writes, opening the
accounting files, a process joining the cgroup, three reads per 10 ms tick (cpu, memory, OOM
count: the shim's watch) and the final reads, then rmdir. The process joining is a forked
child writing "0" to cgroup.procs, as the shim's step child does. Run as root on the engine's
host: `python3 bench/cgroup-cost.py [steps] [ticks per step]` (defaults 500 and 10).
"""
import os
import statistics
import sys
import time

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500
ticks = int(sys.argv[2]) if len(sys.argv) > 2 else 10
root = "/sys/fs/cgroup"
v2 = os.path.exists(f"{root}/cgroup.controllers")
base = [f"{root}/rce-bench-cost"] if v2 else [f"{root}/memory/rce-bench-cost", f"{root}/cpuacct/rce-bench-cost"]
for b in base:
    os.makedirs(b, exist_ok=True)


def write(path, value):
    with open(path, "w") as f:
        f.write(value)


tick, teardown, join, made_cost = [], [], [], []
for n in range(steps):
    t0 = time.perf_counter()
    dirs = [f"{b}/step-{n}" for b in base]
    for d in dirs:
        os.mkdir(d)
    mem = dirs[0]
    limit = str(64 << 20)
    if v2:
        write(f"{mem}/memory.max", limit)
        write(f"{mem}/memory.swap.max", "0")
        files = [f"{mem}/cpu.stat", f"{mem}/memory.current", f"{mem}/memory.events"]
        peak = f"{mem}/memory.peak"
    else:
        write(f"{mem}/memory.limit_in_bytes", limit)
        write(f"{mem}/memory.memsw.limit_in_bytes", limit)
        files = [f"{dirs[1]}/cpuacct.usage", f"{mem}/memory.usage_in_bytes", f"{mem}/memory.oom_control"]
        peak = f"{mem}/memory.max_usage_in_bytes"
    fds = [os.open(f, os.O_RDONLY) for f in files + [peak, f"{mem}/memory.stat"]]
    procs = [os.open(f"{d}/cgroup.procs", os.O_WRONLY) for d in dirs]
    made = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        for p in procs:
            os.write(p, b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    t1 = time.perf_counter()
    # The same fork without joining, to subtract what the fork itself costs.
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    join.append((t1 - made) - (time.perf_counter() - t1))
    made_cost.append(made - t0)
    for _ in range(ticks):
        s = time.perf_counter()
        for fd in fds[:3]:
            os.pread(fd, 4096, 0)
        tick.append(time.perf_counter() - s)
    t2 = time.perf_counter()
    os.pread(fds[3], 4096, 0)
    os.pread(fds[4], 8192, 0)
    for fd in fds + procs:
        os.close(fd)
    for d in reversed(dirs):
        os.rmdir(d)
    teardown.append(time.perf_counter() - t2)
for b in base:
    os.rmdir(b)

us = lambda xs: statistics.median(xs) * 1e6
print(f"cgroup {'v2' if v2 else 'v1'}, {steps} steps, {ticks} ticks each")
print(f"setup: mkdir, limits, open files          p50 {us(made_cost):.0f} us")
print(f"setup: a child joins (over a bare fork)     p50 {us(join):.0f} us")
print(f"one tick (read cpu, memory, oom count)     p50 {us(tick):.1f} us")
print(f"teardown (peak, memory.stat, rmdir)         p50 {us(teardown):.0f} us")
