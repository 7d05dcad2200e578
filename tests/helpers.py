"""Assertions and small fixtures' builders shared by the tests."""

from __future__ import annotations

import jax
import numpy as np


def key_data(tree):
    """Replace typed PRNG keys by their raw data so trees can be compared leaf by leaf."""
    return jax.tree.map(
        lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        else x, tree)


def leaves_equal(a, b) -> bool:
    """Bitwise equality of two pytrees of arrays (typed keys compared by their data; NaN equals
    NaN, as in the episode-return metric before the first finished episode)."""
    pairs = zip(jax.tree.leaves(key_data(a)), jax.tree.leaves(key_data(b)), strict=True)
    return all(np.array_equal(x, y, equal_nan=np.issubdtype(np.asarray(x).dtype, np.inexact))
               for x, y in pairs)


def strongly_typed(tree):
    """The same arrays without JAX's weak types. ``checkpoint.restore`` returns strongly typed
    arrays (an env's step counter is weakly typed when it comes out of ``init``), and a jitted
    function compiles again for each new input type: start a run from this state and the
    functions compiled for it also take the restored state."""
    return jax.tree.map(
        lambda x: x if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        else jax.lax.convert_element_type(x, x.dtype), tree)



def half_run(agent):
    """``jit(state -> scan of agent.update over half of agent.num_updates)``: the run's first or
    second half, for resume tests (checkpoint in the middle, continue, compare)."""
    @jax.jit
    def half(state):
        return jax.lax.scan(lambda s, _: agent.update(s), state, None,
                            length=agent.num_updates // 2)

    return half


def optimised_jit(fun, **kwargs):
    """``jax.jit`` with XLA's default backend optimisation level (3) and fusion emitters, which
    the suite's flags turn down (``conftest.py``): for the learning tests whose run outlasts
    their compile."""
    return jax.jit(fun, compiler_options={"xla_backend_optimization_level": 3,
                                          "xla_cpu_use_fusion_emitters": True}, **kwargs)


def expert_pairs(size: int, seed: int = 0, env_id: str | None = "CartPole-v1"):
    """A ``jaxrl.datasets.Dataset`` of ``size`` CartPole-like states (uniform in a box around
    upright) and the scripted expert's action on each: behaviour cloning needs pairs, not
    trajectories. ``env_id`` None leaves the env out of the metadata."""
    import jax.numpy as jnp

    from jaxrl import datasets
    from jaxrl.envs.experts import cartpole_expert

    rng = np.random.default_rng(seed)
    obs = rng.uniform([-1.0, -1.0, -0.2, -1.0], [1.0, 1.0, 0.2, 1.0], (size, 4)).astype(np.float32)
    actions = np.asarray(cartpole_expert(jnp.asarray(obs)), np.int32)
    return datasets.Dataset(
        observations=obs, actions=actions, rewards=np.ones(size, np.float32),
        next_observations=obs, terminated=np.zeros(size, bool),
        truncated=np.arange(size) == size - 1, log_probs=np.zeros(size, np.float32),
        metadata={"policy": "expert", **({"env": env_id} if env_id else {})})


def tiny_bc_run(out, demo_file: str) -> str:
    """A 20-step ``bc`` run on CartPole demonstrations in ``out`` (8-wide tanh MLP, raw
    observations, so an agent's ``init_from`` copy of it is bitwise); its directory."""
    from jaxrl import runner
    from jaxrl.agents import bc

    config = bc.Config(total_gradient_steps=20, log_frequency=20, batch_size=32, eval_episodes=1,
                       hidden_sizes=(8,), activation="tanh", normalize_obs=False)
    runner.run("bc", "CartPole-v1", config, dataset=demo_file, out=out, progress=False)
    return str(out)
