#!/usr/bin/env python3
"""Measuring helpers for benches/slurm_dag.sh (run as root).

    measure.py snap OUT.json
        Counters of slurmctld (`sdiag`) and slurmdbd (`sacctmgr show stats`): RPC counts by message
        type and by user, and the "Data since" stamps (to notice a reset by someone else).
    measure.py jobs USER START_EPOCH (--suffix .RUNID | --name NAME) OUT.json
        The tool's jobs from `sacct -X` (array elements counted one by one): submit/start/end stamps.
        Retries for up to 60 s until every job is in a final state (accounting lags the controller).
    measure.py result TOOL STEPS USER T0 T1 BEFORE.json AFTER.json JOBS.json [EVENTS.jsonl]
        One JSON line: the figures of one tool's run.
    measure.py brief < RESULT_LINE
        Two lines about one run.
    measure.py table RESULTS.jsonl
        The side-by-side table and the ratios snakemake / sortie.
"""
import json
import math
import os
import re
import subprocess
import sys
import time
from datetime import datetime

COUNT = re.compile(r"^\s*(\S+)\s*\(\s*(\d+)\)\s*count:(\d+)")
SINCE = re.compile(r"^Data since\s+.*\((\d+)\)")


def parse_stats(text: str) -> dict:
    """sdiag / sacctmgr show stats text -> {since, types: {name: n}, users: {name: n}}."""
    out = {"since": None, "types": {}, "users": {}}
    section = None
    for line in text.splitlines():
        m = SINCE.match(line)
        if m:
            out["since"] = int(m.group(1))
        if "statistics by message type" in line:
            section = "types"
            continue
        if "statistics by user" in line:
            section = "users"
            continue
        if line and not line[0].isspace():
            if not line.startswith("Remote Procedure"):
                section = None
            continue
        m = COUNT.match(line)
        if m and section:
            out[section][m.group(1)] = out[section].get(m.group(1), 0) + int(m.group(3))
    return out


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def snap(path: str) -> None:
    data = {
        "time": time.time(),
        "ctld": parse_stats(run(["sdiag"])),
        "dbd": parse_stats(run(["sacctmgr", "show", "stats"])),
    }
    with open(path, "w") as f:
        json.dump(data, f)


def elements(jobid: str) -> int:
    """How many jobs one sacct -X row stands for: `123`, `123_4` -> 1; `123_[0-9%2]` -> 10."""
    m = re.search(r"_\[([^\]]*)\]", jobid)
    if not m:
        return 1
    n = 0
    for part in m.group(1).split("%")[0].split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part:
            n += 1
    return n


def stamp(s: str):
    if not s or s in ("Unknown", "None"):
        return None
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").timestamp()


FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
         "BOOT_FAIL", "DEADLINE")


def jobs(user: str, start: float, mode: str, key: str, path: str) -> None:
    start_s = datetime.fromtimestamp(math.floor(start) - 1).strftime("%Y-%m-%dT%H:%M:%S")
    env = {k: v for k, v in os.environ.items() if k != "SLURM_TIME_FORMAT"}
    rows = []
    for _ in range(60):
        text = subprocess.run(
            ["sacct", "-X", "-P", "-n", "-u", user, "-S", start_s, "-E", "now",
             "-o", "JobIDRaw,JobID,JobName,State,Submit,Start,End"],
            check=True, capture_output=True, text=True, env=env).stdout
        rows = []
        for line in text.splitlines():
            f = line.split("|")
            if len(f) < 7:
                continue
            name = f[2]
            if (mode == "--suffix" and name.endswith(key)) or (mode == "--name" and name == key):
                rows.append({"raw": f[0], "id": f[1], "name": name, "state": f[3],
                             "n": elements(f[1]), "submit": stamp(f[4]), "start": stamp(f[5]),
                             "end": stamp(f[6])})
        if rows and all(r["state"].split()[0] in FINAL and r["end"] for r in rows):
            break
        time.sleep(1)
    with open(path, "w") as f:
        json.dump(rows, f)


