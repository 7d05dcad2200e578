"""Writes the example notebooks from the cells below (outputs empty).

``python examples/build_notebooks.py`` regenerates them after an edit here and
``python examples/build_notebooks.py --execute`` also runs them at their full budgets and stores
their outputs, which the documentation site shows. The test suite executes every notebook at small
budgets (``tests/test_examples.py`` replaces the first code cell, tagged ``parameters``) and checks
that the stored notebooks hold the cells written here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "quickstart": [
        ("md", """# Quickstart: 16 seeds of PPO in one compiled call

Every jaxrl algorithm is `make_train(config, env, env_params) -> train(key)`: a pure function.
`jax.vmap` over keys trains many seeds at once; `jax.jit` compiles the whole run — rollouts,
advantages and updates — into one program."""),
        ("code", """TOTAL_TIMESTEPS = 60_000
SEEDS = 16"""),
        ("code", """import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxrl import envs
from jaxrl.agents import ppo

env, env_params = envs.make("CartPole-v1")
config = ppo.Config(total_timesteps=TOTAL_TIMESTEPS)
train = jax.jit(jax.vmap(ppo.make_train(config, env, env_params)))
keys = jax.random.split(jax.random.key(0), SEEDS)
train_state, metrics = jax.block_until_ready(train(keys))
returns = np.asarray(metrics["episode_return"])
returns.shape  # (seeds, updates)"""),
        ("code", """steps = (np.arange(returns.shape[1]) + 1) * config.num_envs * config.num_steps
mean, std = np.nanmean(returns, axis=0), np.nanstd(returns, axis=0)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(steps, mean, label=f"PPO, mean of {SEEDS} seeds")
ax.fill_between(steps, mean - std, mean + std, alpha=0.3, label="± 1 std")
ax.set(xlabel="env steps", ylabel="episode return", title="CartPole-v1")
ax.legend()
print(f"final return: {mean[-1]:.1f} ± {std[-1]:.1f}")"""),
        ("md", """## A live curve, a run directory, a saved policy

`runner.iterate` is the CLI's runner as an iterator: it writes the files `jaxrl train`
writes (metrics, checkpoints, config) and yields the run chunk by chunk; `LivePlot` redraws
the curve in place as chunks arrive."""),
        ("code", """import tempfile

from jaxrl import runner
from jaxrl.plots import LivePlot
from jaxrl.policy import load_policy

out = tempfile.mkdtemp() + "/ppo-cartpole"
plot = LivePlot(title="CartPole-v1, 4 seeds")
for chunk in runner.iterate("ppo", "CartPole-v1", config, seeds=4, out=out, progress=False):
    plot.update(chunk)"""),
        ("code", """policy = load_policy(out, seed=1)  # newest checkpoint of seed 1
act = jax.jit(policy.act, static_argnames="deterministic")
step = jax.jit(env.step)
obs, state = env.reset(jax.random.key(1), env_params)
total = 0.0
for t in range(500):
    action = act(policy.params, obs, jax.random.key(t), deterministic=True)
    obs, state, reward, terminated, truncated, _ = step(jax.random.key(t), state, action,
                                                        env_params)
    total += float(reward)
    if terminated or truncated:
        break
print(f"one greedy episode of seed 1: return {total:.0f}")"""),
    ],
    "sweep": [
        ("md", """# A hyperparameter sweep in one call

Numeric config fields (`hyper(...)` in a `Config`) are pytree leaves: a stack of configs vmaps
like a stack of keys. Here three learning rates × 8 seeds of PPO train in one compiled call."""),
        ("code", """TOTAL_TIMESTEPS = 40_000
SEEDS = 8"""),
        ("code", """import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.agents import ppo

env, env_params = envs.make("CartPole-v1")
base = ppo.Config(total_timesteps=TOTAL_TIMESTEPS)
rates = [3e-4, 1e-3, 3e-3]
configs = jax.tree.map(lambda *x: jnp.repeat(jnp.stack(x), SEEDS, axis=0),
                       *[base.replace(learning_rate=lr) for lr in rates])
keys = jnp.tile(jax.random.split(jax.random.key(0), SEEDS), len(rates))
sweep = jax.jit(jax.vmap(lambda c, k: ppo.make_train(c, env, env_params)(k)))
_, metrics = jax.block_until_ready(sweep(configs, keys))
returns = np.asarray(metrics["episode_return"]).reshape(len(rates), SEEDS, -1)
returns.shape  # (rates, seeds, updates)"""),
        ("code", """last = np.nanmean(returns[..., -10:], axis=-1)  # each run: its last 10 updates
for lr, runs in zip(rates, last, strict=True):
    print(f"learning rate {lr:g}: final return {runs.mean():6.1f} ± {runs.std():5.1f}")"""),
        ("md", """The CLI does the same with `jaxrl train ppo --sweep learning_rate=3e-4,1e-3,3e-3
--seeds 8`, and writes one `metrics.csv` with a column per swept field."""),
    ],
    "offline": [
        ("md", """# Offline RL from a generated dataset

jaxrl generates its datasets locally: here a scripted CartPole expert with 30 % random actions
(nothing is downloaded). Behaviour cloning and CQL then learn from the file alone."""),
        ("code", """DATASET_STEPS = 20_000
GRADIENT_STEPS = 2_000"""),
        ("code", """import tempfile

import jax
import numpy as np

from jaxrl import datasets, envs
from jaxrl.agents import bc, cql
from jaxrl.datasets import generation

data = generation.generate("CartPole-v1", "expert", DATASET_STEPS, expert_algo="scripted",
                           noise=0.3)
path = datasets.save(tempfile.mkdtemp() + "/cartpole.npz", data)
dataset = datasets.load(path)
print(len(dataset.rewards), "transitions; behaviour return",
      round(dataset.metadata["reference_returns"]["expert"], 1))"""),
        ("code", """env, env_params = envs.make("CartPole-v1")
results = {}
for name, module, config in [
        ("BC", bc, bc.Config(total_gradient_steps=GRADIENT_STEPS,
                             log_frequency=GRADIENT_STEPS // 4)),
        ("CQL", cql, cql.Config(total_gradient_steps=GRADIENT_STEPS,
                                log_frequency=GRADIENT_STEPS // 4))]:
    train = jax.jit(jax.vmap(module.make_train(config, env, env_params, dataset=dataset)))
    _, metrics = train(jax.random.split(jax.random.key(0), 4))
    results[name] = np.asarray(metrics["eval_return"])[:, -1]
    print(f"{name}: evaluation return {results[name].mean():.1f} ± {results[name].std():.1f}")"""),
        ("md", """From the shell: `jaxrl dataset --env CartPole-v1 --policy expert
--expert-algo scripted --noise 0.3 --steps 20000 --out cartpole.npz`, then
`jaxrl train cql --env CartPole-v1 --dataset cartpole.npz --seeds 4`."""),
    ],
    "custom_agent": [
        ("md", """# Writing your own agent

An agent is a `Config` and a `make_agent` that hands the family loop its estimate and its loss.
Here: a vanilla policy gradient with GAE advantages on the on-policy family
(`jaxrl.training.on_policy`), with `jaxrl.losses` doing the maths. The loop supplies rollouts,
epochs, minibatches, logging and checkpointable state."""),
        ("code", """TOTAL_TIMESTEPS = 60_000
SEEDS = 8"""),
        ("code", """from typing import Any

import jax
import numpy as np

from jaxrl import envs, losses
from jaxrl.training import on_policy
from jaxrl.training.agent import Agent, train_from_agent
from jaxrl.training.config import check_config, hyper, static


class Config(on_policy.GradientConfig):
    num_steps: int = static(64, ">= 1")
    gae_lambda: float = hyper(0.95, "[0, 1]")


def make_agent(config: Config, env: Any, env_params: Any) -> Agent:
    check_config(config)
    parts = on_policy.setup(config, env, env_params, "gae_pg")
    optimizer = on_policy.make_optimizer(config, config.num_updates, 1)

    def estimate(batch):
        advantages = losses.gae(batch.reward, batch.value, batch.next_value,
                                batch.discounts(config.gamma), batch.done, config.gae_lambda)
        return advantages, advantages + batch.value

    def loss_fn(params, samples):
        return on_policy.actor_critic_loss(parts.network, params, samples, config.vf_coef,
                                           config.ent_coef)

    return on_policy.make_gradient_agent(config, parts, env_params, optimizer, loss_fn,
                                         estimate)"""),
        ("code", """env, env_params = envs.make("CartPole-v1")
config = Config(total_timesteps=TOTAL_TIMESTEPS, learning_rate=3e-3)
train = jax.jit(jax.vmap(train_from_agent(make_agent(config, env, env_params))))
_, metrics = train(jax.random.split(jax.random.key(0), SEEDS))
returns = np.asarray(metrics["episode_return"])
print(f"first updates: {np.nanmean(returns[:, :5]):.1f}   "
      f"last updates: {np.nanmean(returns[:, -5:]):.1f}")"""),
        ("md", """`docs/writing-an-algorithm.md` walks through the same agent and what the family
loops provide; registering it (`jaxrl.registry.register`) makes it a `jaxrl train` command."""),
    ],
}


def build() -> None:
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(cells=[new_markdown_cell(text) if kind == "md"
                                       else new_code_cell(text) for kind, text in cells])
        # The first code cell holds the budgets; tests/test_examples.py replaces it.
        first = next(cell for cell in notebook.cells if cell.cell_type == "code")
        first.metadata["tags"] = ["parameters"]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                           "language": "python"}
        nbformat.write(notebook, HERE / f"{name}.ipynb")


def read(path: Path, parameters: dict[str, Any] | None = None) -> nbformat.NotebookNode:
    """The notebook at ``path``, with ``parameters`` replacing the assignments of its
    ``parameters`` cell (as papermill would)."""
    notebook = nbformat.read(path, as_version=4)
    if parameters:
        cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    return notebook


def execute(path: Path, parameters: dict[str, Any] | None = None,
            timeout: int = 1200) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel (in its own folder) and return it with its
    outputs; ``parameters`` replace the assignments of its ``parameters`` cell."""
    notebook = read(path, parameters)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


if __name__ == "__main__":
    build()
    if "--execute" in sys.argv[1:]:
        for name in NOTEBOOKS:
            nbformat.write(execute(HERE / f"{name}.ipynb"), HERE / f"{name}.ipynb")
