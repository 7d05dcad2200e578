"""Does a long vmapped training scan finish on XLA:CPU? A watchdog script for the jaxlib 0.10
deadlock report (issue 39; ``docs/performance.md``, "JAX versions").

Five shapes, all run with whatever ``$XLA_FLAGS`` the caller sets (none: XLA's defaults, the
multi-threaded Eigen pool included, which is what a user gets):

- ``--shape scan`` (pure JAX, no jaxrl): ``vmap`` over seeds of a ``lax.scan`` of SGD steps on
  a small MLP, the loop shape of every jaxrl agent, small enough to report upstream.
- ``--shape nested``: PPO's loop structure in pure JAX (random draws inside a rollout scan,
  shuffled minibatch SGD in nested scans), to tell whether the hang needs jaxrl at all.
- ``--shape qr`` (pure JAX): four independent orthogonal initialisations (QR factorisations)
  vmapped over seeds: the jaxlib 0.10.2 deadlock in a few lines (``--seeds 16 --width 256``).
- ``--shape solve`` (pure JAX): four independent batched LU solves and Cholesky factorisations.
- ``--shape ppo``: jaxrl's vmapped PPO on CartPole-v1, the program that first hung (with jaxrl's
  initialisation as it is now: outside LAPACK on a CPU with jaxlib 0.10).

The program is compiled, then run ``--repeats`` times. If the process has used (almost) no CPU
for ``--stall`` seconds, it is hung (the jaxlib 0.10 hang is a deadlock: every thread
asleep, which tells it from a process starved on a loaded machine): the script prints ``HUNG``
and every thread's Python stack, and ends with status 1, so a hang shows as a failure with a
stack instead of a stuck job (attach ``gdb`` for the native stacks of XLA's threads).
``--timeout`` seconds after the start, ``faulthandler`` ends it the same way whatever the CPU
did (printing no ``HUNG``). Status 0: it finished.

``--compile-cache DIR`` turns on JAX's persistent compilation cache there (every program
stored): run the same command twice, and the second process runs the programs read back from
it. With jaxlib 0.10.2 that second process hung in the ``ppo`` shape while jaxrl's networks
were initialised by a LAPACK QR; with ``jaxrl.backend.orthogonal_gram_schmidt`` it finishes
(``docs/performance.md``). The ``qr`` and ``solve`` shapes hang with no cache at all.

    python benchmarks/cpu_hang.py --shape scan --seeds 16 --steps 20000
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/cpu_hang.py --shape ppo
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import threading
import time


def runnable_threads() -> int | None:
    """How many of this process's threads, other than the calling one, are running or waiting
    for a CPU (state ``R`` in ``/proc``); None where ``/proc`` is missing."""
    me = threading.get_native_id()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    running = 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        running += state == "R" and int(task) != me
    return running


def stall_watchdog(stall: float, poll: float = 1.0) -> None:
    """Start a daemon thread that ends the process (status 1, all Python stacks printed) once it
    is hung: under 2 % of a core used over the last ``stall`` seconds of wall time, and no
    thread running or waiting for a CPU in 10 consecutive samples, a second apart. A process
    starved on a loaded machine can fall under 2 % too, but it has runnable threads; the
    jaxlib 0.10 hang is a lost completion, every thread asleep. ``gdb -p PID -batch -ex
    "thread apply all bt"`` on a hung process shows the main thread in ``BlockUntilReady`` and
    XLA's threads waiting for work."""

    def watch() -> None:
        samples = [(time.monotonic(), time.process_time())]
        asleep = 0
        while True:
            time.sleep(poll)
            now = (time.monotonic(), time.process_time())
            samples.append(now)
            while samples[0][0] < now[0] - stall:
                samples.pop(0)
            oldest = samples[0]
            if now[0] - oldest[0] < stall - 2 * poll or \
                    now[1] - oldest[1] >= 0.02 * (now[0] - oldest[0]):
                asleep = 0
                continue
            asleep = asleep + 1 if runnable_threads() == 0 else 0
            if asleep >= 10:
                print(f"HUNG: {now[1] - oldest[1]:.2f} s of CPU in the last "
                      f"{now[0] - oldest[0]:.0f} s, every thread asleep", file=sys.stderr,
                      flush=True)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(1)

    threading.Thread(target=watch, name="cpu-hang-watchdog", daemon=True).start()


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