def result(tool, steps, user, t0, t1, before, after, jobs_path, events=None) -> None:
    t0, t1, steps = float(t0), float(t1), int(steps)
    b, a = json.load(open(before)), json.load(open(after))
    rows = json.load(open(jobs_path))
    out = {"tool": tool, "steps": steps, "user": user, "wall_s": round(t1 - t0, 2)}
    base = math.floor(t0)
    subs = [r["submit"] for r in rows if r["submit"]]
    ends = [r["end"] for r in rows if r["end"]]
    out["jobs_seen"] = sum(r["n"] for r in rows)
    out["sbatch_rows"] = len({r["raw"] if "_" not in r["id"] else r["id"].split("_")[0] for r in rows})
    out["states"] = {}
    for r in rows:
        s = r["state"].split()[0]
        out["states"][s] = out["states"].get(s, 0) + r["n"]
    out["first_submit_s"] = (min(subs) - base) if subs else None
    out["all_submitted_s"] = (max(subs) - base) if subs else None
    out["last_end_s"] = (max(ends) - base) if ends else None
    for d in ("ctld", "dbd"):
        reset = a[d]["since"] != b[d]["since"]
        bu, au = b[d]["users"], a[d]["users"]
        # After a reset by someone else, the after-counts start from zero: they are a lower bound.
        n = au.get(user, 0) - (0 if reset else bu.get(user, 0))
        out[f"{d}_rpcs_user"] = n
        out[f"{d}_reset"] = reset
        types = {k: v - (0 if reset else b[d]["types"].get(k, 0)) for k, v in a[d]["types"].items()}
        out[f"{d}_types_all_users"] = {k: v for k, v in sorted(types.items(), key=lambda kv: -kv[1]) if v}
        out[f"{d}_rpcs_all_users"] = sum(types.values())
    out["ctld_rpcs_per_step"] = round(out["ctld_rpcs_user"] / steps, 3)
    out["dbd_rpcs_per_step"] = round(out["dbd_rpcs_user"] / steps, 3)
    # sortie's event log stamps its submissions more finely than sacct's whole seconds.
    if events and os.path.exists(events):
        last = None
        for line in open(events):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "job_submitted" or e.get("kind") == "job_submitted" \
                    or e.get("type") == "job_submitted":
                ts = e.get("ts") or e.get("time") or e.get("at")
                if isinstance(ts, str):
                    try:
                        ts = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
                    except ValueError:
                        ts = None
                if isinstance(ts, (int, float)):
                    ts = ts / 1000 if ts > 1e11 else ts
                    last = ts if last is None else max(last, ts)
        if last is not None:
            out["all_submitted_s_events"] = round(last - t0, 2)
    print(json.dumps(out))


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def table(path: str) -> None:
    res = [json.loads(line) for line in open(path) if line.strip()]
    if not res:
        sys.exit("no results")
    steps = res[0]["steps"]
    rows = [
        ("time until every step was submitted (s, sacct Submit)", "all_submitted_s"),
        ("  first submission (s)", "first_submit_s"),
        ("  from sortie's event log (s)", "all_submitted_s_events"),
        ("last job ended (s, sacct End)", "last_end_s"),
        ("wall time until the tool exited (s)", "wall_s"),
        ("slurmctld RPCs by the bench user", "ctld_rpcs_user"),
        (f"slurmctld RPCs per step (/{steps})", "ctld_rpcs_per_step"),
        ("slurmdbd RPCs by the bench user", "dbd_rpcs_user"),
        (f"slurmdbd RPCs per step (/{steps})", "dbd_rpcs_per_step"),
        ("jobs seen in sacct (array elements counted)", "jobs_seen"),
        ("sbatch submissions (job ids)", "sbatch_rows"),
    ]
    names = [r["tool"] for r in res]
    w = max(len(r[0]) for r in rows) + 2
    print(f"{'':<{w}}" + "".join(f"{n:>22}" for n in names))
    for label, key in rows:
        vals = [r.get(key) for r in res]
        if all(v is None for v in vals):
            continue
        print(f"{label:<{w}}" + "".join(f"{fmt(v):>22}" for v in vals))
    print(f"{'final states':<{w}}" + "".join(
        f"{','.join(f'{k}:{v}' for k, v in r['states'].items()):>22}" for r in res))
    smk = [r for r in res if r["tool"].startswith("snakemake")]
    srt = [r for r in res if r["tool"].startswith("sortie")]
    if smk and srt:
        s = smk[0]
        print()
        for o in srt:
            print(f"ratio {s['tool']} / {o['tool']}:")
            x, y = s.get("all_submitted_s"), o.get("all_submitted_s_events")
            if x is not None and y:
                print(f"  {'every step submitted (sortie: event log)':<38} {fmt(x):>8} / {fmt(y):>8}"
                      f" = {x / y:.0f}x")
            for label, key in (("every step submitted (sacct, 1 s steps)", "all_submitted_s"),
                               ("wall time to completion", "wall_s"),
                               ("slurmctld RPCs per step", "ctld_rpcs_per_step"),
                               ("slurmdbd RPCs per step", "dbd_rpcs_per_step")):
                x, y = s.get(key), o.get(key)
                if x is None or y is None:
                    r = "-"
                elif y == 0 and key == "all_submitted_s":
                    # Same second as the launch: sortie took under 1 s.
                    r = f">= {x:.0f}x (sortie < 1 s)"
                elif y == 0:
                    r = "inf" if x else "-"
                else:
                    r = f"{x / y:.1f}x"
                print(f"  {label:<38} {fmt(x):>8} / {fmt(y):>8} = {r}")
    for r in res:
        for d in ("ctld", "dbd"):
            if r.get(f"{d}_reset"):
                print(f"WARNING: the {d} counters were reset by someone else during {r['tool']}'s run;"
                      f" its {d} figure is a lower bound")


def brief() -> None:
    r = json.loads(sys.stdin.readline())
    print(f"   all {r['jobs_seen']} jobs submitted after {r['all_submitted_s']} s; last ended at"
          f" {r['last_end_s']} s; RPCs by {r['user']}: slurmctld {r['ctld_rpcs_user']},"
          f" slurmdbd {r['dbd_rpcs_user']}")
    print("   RPC types at slurmctld in the window (all users): "
          + ", ".join(f"{k} {v}" for k, v in list(r["ctld_types_all_users"].items())[:8]))


def main() -> None:
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "snap" and len(a) == 2:
        snap(a[1])
    elif a[0] == "jobs" and len(a) == 6:
        jobs(a[1], float(a[2]), a[3], a[4], a[5])
    elif a[0] == "result" and len(a) in (9, 10):
        result(*a[1:])
    elif a[0] == "brief" and len(a) == 1:
        brief()
    elif a[0] == "table" and len(a) == 2:
        table(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
