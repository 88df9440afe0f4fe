#!/usr/bin/python3
"""Sample a process (and its descendants) while a load test runs; on SIGTERM/SIGINT write a
JSON summary: peak summed VmRSS, peak VmHWM, CPU seconds used while sampling (user and
kernel separately, from utime and stime in /proc/PID/stat).

usage: sample.py PID OUT_JSON [INTERVAL_S]
"""
import json
import os
import signal
import sys
import time

from proc import tree

pid, out = int(sys.argv[1]), sys.argv[2]
interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def status_kb(p, field):
    try:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(p):
    """(utime, stime) in seconds."""
    try:
        with open(f"/proc/{p}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) / TICK, int(fields[12]) / TICK)
    except (OSError, ValueError, IndexError):
        return (0.0, 0.0)


stop = False


def on_signal(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

pids = tree(pid)
cpu0 = {p: cpu_s(p) for p in pids}
t0 = time.monotonic()
peak_rss = peak_hwm = 0
samples = 0
last_cpu = dict(cpu0)
while not stop:
    pids = tree(pid)
    rss = sum(status_kb(p, "VmRSS") for p in pids)
    hwm = max([status_kb(p, "VmHWM") for p in pids] + [0])
    for p in pids:
        last_cpu[p] = cpu_s(p)
    peak_rss, peak_hwm = max(peak_rss, rss), max(peak_hwm, hwm)
    samples += 1
    time.sleep(interval)
elapsed = time.monotonic() - t0
user = sum(last_cpu[p][0] - cpu0.get(p, (0.0, 0.0))[0] for p in last_cpu)
kernel = sum(last_cpu[p][1] - cpu0.get(p, (0.0, 0.0))[1] for p in last_cpu)
cpu = user + kernel
with open(out, "w") as f:
    json.dump({"pid": pid, "processes": len(last_cpu), "peak_rss_kb": peak_rss,
               "peak_hwm_kb": peak_hwm, "cpu_seconds": round(cpu, 2),
               "user_seconds": round(user, 2), "kernel_seconds": round(kernel, 2),
               "wall_seconds": round(elapsed, 2), "samples": samples}, f)
