#!/usr/bin/env bash
# Piece 0 (~3 min, run first with the carried .whl): the imports work on the image's jax, and the
# CPU twins of the brax and minatar suites run on the GPU (a case of each), so that later pieces
# do not fail at import.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 -c "import brax, gymnax, jaxrl, jax; print(jax.__version__, brax.__version__)" | tee "$OUT/00.log"
timeout 400 python3 benchmarks/suite.py --suite minatar --twin cpu --only ppo-breakout \
  --out "$OUT/smoke_minatar" --quiet | tee -a "$OUT/00.log"
timeout 400 python3 benchmarks/suite.py --suite brax --twin cpu --only ppo-ant \
  --out "$OUT/smoke_brax" --quiet | tee -a "$OUT/00.log"
