#!/usr/bin/env bash
# Run a benchmark suite on a machine with no package index (e.g. a leased GPU box whose image
# holds jax, flax, optax, chex, orbax, numpy and torch), from wheels fetched beforehand by
# benchmarks/peers/download_wheels.sh. jaxrl and each peer get their own target dir on
# PYTHONPATH (rejax needs gymnax 0.0.9, jaxrl gymnax 1.x), so all run on the image's jax.
#   bash benchmarks/offline_suite.sh OUT_JSON [run.py options, e.g. --suite full --deadline 420]
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
exec python3 "$repo/benchmarks/run.py" --out "$out" \
    --peer-python "rejax=$site/python-rejax" --peer-python "sbx=$site/python-sbx" "$@"
