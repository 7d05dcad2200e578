#!/usr/bin/env bash
# Run a benchmark suite on a machine with no package index (e.g. a leased GPU box whose image
# holds jax, flax, optax, chex, orbax, numpy and torch), from wheels fetched beforehand by
# benchmarks/peers/download_wheels.sh. jaxrl and each peer get their own target dir on
# PYTHONPATH (rejax needs gymnax 0.0.9, jaxrl gymnax 1.x), so all run on the image's jax.
#   bash benchmarks/offline_suite.sh OUT_JSON [run.py options, e.g. --suite full --deadline 420]
# UNROLL_SWEEP=FILE.json first runs benchmarks/unroll.py (options in UNROLL_ARGS) and runs the
# suite with its recommended unroll ($JAXRL_SCAN_UNROLL). END_BY=S adds --deadline so that no
# case starts later than S seconds after this script started.
set -uo pipefail
out=$1; shift
wheels=${WHEELS:-.whl}
site=${SITE:-/tmp/jaxrl-site}
repo=$(cd "$(dirname "$0")/.." && pwd)
install() {  # install DIR's wheels into $site/NAME
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site/$1" "$wheels/$1"/*.whl || { echo "installing $1 failed"; exit 1; }
}
for name in common jaxrl brax rejax sbx; do install "$name"; done
for peer in rejax sbx; do
    cat >"$site/python-$peer" <<WRAP
#!/usr/bin/env bash
PYTHONPATH=$site/$peer:$site/common exec python3 "\$@"
WRAP
    chmod +x "$site/python-$peer"
done
export PYTHONPATH=$repo:$site/jaxrl:$site/brax:$site/common
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
if [[ -n ${UNROLL_SWEEP:-} ]]; then
    # shellcheck disable=SC2086  # UNROLL_ARGS is a list of options
    python3 "$repo/benchmarks/unroll.py" --out "$UNROLL_SWEEP" ${UNROLL_ARGS:-} || exit 1
    JAXRL_SCAN_UNROLL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["recommended"])' "$UNROLL_SWEEP")
    export JAXRL_SCAN_UNROLL
    echo "suite runs with JAXRL_SCAN_UNROLL=$JAXRL_SCAN_UNROLL"
fi
deadline=()
if [[ -n ${END_BY:-} ]]; then deadline=(--deadline $((END_BY - SECONDS))); fi
exec python3 "$repo/benchmarks/run.py" --out "$out" \
    --peer-python "rejax=$site/python-rejax" --peer-python "sbx=$site/python-sbx" "$@" \
    "${deadline[@]}"
