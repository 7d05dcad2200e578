#!/usr/bin/env bash
# Piece 4: PPO on the four MinAtar games at gymnax-blines' settings (10M steps, 4 seeds each). Repeat until finished (likely 2 pieces).
# Resumable: run it again (same command) until it prints "every case finished"; bring
# $OUT/suite_minatar back to benchmarks/results/suite_minatar (carry it) before the next piece.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
timeout 800 python3 benchmarks/suite.py --suite minatar  --deadline 660 \
  --out benchmarks/results/suite_minatar --quiet | tee "$OUT/04_minatar_ppo.log" || true
hand_back benchmarks/results/suite_minatar
