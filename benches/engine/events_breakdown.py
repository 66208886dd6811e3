#!/usr/bin/env python3
"""Where a sortie run spent its time, from the timestamps in its events.jsonl.

Usage: events_breakdown.py RUN_DIR/events.jsonl

Prints, in seconds:
  setup       run_created → first attempt_started (plan, run dir, lease, index)
  steps       first attempt_started → last attempt_ended
  teardown    last attempt_ended → last event (final run state, engine stop)
  attempt     attempt_started → attempt_ended per attempt (median, p95): the engine's view of one
              step, including process spawn and the time until the engine noticed its end
  refill      attempt_ended → the next attempt_started (median, p95): how long a worker slot stays
              empty between two steps
  busy        sum of attempt durations / (steps window × slots): how full the slots were
"""

import json
import statistics
import sys


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main(path, slots=2):
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    if not records:
        print("   events: empty log")
        return 0

    counts = {}
    for r in records:
        counts[r.get("type")] = counts.get(r.get("type"), 0) + 1

    starts, ends = {}, {}
    order = []  # (ts, kind) for the refill computation
    for r in records:
        t = r.get("type")
        if t == "attempt_started":
            starts[(r["step"], r["attempt"])] = r["ts"]
            order.append((r["ts"], "start"))
        elif t == "attempt_ended":
            ends[(r["step"], r["attempt"])] = r["ts"]
            order.append((r["ts"], "end"))

    created = next((r["ts"] for r in records if r.get("type") == "run_created"), records[0]["ts"])
    last = records[-1]["ts"]
    if not starts:
        print("   events: no attempts")
        return 0
    first_start = min(starts.values())
    last_end = max(ends.values()) if ends else last
    durations = [ends[k] - starts[k] for k in starts if k in ends]

    # Each end frees a slot; the next start (in log order) after it refills one.
    refills, pending_ends = [], []
    for ts, kind in order:
        if kind == "end":
            pending_ends.append(ts)
        elif pending_ends:
            refills.append(ts - pending_ends.pop(0))

    window = last_end - first_start
    busy = sum(durations) / (window * slots) if window > 0 else float("nan")
    print(f"   events.jsonl: {len(records)} lines, " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(
        f"   sortie time split: setup {first_start - created:.3f} s, steps {window:.3f} s, "
        f"teardown {last - last_end:.3f} s (event timestamps)"
    )
    print(
        f"   per step: attempt median {statistics.median(durations) * 1000:.2f} ms "
        f"(p95 {pct(durations, 95) * 1000:.2f} ms), slot refill median "
        f"{statistics.median(refills) * 1000 if refills else float('nan'):.2f} ms "
        f"(p95 {pct(refills, 95) * 1000:.2f} ms), slots busy {busy * 100:.0f}%"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