def nested_program(seeds: int, steps: int, width: int):
    """``(jitted vmapped nested training scan, its keys)``: PPO's loop structure in pure JAX.
    Per seed, ``steps // 128`` updates; each rolls out 32 steps of 4 point-mass "envs" (a
    random draw per step, resets by ``where``), then 2 epochs of 4 shuffled minibatches of SGD
    on a tanh MLP regressing the discounted rewards: random draws inside nested loops, which the
    ``scan`` shape lacks."""
    import jax
    import jax.numpy as jnp

    envs, horizon, epochs, minibatches = 4, 32, 2, 4

    def train(key):
        k1, k2, key = jax.random.split(key, 3)
        params = (jax.random.normal(k1, (2, width)) / 3, jax.random.normal(k2, (width, 1)) / 8)
        state = jnp.zeros((envs, 2))

        def predict(p, x):
            return (jnp.tanh(x @ p[0]) @ p[1])[:, 0]

        def env_step(carry, _):
            state, key = carry
            key, noise_key, reset_key = jax.random.split(key, 3)
            action = jax.random.normal(noise_key, (envs,))
            velocity = state[:, 1] + 0.1 * action
            position = state[:, 0] + 0.1 * velocity
            done = jnp.abs(position) > 1.0
            fresh = jax.random.uniform(reset_key, (envs, 2), minval=-0.1, maxval=0.1)
            state = jnp.where(done[:, None], fresh, jnp.stack([position, velocity], -1))
            return (state, key), (state, -position**2, done)

        def update(carry, _):
            params, state, key = carry
            (state, key), (obs, reward, done) = jax.lax.scan(env_step, (state, key), None,
                                                             horizon)

            def discount(next_return, step):
                reward, done = step
                value = reward + 0.9 * next_return * (1.0 - done)
                return value, value

            _, returns = jax.lax.scan(discount, jnp.zeros(envs), (reward, done), reverse=True)
            obs, returns = obs.reshape(-1, 2), returns.reshape(-1)

            def epoch(carry, _):
                params, key = carry
                key, perm_key = jax.random.split(key)
                order = jax.random.permutation(perm_key, obs.shape[0])
                batches = order.reshape(minibatches, -1)

                def sgd(p, batch):
                    def loss(p):
                        return jnp.mean((predict(p, obs[batch]) - returns[batch]) ** 2)

                    value, grad = jax.value_and_grad(loss)(p)
                    return jax.tree.map(lambda a, g: a - 0.01 * g, p, grad), value

                params, losses = jax.lax.scan(sgd, params, batches)
                return (params, key), losses.mean()

            (params, key), losses = jax.lax.scan(epoch, (params, key), None, epochs)
            return (params, state, key), losses.mean()

        return jax.lax.scan(update, (params, state, key), None, max(1, steps // 128))

    return jax.jit(jax.vmap(train)), jax.random.split(jax.random.key(0), seeds)


def qr_program(seeds: int, steps: int, width: int):
    """``(jitted vmapped orthogonal initialisation, its keys)``: per seed, four independent
    ``width × width`` orthogonal matrices (``jax.nn.initializers.orthogonal``: a QR
    factorisation each), the initialisation every jaxrl network runs; ``steps`` is unused. The
    four batched QR calls are independent, so XLA:CPU may run them on its intra-op threads at
    the same time."""
    import jax

    init = jax.nn.initializers.orthogonal()

    def orthogonal(key):
        return [init(k, (width, width)) for k in jax.random.split(key, 4)]

    return jax.jit(jax.vmap(orthogonal)), jax.random.split(jax.random.key(0), seeds)


def solve_program(seeds: int, steps: int, width: int):
    """``(jitted vmapped linear solves, their keys)``: per seed, four independent ``width ×
    width`` LU solves (``jnp.linalg.solve``, LAPACK's getrf / getrs), the kernels of jaxrl's
    LQR, iLQR and exact policy evaluation; ``steps`` is unused. Checks whether jaxlib's other
    batched LAPACK kernels share the QR's deadlock."""
    import jax
    import jax.numpy as jnp

    def solves(key):
        out = []
        for k in jax.random.split(key, 4):
            a = jax.random.normal(k, (width, width)) + width * jnp.eye(width)
            out.append(jnp.linalg.solve(a, jnp.ones(width)))
            out.append(jnp.linalg.cholesky(a @ a.T))
        return out

    return jax.jit(jax.vmap(solves)), jax.random.split(jax.random.key(0), seeds)


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
    parser.add_argument("--shape", choices=("scan", "nested", "qr", "solve", "ppo"), default="scan")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20_000,
                        help="SGD steps per seed (scan) or env steps per seed (nested, ppo)")
    parser.add_argument("--width", type=int, default=64, help="hidden width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before the watchdog dumps the stacks and exits")
    parser.add_argument("--stall", type=float, default=60.0,
                        help="seconds without CPU use after which the process counts as hung")
    parser.add_argument("--compile-cache", default="",
                        help="JAX's persistent compilation cache in this directory (every "
                             "program cached): run twice, the second run reads it back")
    args = parser.parse_args(argv)

    faulthandler.dump_traceback_later(args.timeout, exit=True)
    stall_watchdog(args.stall)
    import jax
    import jaxlib

    if args.compile_cache:
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, cores {os.cpu_count()}", flush=True)
    started = time.perf_counter()
    build = {"scan": scan_program, "nested": nested_program, "qr": qr_program,
             "solve": solve_program, "ppo": ppo_program}[args.shape]
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
