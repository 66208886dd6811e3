#!/usr/bin/env bash
# Builds each fuzz target's seed corpus in fuzz/corpus/<target>/ from the project's fixtures, the
# examples in the docs and the few hand-picked seeds in fuzz/seeds/. The corpus is not committed
# (fuzzing grows it); run this once before `cargo fuzz run`. Safe to re-run: it only adds files.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=fuzz/corpus
mkdir -p "$corpus"/{pipeline_load,slurm_json,slurm_text,metrics_lines,events_log,events_fold,control_request,optuna_journal}

# Code blocks of one language from markdown files, one file per block.
blocks() { # lang out_dir prefix files...
    local lang=$1 out=$2 prefix=$3
    shift 3
    awk -v lang="$lang" -v out="$out" -v prefix="$prefix" '
        $0 == "```" lang { n++; f = sprintf("%s/%s-%d.txt", out, prefix, n); inb = 1; next }
        inb && /^```/ { inb = 0; close(f); next }
        inb { print > f }' "$@"
}

cp fixtures/pipelines/*.toml "$corpus/pipeline_load/"
cp fixtures/demo/sortie.toml "$corpus/pipeline_load/demo.toml"
blocks toml "$corpus/pipeline_load" docs docs/*.md README.md
# The pipelines written inline in the tests (raw strings holding a `[[step]]`); `{{`/`}}` in format!
# strings stay doubled, which is fine for a seed.
perl -0777 -ne 'my $n = 0; my $base = $ARGV =~ s{.*/}{}r =~ s{\.rs$}{}r;
    while (/r#+"(.*?)"#+/sg) { my $t = $1; next unless $t =~ /\[\[step\]\]/;
        $n++; open(my $f, ">", "'"$corpus"'/pipeline_load/$base-$n.toml") or die; print $f $t; close $f }' \
    tests/*.rs src/pipeline/*.rs

cp fixtures/slurm/*.json "$corpus/slurm_json/"
# partitions_json takes two replies: the fuzz entry splits its input at a NUL byte.
{ cat fixtures/slurm/live-rest-slurm-v0.0.38-partitions.json; printf '\0'
  cat fixtures/slurm/live-rest-slurm-v0.0.38-nodes.json; } >"$corpus/slurm_json/partitions-nodes.bin"

cp fixtures/slurm/*.txt "$corpus/slurm_text/"

cp fuzz/seeds/metrics_lines/* "$corpus/metrics_lines/"
blocks json "$corpus/metrics_lines" metrics-protocol docs/metrics-protocol.md

cp fuzz/seeds/events_log/* "$corpus/events_log/"
cp fuzz/seeds/control_request/* "$corpus/control_request/"
# Journals the real Optuna wrote (4.5 and 5.0), and pieces of them: a fuzzer mutates lines best from short files.
cp fixtures/optuna/*.journal "$corpus/optuna_journal/"
for j in fixtures/optuna/*.journal; do
    head -n 40 "$j" >"$corpus/optuna_journal/$(basename "$j")-head"
done
# events_fold takes structured input (bytes drive a generator): it starts from nothing.

for d in "$corpus"/*/; do echo "$(ls "$d" | wc -l) seeds in $d"; done
