#!/usr/bin/env python3
"""Samples, until SIGINT/SIGTERM (or --seconds), the resident memory of the ender-web
process and the CPU time used by it, by its PostgreSQL cluster (postmaster and backends)
and by everything else on the machine (the load generator, and anything else running).
Prints key=value lines at the end; with --trace FILE also writes one line per sample.

Linux only: reads /proc.
"""

import argparse
import os
import signal
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def proc_stat(pid):
    """(ppid, utime+stime ticks) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    # fields after the command: state ppid ... utime(14th overall) stime(15th)
    return int(rest[1]), int(rest[11]) + int(rest[12])


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None, None
    rss = int(fields["VmRSS"].split()[0]) if "VmRSS" in fields else None
    hwm = int(fields["VmHWM"].split()[0]) if "VmHWM" in fields else None
    return rss, hwm


def system_ticks():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]), idle


def pg_pids(postmaster):
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[0] == postmaster:
                pids.append(int(entry))
    return pids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", type=int, default=0, help="ender-web pid (0: none)")
    ap.add_argument("--postmaster", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--trace")
    args = ap.parse_args()

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    trace = open(args.trace, "w") if args.trace else None
    start = time.monotonic()
    sys_total0, sys_idle0 = system_ticks()
    web0 = proc_stat(args.web)[1] if args.web else 0
    pg_first = {}
    pg_last = {}
    for pid in pg_pids(args.postmaster):
        st = proc_stat(pid)
        if st:
            pg_first[pid] = pg_last[pid] = st[1]
    web_last = web0
    rss_samples = []
    hwm = None
    while not stop:
        time.sleep(args.interval)
        now = time.monotonic() - start
        rss = None
        if args.web:
            rss, h = rss_kib(args.web)
            if rss is None:
                break
            hwm = h
            rss_samples.append(rss)
            st = proc_stat(args.web)
            if st:
                web_last = st[1]
        for pid in pg_pids(args.postmaster):
            st = proc_stat(pid)
            if st:
                pg_first.setdefault(pid, 0)  # born during the run: all its time counts
                pg_last[pid] = st[1]
        if trace:
            trace.write(f"{now:.2f} rss_kib={rss}\n")
        if args.seconds and now >= args.seconds:
            break
    elapsed = time.monotonic() - start
    sys_total1, sys_idle1 = system_ticks()
    ncpu = os.cpu_count() or 1
    all_busy = ((sys_total1 - sys_total0) - (sys_idle1 - sys_idle0)) / TICKS / elapsed
    web_cores = (web_last - web0) / TICKS / elapsed
    pg_cores = sum(pg_last[p] - pg_first[p] for p in pg_last) / TICKS / elapsed
    other = max(0.0, all_busy - web_cores - pg_cores)
    idle = max(0.0, ncpu - all_busy)
    mib = lambda k: f"{k / 1024:.1f}"  # noqa: E731
    print(f"seconds={elapsed:.1f}")
    print(f"samples={len(rss_samples)}")
    if rss_samples:
        print(f"web_rss_start_mib={mib(rss_samples[0])}")
        print(f"web_rss_max_mib={mib(max(rss_samples))}")
        print(f"web_rss_avg_mib={mib(sum(rss_samples) / len(rss_samples))}")
        print(f"web_rss_end_mib={mib(rss_samples[-1])}")
    if hwm is not None:
        print(f"web_vmhwm_mib={mib(hwm)}")
    print(f"cpu_cores={ncpu}")
    print(f"web_cpu_cores={web_cores:.2f}")
    print(f"postgres_cpu_cores={pg_cores:.2f}")
    print(f"other_cpu_cores={other:.2f}")
    print(f"idle_cores={idle:.2f}")
    print(f"postgres_processes={len(pg_last)}")
    if trace:
        trace.close()


if __name__ == "__main__":
    main()
