#!/usr/bin/env python3
"""Run one command and report its wall time, CPU time and peak memory as one line of JSON.

Usage: measure.py [--cwd DIR] -- CMD [ARG...]

Printed keys:
  wall_s      wall-clock seconds from spawn to exit (time.perf_counter)
  rc          the command's exit code (negative: killed by that signal)
  cpu_s       user + system CPU seconds of the command and every descendant it waited for
  maxrss_kb   peak RSS of the command, from GNU time's %M (wait4's ru_maxrss), or null without
              /usr/bin/time. That figure is the largest peak among the command and the descendants
              it waited for, so it is an upper bound for the command's own peak. (Python's own
              RUSAGE_CHILDREN is useless here: a child spawned by Python starts with Python's
              ~14 MB high-water mark, which survives exec. GNU time is ~1 MB, so its child is not
              inflated.)
  hwm_kb      VmHWM of the command's own process (no descendants), sampled from /proc every 10 ms;
              the last sample before exit, so it can only under-read growth in its last 10 ms.
  rss_source  "gnu-time" or "vmhwm-sampled": which of the two the caller should trust

The command's stdout and stderr go to this script's stderr so that stdout holds only the JSON.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

GNU_TIME = "/usr/bin/time"


def have_gnu_time():
    if not os.access(GNU_TIME, os.X_OK):
        return False
    try:
        out = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return "GNU" in (out.stdout + out.stderr)


def read_hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def first_child(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


def main(argv):
    cwd = None
    if argv[:1] == ["--cwd"]:
        cwd, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2

    gnu = have_gnu_time()
    rss_file = None
    cmd = argv
    if gnu:
        fd, rss_file = tempfile.mkstemp(prefix="measure-rss.")
        os.close(fd)
        cmd = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file, *argv]

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=sys.stderr, stderr=sys.stderr)
    target = None if gnu else proc.pid  # with GNU time, the command is time's child
    hwm = None
    while True:
        if target is None:
            target = first_child(proc.pid)
        if target is not None:
            sample = read_hwm_kb(target)
            if sample is not None:
                hwm = sample if hwm is None else max(hwm, sample)
        # WNOWAIT: look without reaping, so proc.wait() below still gets the exit code.
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        time.sleep(0.01)
    rc = proc.wait()
    wall = time.perf_counter() - start
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)

    maxrss = None
    if rss_file:
        try:
            with open(rss_file) as f:
                lines = [line.strip() for line in f if line.strip()]
            # GNU time prefixes "Command exited with non-zero status N" when rc != 0.
            maxrss = int(lines[-1])
        except (OSError, ValueError, IndexError):
            maxrss = None
        finally:
            os.unlink(rss_file)

    print(
        json.dumps(
            {
                "wall_s": round(wall, 4),
                "rc": rc,
                "cpu_s": round(cpu, 4),
                "maxrss_kb": maxrss,
                "hwm_kb": hwm,
                "rss_source": "gnu-time" if maxrss is not None else "vmhwm-sampled",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
