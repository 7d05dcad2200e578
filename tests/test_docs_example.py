"""docs/writing-an-algorithm.md's example (docs/examples/gae_pg.py), registered the way the page
says, trains through the runner and the CLI and is deterministic."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import leaves_equal

from jaxrl import cli, envs, registry, runner

EXAMPLES = Path(__file__).parents[1] / "docs" / "examples"


@pytest.fixture
def gae_pg(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    algorithm = registry.Algorithm("gae_pg", "gae_pg", "on-policy",
                                   "policy gradient with GAE advantages", "§6 Actor-Critic")
    monkeypatch.setitem(registry._REGISTRY, algorithm.name, algorithm)
    return algorithm.load()


@pytest.mark.slow
def test_the_documented_example_trains_and_is_deterministic(gae_pg, tmp_path, capsys):
    config = gae_pg.Config(total_timesteps=4 * 4 * 16, num_envs=4, num_steps=16,
                           hidden_sizes=(16,))
    env, env_params = envs.make("CartPole-v1")
    train = jax.jit(jax.vmap(gae_pg.make_train(config, env, env_params)))
    keys = jax.random.key(0)[None]  # seed 0, as the runner trains it
    first, second = train(keys), train(keys)
    assert leaves_equal(first, second)
    result = runner.run("gae_pg", "CartPole-v1", config, out=tmp_path / "run", progress=False)
    np.testing.assert_array_equal(result.metrics["episode_return"],
                                  first[1]["episode_return"])
    with pytest.raises(SystemExit):
        cli.main(["train", "gae_pg", "--help"])
    assert "--gae-lambda" in capsys.readouterr().out
