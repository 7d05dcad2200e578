"""The preferences pipeline end to end on a token task, scored under the hidden reward.

SFT on noisy scripted demonstrations → the reference; preference pairs sampled from it and
labelled by Bradley–Terry on the hidden reward; a reward model; then best-of-n, RLHF (PPO with
the per-token KL penalty: a β sweep vmapped over β, and adaptive β), DPO and IPO. Each policy is
scored by ``training.preferences.policy_report`` on fresh samples: win rate against the
reference (ties ½), mean hidden reward, KL to the reference in nats; RLHF rows also give the
proxy (the whitened reward-model score of the policy's samples), so over-optimisation (proxy up,
hidden down as β falls) shows. Writes ``benchmarks/results/preferences_cpu.{json,md}`` and the
reward-vs-KL frontier ``preferences_frontier.png`` (also copied to ``docs/images/``).

    python benchmarks/preferences.py [--seeds 4] [--sweep-seeds 2] [--env Tokens-sort-v0]

``--only-adaptive --cache FILE`` reruns only the adaptive-β RLHF row on ``--seeds`` seeds (seed
``i`` is the same key as in a full run) and replaces that row in the existing JSON, markdown and
plot.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.agents import dpo, ipo, reward_model, rlhf, sft
from jaxrl.datasets import generation
from jaxrl.training import preferences as family
from jaxrl.training.agent import train_from_agent

RESULTS = Path(__file__).parent / "results"
IMAGES = Path(__file__).parent.parent / "docs" / "images"
MODEL = {"width": 32, "num_layers": 2, "num_heads": 4}
BETAS = (0.02, 0.05, 0.1, 0.2, 0.5)
RLHF_STEPS = 32 * 16 * 60


def seed_state(states, i):
    return jax.tree.map(lambda x: x[i], states)


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, row in rows.items():
        if "kl" not in row:
            continue
        kl, hidden = np.mean(row["kl"]), np.mean(row["eval_return"])
        if name.startswith("rlhf β"):
            continue
        marker = next(m for prefix, m in (("sft", "k*"), ("best", "gs"), ("dpo", "bD"),
                                          ("ipo", "m^"), ("rlhf (adaptive", "rP"),
                                          ("rlhf", "ro")) if name.startswith(prefix))
        left.plot(kl, hidden, marker, ms=9, label=name)
    sweep = [(row["beta"], np.mean(row["kl"]), np.mean(row["eval_return"]),
              np.mean(row["proxy"])) for name, row in rows.items() if name.startswith("rlhf β")]
    sweep.sort()
    betas, kls, hidden, proxy = map(np.array, zip(*sweep, strict=True))
    left.plot(kls, hidden, "r.-", label="RLHF, β sweep")
    for beta, x, y in zip(betas, kls, hidden, strict=True):
        left.annotate(f"β={beta:g}", (x, y), textcoords="offset points", xytext=(4, -10),
                      fontsize=7)
    left.set_xlabel("KL(π ‖ π_ref), nats")
    left.set_ylabel("hidden reward")
    left.set_title("reward vs KL (Tokens-sort-v0)")
    left.legend(fontsize=7, loc="lower right")
    right.plot(kls, proxy, "r.--", label="proxy: whitened reward-model score")
    twin = right.twinx()
    twin.plot(kls, hidden, "k.-", label="hidden reward")
    right.set_xlabel("KL(π ‖ π_ref), nats (β falls to the right)")
    right.set_ylabel("proxy score (reference: 0 ± 1)")
    twin.set_ylabel("hidden reward")
    right.set_title("RLHF: proxy vs hidden reward")
    right.legend(loc="upper left", fontsize=7)
    twin.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def inputs(args, env, env_params):
    """``(reference params, reward-model params, pairs, reward-model held-out metrics)``: read
    from ``--cache`` when it exists, else trained (SFT, pairs, reward model) and written there."""
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        with cache.open("rb") as handle:
            return pickle.load(handle)
    demos = generation.generate(args.env, "expert", 8192, expert_algo="scripted", noise=0.4,
                                num_envs=16, seed=0)
    sft_config = sft.Config(total_gradient_steps=1500, log_frequency=500, batch_size=128,
                            learning_rate=1e-3, **MODEL)
    state, _ = jax.jit(sft.make_train(sft_config, env, env_params, demos))(jax.random.key(0))
    reference = family.SequencePolicy(family.make_model(sft_config, env_params), state.params)
    chosen, rejected, _ = jax.jit(lambda key: family.make_preferences(
        key, reference, env, 2048, 0.05))(jax.random.key(1))
    pairs = family.Preferences(np.asarray(chosen), np.asarray(rejected), {"env": args.env})
    rm_config = reward_model.Config(total_gradient_steps=1000, log_frequency=500,
                                    batch_size=64, **MODEL)
    rm_state, rm_metrics = jax.jit(reward_model.make_train(rm_config, env, env_params, pairs))(
        jax.random.key(2))
    rm_row = {"heldout_accuracy": float(rm_metrics["heldout_accuracy"][-1]),
              "heldout_ece": float(rm_metrics["heldout_ece"][-1])}
    result = (jax.device_get(state.params), jax.device_get(rm_state.params), pairs, rm_row)
    if cache is not None:
        with cache.open("wb") as handle:
            pickle.dump(result, handle)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Tokens-sort-v0")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--sweep-seeds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--cache", default="",
                        help="pickle of (reference, reward model, pairs): read if present")
    parser.add_argument("--only-adaptive", action="store_true",
                        help="rerun only the adaptive-β row on --seeds seeds; keep the others")
    args = parser.parse_args()
    env, env_params = envs.make(args.env)
    reward = family.hidden_reward_fn(env)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    rows, timings, start = {}, {}, time.time()

    def add(name, per_seed, extra=None):
        rows[name] = {k: [r[k] for r in per_seed] for k in per_seed[0]} | (extra or {})
        timings[name] = round(time.time() - start, 1)
        print(name, {k: np.round(np.mean(v), 3) for k, v in rows[name].items()
                     if isinstance(v, list)}, f"{timings[name]} s", flush=True)

    reference_params, scorer_params, pairs, rm_row = inputs(args, env, env_params)
    model = family.make_model(sft.Config(**MODEL), env_params)
    reference = family.SequencePolicy(model, reference_params)

    # Parameters enter every jitted function as arguments, not closure constants: XLA would
    # otherwise constant-fold whole sampling loops of the fixed reference (minutes of compile).
    @jax.jit
    def score(params, reference_params, scorer_params, key):
        """policy_report plus the proxy: the whitened reward-model score of policy samples."""
        reference = family.SequencePolicy(model, reference_params)
        report = family.policy_report(key, model, params, reference, reward, args.samples)
        reference_tokens, _ = family.sample(model, reference_params, jax.random.key(7), 4096)
        reference_scores = model.apply(scorer_params, reference_tokens, method="score")
        tokens, _ = family.sample(model, params, jax.random.fold_in(key, 1), args.samples)
        scores = model.apply(scorer_params, tokens, method="score")
        report["proxy"] = ((scores.mean() - reference_scores.mean())
                           / reference_scores.std())
        report["raw_score_std"] = reference_scores.std()
        return report

    def report(params):
        return {k: float(v) for k, v in score(params, reference_params, scorer_params,
                                              jax.random.key(123)).items()}

    def save():
        payload = {"env": args.env, "seeds": args.seeds, "sweep_seeds": args.sweep_seeds,
                   "samples": args.samples, "rlhf_tokens": RLHF_STEPS,
                   "device": jax.devices()[0].device_kind, "rows": rows,
                   "elapsed_s": timings, "model": MODEL, "adaptive_seeds": adaptive_seeds}
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "preferences_cpu.json").write_text(json.dumps(payload, indent=1))

    adaptive_seeds = args.sweep_seeds
    if args.only_adaptive:
        earlier = json.loads((RESULTS / "preferences_cpu.json").read_text())
        rows.update(earlier["rows"])
        timings.update(earlier["elapsed_s"])
        adaptive_seeds, args.seeds = args.seeds, earlier["seeds"]
        args.sweep_seeds = earlier["sweep_seeds"]
    else:
        reference_row = report(reference_params)
        add("sft (reference)", [reference_row])
        rows["reward model"] = {**rm_row, "score_std_on_reference": reference_row["raw_score_std"]}

        @partial(jax.jit, static_argnums=0)
        def best_and_reference(n, key, reference_params, scorer_params):
            best = family.best_of_n(key, family.SequencePolicy(model, reference_params),
                                    family.SequencePolicy(model, scorer_params), n, args.samples)
            reference_tokens, _ = family.sample(model, reference_params, jax.random.fold_in(key, 1),
                                                args.samples)
            return reward(best), reward(reference_tokens)

        for n in (4, 16):
            per_seed = []
            for key in keys:
                hidden, ref_hidden = map(np.asarray, best_and_reference(n, key, reference_params,
                                                                         scorer_params))
                per_seed.append({"win_rate": float(np.mean((hidden > ref_hidden)
                                                           + 0.5 * (hidden == ref_hidden))),
                                 "eval_return": float(hidden.mean()),
                                 "kl": float(np.log(n) - (n - 1) / n)})
            add(f"best-of-{n} (KL: the bound log n - (n-1)/n)", per_seed)
        save()

        for name, module, config in (
                ("dpo (β = 0.1)", dpo, dpo.Config(total_gradient_steps=600, log_frequency=300,
                                                 batch_size=64, beta=0.1)),
                ("ipo (τ = 0.1)", ipo, ipo.Config(total_gradient_steps=600, log_frequency=300,
                                                 batch_size=64, tau=0.1))):
            agent = module.make_agent(config, env, env_params, reference, pairs)
            states, _ = jax.jit(jax.vmap(train_from_agent(agent)))(keys)
            add(name, [report(seed_state(states, i).params) for i in range(args.seeds)])
        save()

    def run_rlhf(configs, seed_keys):
        """One jitted, vmapped run per (config, seed) pair; configs batched over a hyper."""

        def one(config, key, reference_params, scorer_params):
            agent = rlhf.make_agent(config, env, env_params,
                                    family.SequencePolicy(model, reference_params),
                                    family.SequencePolicy(model, scorer_params))
            return train_from_agent(agent)(key)

        states, metrics = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))(
            configs, seed_keys, reference_params, scorer_params)
        jax.block_until_ready(states)
        return states, metrics

    def policy(config, states, i):
        return rlhf.policy_params(config, env_params, seed_state(states, i), reference).params

    base = rlhf.Config(total_timesteps=RLHF_STEPS)
    runs = (("rlhf (β = 0.1)", base.replace(kl_coef=0.1), args.seeds),
            ("rlhf (adaptive β, target 3 nats)", base.replace(kl_coef=0.1, adaptive_kl=True,
                                                            target_kl=3.0), adaptive_seeds))
    for name, config, seeds in runs[1:] if args.only_adaptive else runs:
        configs = jax.tree.map(lambda leaf, seeds=seeds: jnp.stack([leaf] * seeds), config)
        states, metrics = run_rlhf(configs, keys[:seeds])
        extra = ({"final_kl_coef": np.asarray(metrics["kl_coef"][:, -1]).tolist()}
                 if config.adaptive_kl else None)
        add(name, [report(policy(config, states, i)) for i in range(seeds)], extra)
        save()

    # The β sweep: one batch of len(BETAS) × sweep_seeds runs, β a vmapped hyperparameter.
    settings = [(beta, i) for beta in BETAS for i in range(args.sweep_seeds)]
    if not args.only_adaptive:
        configs = jax.tree.map(lambda *leaves: jnp.stack(leaves),
                               *[base.replace(kl_coef=beta) for beta, _ in settings])
        states, _ = run_rlhf(configs, jnp.stack([keys[i] for _, i in settings]))
        for beta in BETAS:
            per_seed = [report(policy(base, states, j))
                        for j, (b, _) in enumerate(settings) if b == beta]
            add(f"rlhf β = {beta:g} (sweep)", per_seed, {"beta": beta})
        save()

    lines = [f"Preferences on {args.env} ({args.seeds} seeds unless a row says otherwise; "
             f"{args.samples} samples per score; reference = SFT on ε = 0.4 demonstrations; "
             f"RLHF {RLHF_STEPS} tokens)", "",
             "| method | seeds | win rate vs reference | hidden reward | KL (nats) | proxy |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, row in rows.items():
        if "win_rate" not in row:
            continue
        cells = [f"{np.mean(row[k]):.3f} ± {np.std(row[k]):.3f}" if k in row else "–"
                 for k in ("win_rate", "eval_return", "kl", "proxy")]
        lines.append(f"| {name} | {len(row['win_rate'])} | " + " | ".join(cells) + " |")
    rm = rows["reward model"]
    lines += ["", f"Reward model: held-out accuracy {rm['heldout_accuracy']:.3f}, "
                  f"ECE {rm['heldout_ece']:.3f}, score std on reference samples "
                  f"{rm['score_std_on_reference']:.2f}."]
    (RESULTS / "preferences_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, RESULTS / "preferences_frontier.png")
    IMAGES.mkdir(parents=True, exist_ok=True)
    shutil.copy(RESULTS / "preferences_frontier.png", IMAGES / "preferences_frontier.png")


if __name__ == "__main__":
    main()
