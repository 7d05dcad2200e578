"""Assertions shared by the tests."""

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
