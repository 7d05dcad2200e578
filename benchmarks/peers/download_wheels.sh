#!/usr/bin/env bash
# Download (here, where pip reaches an index) the wheels that benchmarks/offline_suite.sh
# installs on a machine with no package index: an accelerator box whose image already holds
# jax, flax, optax, chex, orbax, numpy and torch. Python 3.12, x86-64 Linux by default.
#   bash benchmarks/peers/download_wheels.sh [DEST=.whl] [PYTHON_VERSION=3.12]
set -euo pipefail
dest=${1:-.whl}
pyver=${2:-3.12}
pip=(python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver"
     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
     --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
     --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# shared by jaxrl and the peers: distributions, gymnasium, the CLI's tyro
"${pip[@]}" -d "$dest/common" distrax==0.1.9 tfp-nightly==0.26.0.dev20261027 dm-tree gast \
    decorator gymnasium==1.3.0 farama-notifications tyro==1.0.17 docstring-parser typeguard
"${pip[@]}" -d "$dest/jaxrl" gymnax==1.0.1
"${pip[@]}" -d "$dest/brax" brax==0.14.2 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 \
    mujoco-mjx==3.17.0 trimesh jaxopt ml-collections tensorboardx flask flask-cors glfw \
    pyopengl websockets
# the peers pin other versions (rejax only runs with gymnax 0.0.9), so each gets its own dir
"${pip[@]}" -d "$dest/rejax" rejax==0.1.3 gymnax==0.0.9
"${pip[@]}" -d "$dest/sbx" sbx-rl==0.28.0 stable_baselines3==2.9.2
du -sh "$dest"/*
