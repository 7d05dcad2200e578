"""Does a long vmapped training scan finish on XLA:CPU? A watchdog script for the jaxlib 0.10
deadlock report (issue 39; ``docs/performance.md``, "JAX versions").

Two shapes, both run with whatever ``$XLA_FLAGS`` the caller sets (none: XLA's defaults, the
multi-threaded Eigen pool included, which is what a user gets):

- ``--shape scan`` (pure JAX, no jaxrl): ``vmap`` over seeds of a ``lax.scan`` of SGD steps on
  a small MLP, the loop shape of every jaxrl agent, small enough to report upstream.
- ``--shape ppo``: jaxrl's vmapped PPO on CartPole-v1, the program that first hung.

The program is compiled, then run ``--repeats`` times. If it has not finished after
``--timeout`` seconds, ``faulthandler`` prints every thread's Python stack and ends the process
with status 1, so a hang shows as a failure with a stack instead of a stuck job (the Python
stack ends in ``block_until_ready`` or the call; the wedged threads are XLA's, so attach ``gdb``
for native stacks). Status 0: it finished.

    python benchmarks/cpu_hang.py --shape scan --seeds 16 --steps 20000
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/cpu_hang.py --shape ppo
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time


def scan_program(seeds: int, steps: int, width: int):
    """``(jitted vmapped training scan, its argument)``: per seed, ``steps`` SGD steps of a
    two-layer tanh MLP regressing a fixed random target on a fixed batch of 64 inputs."""
    import jax
    import jax.numpy as jnp

    def train(key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        x = jax.random.normal(k1, (64, 8))
        y = jnp.sin(x @ jax.random.normal(k2, (8, 1)))
        params = (jax.random.normal(k3, (8, width)) / 3, jax.random.normal(k4, (width, 1)) / 8)

        def loss(p):
            return jnp.mean((jnp.tanh(x @ p[0]) @ p[1] - y) ** 2)

        def step(p, _):
            value, grad = jax.value_and_grad(loss)(p)
            return jax.tree.map(lambda a, g: a - 0.05 * g, p, grad), value

        return jax.lax.scan(step, params, None, length=steps)

    return jax.jit(jax.vmap(train)), jax.random.split(jax.random.key(0), seeds)


def ppo_program(seeds: int, steps: int, width: int):
    """``(jitted vmapped PPO on CartPole-v1, its keys)`` with jaxrl's defaults otherwise."""
    import jax

    from jaxrl import envs
    from jaxrl.agents import ppo

    env, env_params = envs.make("CartPole-v1")
    config = ppo.Config(total_timesteps=steps, hidden_sizes=(width, width))
    train = ppo.make_train(config, env, env_params)
    return jax.jit(jax.vmap(train)), jax.random.split(jax.random.key(0), seeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("scan", "ppo"), default="scan")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20_000,
                        help="SGD steps per seed (scan) or env steps per seed (ppo)")
    parser.add_argument("--width", type=int, default=64, help="hidden width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before the watchdog dumps the stacks and exits")
    parser.add_argument("--compile-cache", default="",
                        help="JAX's persistent compilation cache in this directory (every "
                             "program cached): run twice, the second run reads it back")
    args = parser.parse_args(argv)

    faulthandler.dump_traceback_later(args.timeout, exit=True)
    import jax
    import jaxlib

    if args.compile_cache:
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, cores {os.cpu_count()}", flush=True)
    started = time.perf_counter()
    build = scan_program if args.shape == "scan" else ppo_program
    train, keys = build(args.seeds, args.steps, args.width)
    compiled = train.lower(keys).compile()
    print(f"compiled in {time.perf_counter() - started:.1f} s", flush=True)
    for repeat in range(args.repeats):
        begun = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        print(f"run {repeat}: {time.perf_counter() - begun:.1f} s", flush=True)
    faulthandler.cancel_dump_traceback_later()
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    faulthandler.enable()
    sys.exit(main())
