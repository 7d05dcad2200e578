#!/usr/bin/env bash
# Piece 6 (≤ 14 min): Brax's own PPO trainer beside jaxrl's PPO on brax/ant, positional backend,
# Brax's published settings, one seed each, in one process: compile s, env steps/s, wall time to
# ant 6000, peak GPU memory. 50M steps each may not fit one piece: the default here is 20M
# (labelled reduced); raise --steps when the first run shows the speed.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd benchmarks
timeout 800 python3 brax_trainer.py --env ant --backend positional --steps 20000000 \
  --num-envs 4096 --batch-size 2048 --unroll-length 5 --num-minibatches 32 --epochs 4 \
  --gamma 0.97 --learning-rate 3e-4 --entropy 1e-2 --reward-scaling 10 --num-evals 10 \
  --num-eval-envs 128 --target 6000 --out "$OUT/brax_trainer_ant_gpu.json" | tee "$OUT/06.log"
