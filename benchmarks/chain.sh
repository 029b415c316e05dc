#!/bin/bash
# Run learning benchmarks one after another, each resumable: benchmarks/chain.sh ALGO:TASK ...
#
# Each job is `benchmarks/learn.py ALGO TASK --seeds 0 1 2 --jobs 1 --threshold 0.9 --resume`
# with its runs under $OUT (default runs/benchmarks); smax_3m runs at QMIX's recorded 1M-step
# budget (record ALGO_smax_3m_1M, test win rate). Two chains side by side keep both cores busy;
# stopped at any point (a session's end), the same command continues every seed from its
# checkpoint. Run it from a clone at a fixed commit (PYTHONPATH=<clone>/src) so that edits to
# the working tree do not leak into a running study.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/benchmarks}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
for job in "$@"; do
  algo=${job%%:*}; task=${job#*:}
  if [ "$task" = smax_3m ]; then
    extra=(total_env_steps=1000000 --metric test_win_rate --name "${algo}_smax_3m_1M")
  else
    extra=()
  fi
  echo "$(date -u +%H:%M) start $algo $task"
  "$PYTHON" benchmarks/learn.py "$algo" "$task" "${extra[@]}" --seeds 0 1 2 --jobs 1 \
    --threshold 0.9 --out "$OUT" --resume > "$OUT/$algo.$task.log" 2>&1
  echo "$(date -u +%H:%M) done $algo $task rc=$?"
done
