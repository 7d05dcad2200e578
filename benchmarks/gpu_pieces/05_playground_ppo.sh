#!/usr/bin/env bash
# Piece 5: PPO on playground/CartpoleBalance and playground/CheetahRun at Playground's PPO settings, REDUCED to 20M steps. Needs pip install -e '.[playground]' (and warp-lang is not needed: impl=jax).
# Resumable: run it again (same command) until it prints "every case finished"; bring
# $OUT/suite_playground back to benchmarks/results/suite_playground (carry it) before the next piece.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
timeout 800 python3 benchmarks/suite.py --suite playground  --deadline 660 \
  --out benchmarks/results/suite_playground --quiet | tee "$OUT/05_playground_ppo.log" || true
hand_back benchmarks/results/suite_playground
