"""The preferences pipeline end to end on a token task, scored under the hidden reward.

SFT on noisy scripted demonstrations → the reference; preference pairs sampled from it and
labelled by Bradley–Terry on the hidden reward; a reward model; then best-of-n, RLHF (PPO with
the per-token KL penalty), DPO and IPO. Each policy is scored by ``training.preferences.
policy_report`` on fresh samples: win rate against the reference (ties ½), mean hidden reward, KL
to the reference in nats. Writes ``benchmarks/results/preferences_cpu.{json,md}``.

    python benchmarks/preferences.py [--seeds 2] [--env Tokens-sort-v0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from jaxrl import envs
from jaxrl.agents import dpo, ipo, reward_model, rlhf, sft
from jaxrl.datasets import generation
from jaxrl.training import preferences as family
from jaxrl.training.agent import train_from_agent

RESULTS = Path(__file__).parent / "results"
MODEL = {"width": 32, "num_layers": 2, "num_heads": 4}


def seed_state(states, i):
    return jax.tree.map(lambda x: x[i], states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Tokens-sort-v0")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args()
    env, env_params = envs.make(args.env)
    reward = family.hidden_reward_fn(env)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    rows, timings, start = {}, {}, time.time()

    def report(name, policy, reference):
        scores = score(policy.params, reference.params, jax.random.key(123))
        return {k: float(v) for k, v in scores.items()}

    def add(name, per_seed, extra=None):
        rows[name] = {k: [r[k] for r in per_seed] for k in per_seed[0]} | (extra or {})
        timings[name] = round(time.time() - start, 1)
        print(name, {k: np.round(np.mean(v), 3) for k, v in rows[name].items()
                     if isinstance(v, list)}, f"{timings[name]} s", flush=True)

    demos = generation.generate(args.env, "expert", 8192, expert_algo="scripted", noise=0.4,
                                num_envs=16, seed=0)
    sft_config = sft.Config(total_gradient_steps=1500, log_frequency=500, batch_size=128,
                            learning_rate=1e-3, **MODEL)
    state, _ = jax.jit(sft.make_train(sft_config, env, env_params, demos))(jax.random.key(0))
    reference = family.SequencePolicy(family.make_model(sft_config, env_params), state.params)
    model = reference.model
    score = jax.jit(lambda params, reference_params, key: family.policy_report(
        key, model, params, family.SequencePolicy(model, reference_params), reward,
        args.samples))
    add("sft (reference)", [report("sft", reference, reference)])

    chosen, rejected, _ = jax.jit(lambda key: family.make_preferences(
        key, reference, env, 2048, 0.05))(jax.random.key(1))
    pairs = family.Preferences(np.asarray(chosen), np.asarray(rejected), {"env": args.env})
    rm_config = reward_model.Config(total_gradient_steps=1000, log_frequency=500,
                                    batch_size=64, **MODEL)
    rm_state, rm_metrics = jax.jit(reward_model.make_train(rm_config, env, env_params, pairs))(
        jax.random.key(2))
    scorer = family.SequencePolicy(family.make_model(rm_config, env_params), rm_state.params)
    rows["reward model"] = {"heldout_accuracy": float(rm_metrics["heldout_accuracy"][-1]),
                            "heldout_ece": float(rm_metrics["heldout_ece"][-1])}
    print("reward model", rows["reward model"], flush=True)

    for n in (4, 16):
        best = jax.jit(lambda key, n=n: family.best_of_n(key, reference, scorer, n,
                                                         args.samples))
        per_seed = []
        for key in keys:
            tokens = best(key)
            ref_tokens, _ = family.sample(reference.model, reference.params,
                                          jax.random.fold_in(key, 1), args.samples)
            hidden, ref_hidden = reward(tokens), reward(ref_tokens)
            per_seed.append({"win_rate": float(np.mean((hidden > ref_hidden)
                                                       + 0.5 * (hidden == ref_hidden))),
                             "eval_return": float(hidden.mean()),
                             "kl": float(np.log(n) - (n - 1) / n)})
        add(f"best-of-{n} (KL: the bound log n - (n-1)/n)", per_seed)

    rlhf_config = rlhf.Config(total_timesteps=32 * 16 * 60, kl_coef=0.05)
    train = jax.jit(jax.vmap(rlhf.make_train(rlhf_config, env, env_params, reference, scorer)))
    states, _ = train(keys)
    add("rlhf (β = 0.05)", [report("rlhf", rlhf.policy_params(
        rlhf_config, env_params, seed_state(states, i), reference), reference)
        for i in range(args.seeds)])

    for name, module, config in (
            ("dpo (β = 0.1)", dpo, dpo.Config(total_gradient_steps=600, log_frequency=300,
                                             batch_size=64, beta=0.1)),
            ("ipo (τ = 0.1)", ipo, ipo.Config(total_gradient_steps=600, log_frequency=300,
                                             batch_size=64, tau=0.1))):
        agent = module.make_agent(config, env, env_params, reference, pairs)
        states, _ = jax.jit(jax.vmap(train_from_agent(agent)))(keys)
        add(name, [report(name, family.SequencePolicy(reference.model, seed_state(
            states, i).params), reference) for i in range(args.seeds)])

    payload = {"env": args.env, "seeds": args.seeds, "samples": args.samples,
               "device": jax.devices()[0].device_kind, "rows": rows,
               "elapsed_s": timings, "model": MODEL}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "preferences_cpu.json").write_text(json.dumps(payload, indent=1))
    lines = [f"Preferences on {args.env} ({args.seeds} seeds; {args.samples} samples per score; "
             f"reference = SFT on ε = 0.4 demonstrations)", "",
             "| method | win rate vs reference | hidden reward | KL (nats) |",
             "| --- | --- | --- | --- |"]
    for name, row in rows.items():
        if "win_rate" not in row:
            continue
        cells = [f"{np.mean(row[k]):.3f} ± {np.std(row[k]):.3f}" if k in row else "–"
                 for k in ("win_rate", "eval_return", "kl")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rm = rows["reward model"]
    lines += ["", f"Reward model: held-out accuracy {rm['heldout_accuracy']:.3f}, "
                  f"ECE {rm['heldout_ece']:.3f}."]
    (RESULTS / "preferences_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
