#!/usr/bin/env bash
# Piece 2: PPO on halfcheetah and humanoid at Brax's settings, REDUCED to 10M steps (labelled). Repeat until finished.
# Resumable: run it again (same command) until it prints "every case finished"; bring
# $OUT/suite_brax back to benchmarks/results/suite_brax (carry it) before the next piece.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
timeout 800 python3 benchmarks/suite.py --suite brax --only ppo-halfcheetah --only ppo-humanoid --deadline 660 \
  --out benchmarks/results/suite_brax --quiet | tee "$OUT/02_brax_halfcheetah_humanoid.log" || true
hand_back benchmarks/results/suite_brax
