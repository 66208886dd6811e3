#!/usr/bin/env bash
# Reading Optuna studies, sortie beside Optuna 5.0 on the same files (issue 11 §5):
#   - a 10 000-trial study (5 params, 20 intermediate values each) in SQLite and in a journal: sortie's
#     open + first read (≤ 100 ms) against Optuna's load_study + trials_dataframe(), and the ratio;
#   - a poll that finds nothing new (≤ 1 ms) and one that finds 10 new trials (≤ 5 ms);
#   - a 100 000-trial SQLite study (the 10 000 copied ten times by SQL): sortie opens it, the dashboard
#     cannot (optuna-dashboard#385);
#   - the Trials pane (headless, as the TUI draws it): a leaderboard frame at 10 000 trials ≤ 5 ms, the
#     100 000-trial study opened and scrolled, and the peak RSS with it open ≤ 100 MB.
# The studies are made once by the real Optuna (benches/trials_gen.py, ~8 min for the 10 000 on this VM)
# and kept in ${SORTIE_BENCH_DIR:-~/.cache/sortie-bench/trials}. Prints one PASS/MISS line per goal and
# exits 1 if one is missed.
#
# Usage: benches/trials.sh [--no-optuna-load]   (skip timing Optuna's own load, the slow part)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SORTIE_BENCH_DIR:-$HOME/.cache/sortie-bench/trials}
mkdir -p "$dir"
py=$(bash fixtures/optuna/venv.sh v5)
gen=benches/trials_gen.py
optuna_load=1
[[ ${1:-} == --no-optuna-load ]] && optuna_load=0

if [[ ! -s $dir/10k.db ]]; then
    echo "== making $dir/10k.db with Optuna (once)"
    rm -f "$dir/10k.db.tmp"
    "$py" "$gen" make "sqlite:///$dir/10k.db.tmp" 10000
    mv "$dir/10k.db.tmp" "$dir/10k.db"
fi
if [[ ! -s $dir/10k.journal ]]; then
    echo "== making $dir/10k.journal with Optuna (once)"
    rm -f "$dir/10k.journal.tmp"
    "$py" "$gen" make "$dir/10k.journal.tmp" 10000
    mv "$dir/10k.journal.tmp" "$dir/10k.journal"
fi
if [[ ! -s $dir/100k.db ]]; then
    echo "== making $dir/100k.db: the 10 000 trials ten times over, by SQL"
    cp "$dir/10k.db" "$dir/100k.db.tmp"
    "$py" - "$dir/100k.db.tmp" "$dir/10k.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("ATTACH ? AS src", (sys.argv[2],))
n = c.execute("SELECT max(trial_id) FROM src.trials").fetchone()[0]
for k in range(1, 10):
    o = k * n
    c.execute(f"INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
              f"SELECT trial_id + {o}, number + {o}, study_id, state, datetime_start, datetime_complete FROM src.trials")
    for t, cols in [("trial_params", "param_name, param_value, distribution_json"),
                    ("trial_values", "objective, value, value_type"),
                    ("trial_intermediate_values", "step, intermediate_value, intermediate_value_type"),
                    ("trial_user_attributes", "key, value_json"),
                    ("trial_system_attributes", "key, value_json")]:
        c.execute(f"INSERT INTO {t} (trial_id, {cols}) SELECT trial_id + {o}, {cols} FROM src.{t}")
c.commit()
PY
    mv "$dir/100k.db.tmp" "$dir/100k.db"
fi

cargo build --release --bench trials -q 2>/dev/null || cargo build --release --benches -q
bench=$(ls -t target/release/deps/trials-* | grep -v '\.d$' | head -n 1)
miss=0
run() { local out; out=$("$bench" "$@"); echo "$out"; [[ $out == PASS* ]] || miss=1; }

for f in 10k.db 10k.journal; do
    echo "== $f"
    run load "$dir/$f"
    run poll "$dir/$f"
    if (( optuna_load )); then
        spec=$dir/$f; [[ $f == *.db ]] && spec=sqlite:///$dir/$f
        optuna_s=$("$py" "$gen" load "$spec")
        sortie_ms=$("$bench" load "$dir/$f" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
        ratio=$(python3 -c "print(f'{$optuna_s * 1000 / $sortie_ms:.0f}')")
        if [[ $f == *.db ]]; then
            # The goal (issue 11 §5) is stated for the RDB storage, where Optuna is slowest.
            verdict=PASS; (( ratio >= 45 )) || { verdict=MISS; miss=1; }
            goal=" (goal ≥ 45×)"
        else
            verdict=INFO goal=""
        fi
        echo "$verdict Optuna load_study + trials_dataframe(): ${optuna_s} s; sortie ${sortie_ms} ms: ${ratio}×$goal"
    fi
done
echo "== 10k.db growing (a copy; Optuna adds 10 trials between polls)"
cp "$dir/10k.db" "$dir/grow.db"
run grow "$dir/grow.db" "$py" "$gen"
rm -f "$dir/grow.db"
echo "== the Trials pane on 10k.db (headless, 200×60)"
run_all() { local out; out=$("$bench" "$@"); echo "$out"; grep -q '^MISS' <<<"$out" && miss=1; true; }
run_all pane "$dir/10k.db"
echo "== 100k.db"
"$bench" load "$dir/100k.db" | sed 's/^PASS\|^MISS/INFO/; s/; goal ≤ 100 ms//'
echo "== the Trials pane on 100k.db (opens, scrolls; peak RSS ≤ 100 MB)"
run_all pane "$dir/100k.db"
exit $miss
