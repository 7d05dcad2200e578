#!/usr/bin/env bash
# Run HERE (not on the GPU machine), once, from the repository root: download the wheels the GPU
# image lacks into .whl/ (git-ignored via .git/info/exclude); every piece names `.whl` in carry.
# The image has jax/jaxlib 0.11.2 with CUDA 13, flax, optax, chex, orbax, numpy, scipy, rich,
# matplotlib; it lacks brax, mujoco, gymnax, distrax and the rest below. jaxrl pins jax < 0.10
# (a CPU deadlock seen with jaxlib 0.10.x); on the GPU the image's 0.11.2 is used and stated.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
mkdir -p .whl
download() {
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "$@"
}
# The versions of this repository's .venv (where the CPU twins ran).
download brax==0.14.2 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-mjx==3.17.0 gymnax==1.0.1 \
  distrax==0.1.9 tensorflow-probability dm-tree==0.1.10 gast==0.7.0 cloudpickle==3.1.3 \
  decorator==5.3.1 ml-collections==1.1.0 tyro==1.0.17 docstring-parser==0.18.0 \
  typeguard==4.6.1 shtab trimesh==5.2.0 tensorboardX==2.6.5 flask==3.1.3 flask-cors==6.0.5 \
  itsdangerous blinker glfw==2.11.0 pyopengl==3.1.10 mediapy==1.2.7 playground==0.2.0
du -sh .whl   # must stay under the 64 MiB a device call may carry, with the tree
