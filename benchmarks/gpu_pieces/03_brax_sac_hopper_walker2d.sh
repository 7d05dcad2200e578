#!/usr/bin/env bash
# Piece 3: SAC on hopper and walker2d at Brax's settings, REDUCED to 1M steps, 1 seed. Repeat until finished.
# Resumable: run it again (same command) until it prints "every case finished"; bring
# $OUT/suite_brax back to benchmarks/results/suite_brax (carry it) before the next piece.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
timeout 800 python3 benchmarks/suite.py --suite brax --only sac-hopper --only sac-walker2d --deadline 660 \
  --out benchmarks/results/suite_brax --quiet | tee "$OUT/03_brax_sac_hopper_walker2d.log" || true
hand_back benchmarks/results/suite_brax
