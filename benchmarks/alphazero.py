"""AlphaZero-style search (``jaxrl train alphazero``): return against the number of simulations,
and board-game self-play against baseline players.

Single-agent (``--single``): for each env and ``num_simulations``, train ``seeds`` seeds
(vmapped, ``jax.random.key(0)`` split) for ``total_timesteps`` env steps and report the final
``eval_return`` (``eval_episodes`` fresh episodes, searching without exploration noise) as
mean ± std over seeds, with compile and run seconds. Board games (``--games``): train by
self-play on ``pgx/tic_tac_toe`` and ``pgx/connect_four``, then play 100 games against a
uniformly random player and 100 against the one-ply greedy player (each seat in half of them)
and 2 against itself (``jaxrl.envs.pgx_env.play_games``); wins / draws / losses of the agent.
Rows print as markdown and are appended to ``benchmarks/results/alphazero.json`` as they come::

    python benchmarks/alphazero.py --single --games
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import numpy as np
from measure import timed

from jaxrl import envs
from jaxrl.agents import alphazero
from jaxrl.envs.pgx_env import agent_player, greedy_player, play_games, random_player

SINGLE = {
    "CartPole-v1": (dict(num_envs=8, num_steps=32, total_timesteps=25_600, n_steps=20,
                         eval_episodes=8, gamma=0.99), (2, 4, 8, 16)),
    "Breakout-MinAtar": (dict(num_envs=8, num_steps=32, total_timesteps=25_600, n_steps=10,
                              eval_episodes=8, gamma=0.99), (4, 16)),
}
GAMES = {
    "tic_tac_toe": dict(num_simulations=64, exploration=3.0, num_envs=32, num_steps=9,
                        total_timesteps=32 * 9 * 120, gamma=1.0, value_target="monte_carlo",
                        num_minibatches=4, torso="mlp"),
    "connect_four": dict(num_simulations=32, exploration=3.0, num_envs=32, num_steps=42,
                         total_timesteps=32 * 42 * 40, gamma=1.0, value_target="monte_carlo",
                         num_minibatches=4, hidden_sizes=(128, 128), torso="mlp"),
}
OUT = pathlib.Path(__file__).parent / "results" / "alphazero.json"


def single(env_id: str, seeds: int, num_simulations: int, **settings) -> dict:
    env, params = envs.make(env_id)
    config = alphazero.Config(num_simulations=num_simulations, **settings)
    train = alphazero.make_train(config, env, params)
    (_, metrics), compile_s, run_s = timed(jax.vmap(train),
                                           jax.random.split(jax.random.key(0), seeds))
    final = np.asarray(metrics["eval_return"][:, -1])
    row = {"env": env_id, "num_simulations": num_simulations, "seeds": seeds,
           "eval_return_mean": float(final.mean()), "eval_return_std": float(final.std()),
           "compile_s": compile_s, "run_s": run_s, **settings}
    print(f"| {env_id} | {num_simulations} | {settings['total_timesteps']} | "
          f"{final.mean():.1f} ± {final.std():.1f} | {compile_s:.0f} | {run_s:.0f} |", flush=True)
    return row


def game(name: str, seed: int, **settings) -> dict:
    env, params = envs.make(f"pgx/{name}")
    config = alphazero.Config(**settings)
    agent = alphazero.make_agent(config, env, params)

    def train_and_play(key):
        state, _ = alphazero.make_train(config, env, params)(key)
        player = agent_player(agent.act, state)
        return (play_games(jax.random.key(1), env, player, random_player, 100, mirrored=2),
                play_games(jax.random.key(2), env, player, greedy_player(env), 100))

    (random_games, greedy_games), compile_s, run_s = timed(train_and_play,
                                                           jax.random.key(seed))
    row = {"game": name, "seed": seed, "compile_s": compile_s, "run_s": run_s, **settings}
    for opponent, outcome in (("random", random_games[:100]), ("self", random_games[100:]),
                              ("greedy", greedy_games)):
        outcome = np.asarray(outcome)
        row[opponent] = {"win": int((outcome > 0).sum()), "draw": int((outcome == 0).sum()),
                         "loss": int((outcome < 0).sum())}
        print(f"| {name} | {seed} | {opponent} | {row[opponent]['win']} / "
              f"{row[opponent]['draw']} / {row[opponent]['loss']} | {compile_s:.0f} | "
              f"{run_s:.0f} |", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", action="store_true", help="CartPole-v1, Breakout-MinAtar")
    parser.add_argument("--games", action="store_true", help="tic-tac-toe, connect four")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", help="one env id or game")
    args = parser.parse_args()
    rows = json.loads(OUT.read_text()) if OUT.exists() else []
    if args.single:
        print("| env | simulations | env steps | eval return | compile s | run s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for env_id, (settings, simulations) in SINGLE.items():
            if args.only in (None, env_id):
                for n in simulations:
                    rows.append(single(env_id, args.seeds, n, **settings))
                    write(rows)
    if args.games:
        print("| game | seed | opponent | win / draw / loss | compile s | run s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, settings in GAMES.items():
            if args.only in (None, name):
                for seed in range(args.seeds):
                    rows.append(game(name, seed, **settings))
                    write(rows)


def write(rows: list[dict]) -> None:
    """After every row: a long run stopped halfway keeps what it measured."""
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
