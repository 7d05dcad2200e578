# Sourced by every piece: run from the repository root, record the machine, and hand the suite
# directory back through $OUT (the device tool returns what is under it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# The image's python3 (jax 0.11.2, CUDA); the carried wheels (prepare_wheels.sh) on top.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
alias python=python3
shopt -s expand_aliases
OUT="${OUT:-/tmp/gpu_piece_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" || true
python3 -c "import jax; print(jax.devices())" | tee "$OUT/devices.txt"
# Persistent compile cache inside the carried tree: a later piece on the same GPU kind skips
# most compiles.
export JAX_COMPILATION_CACHE_DIR="$PWD/benchmarks/results/jax_cache"
hand_back() {  # copy the suite directories back (checkpoints included) for the next piece
  for dir in "$@"; do
    [ -d "$dir" ] && cp -r "$dir" "$OUT/" || true
  done
}
