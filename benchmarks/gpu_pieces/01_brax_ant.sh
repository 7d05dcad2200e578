#!/usr/bin/env bash
# Piece 1 (≤ 14 min): PPO on brax/ant (positional) at Brax's published settings, 50M steps, 4 seeds × 4096 envs. Likely 2-4 pieces (repeat this script).
# Resumable: run it again (same command) until it prints "every case finished"; bring
# $OUT/suite_brax back to benchmarks/results/suite_brax (carry it) before the next piece.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
timeout 800 python3 benchmarks/suite.py --suite brax --only ppo-ant --deadline 660 \
  --out benchmarks/results/suite_brax --quiet | tee "$OUT/01_brax_ant.log" || true
hand_back benchmarks/results/suite_brax
