"""The paper's experiment as a Ray Tune grid: {PPO, DQN} x {mask, no mask} x complexity x {shaped, sparse}.

Every trial trains for the same env-step budget against the same opponent mix, evaluates against L2 during
training (for "env steps to 80% vs L2") and, at the end, against each scripted level with the deterministic
policy (workloads.rl.evaluate). Seeds repeat every cell.

How to run
----------
`python -m workloads.rl.compare --smoke-test`                            (4 tiny trials, about 2 minutes)
`python -m workloads.rl.compare --complexities 1,2 --seeds 2 --stop-timesteps 300000 --out runs/rl-compare`
(32 trials; at two trials at a time on 2 CPUs this takes hours: see README.md for the measured wall time)

Results to expect
-----------------
`<out>/compare.md` (the table: final win rate vs each level, env steps to 80% vs L2, invalid-action rate,
mean over seeds), `<out>/compare.json` (every trial), `<out>/compare_curves.png` (evaluation win rate vs L2
against env steps, one panel per complexity) and Tune's folders with TensorBoard logs under `<out>/grid/`.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from pathlib import Path

from workloads.contract import UsageError, fail, field, init_ray, parse_config, run_dir, write_json, write_summary


@dataclasses.dataclass
class CompareConfig:
    """PPO vs DQN, masks on/off, complexity levels and shaped vs sparse reward, under equal env-step budgets."""

    algos: str = field("ppo,dqn", help="algorithms in the grid")
    complexities: str = field("1,2", help="bizsim complexity levels in the grid")
    shaping: float = field(0.1, help="net-worth shaping weight of the 'shaped' cells (the sparse cells use 0)")
    seeds: int = field(2, help="seeds per cell")
    stop_timesteps: int = field(300_000, help="env steps per trial (the equal budget)")
    opponents: str = field("L1,L2,L3", help="training opponent mix (one level per episode)")
    eval_levels: str = field("L1,L2,L3", help="final evaluation opponents")
    eval_episodes: int = field(100, help="final evaluation episodes per level")
    curve_points: int = field(15, help="in-training evaluations against L2 per trial")
    max_concurrent: int = field(2, help="trials at once (each uses 1 CPU)")
    smoke_test: bool = field(False, help="tiny grid (complexity 1, shaped, 1 seed, 2k steps)")
    out: str = field("", help="output folder (default runs/rl-compare/<timestamp>/)")
    resume: bool = field(False, help="continue the interrupted grid in --out (finished trials are kept)")
    num_gpus: int = field(0, help="GPUs per trial (fractions are not offered here; 0 = CPU)")

    def validate(self):
        from workloads.rl.env import check_spec

        for algo in self.algos.split(","):
            if algo not in ("ppo", "dqn"):
                raise UsageError(f"--algos: unknown algorithm {algo!r} (ppo, dqn)")
        for c in self.complexities.split(","):
            if c not in ("1", "2", "3", "4"):
                raise UsageError(f"--complexities: {c!r} is not a level 1..4")
        for spec in (self.opponents + "," + self.eval_levels).split(","):
            try:
                check_spec(spec.strip())
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if self.seeds < 1 or self.stop_timesteps < 1000:
            raise UsageError("--seeds must be >= 1 and --stop-timesteps >= 1000")
        if self.resume and not self.out:
            raise UsageError("--resume needs the --out folder of the interrupted grid")


def cells(cfg: CompareConfig) -> list[dict]:
    """Every (algo, mask, complexity, shaping, seed) of the grid."""
    shapings = [cfg.shaping] if cfg.smoke_test else [cfg.shaping, 0.0]
    return [{"algo": a, "mask": m, "complexity": int(c), "shaping": s, "seed": seed}
            for a, m, c, s, seed in itertools.product(cfg.algos.split(","), (True, False),
                                                      cfg.complexities.split(","), shapings, range(cfg.seeds))]


def trial(params: dict):
    """One Tune trial: train with workloads.rl.train, report every iteration, evaluate at the end."""
    from ray import tune

    from workloads.rl.evaluate import evaluate_against
    from workloads.rl.policy import policy_from_checkpoint
    from workloads.rl.train import RLConfig, iterate, save_checkpoint

    params = {**params, **params["cell"]}
    steps_per_iter = 4096 if params["algo"] == "ppo" else 1000
    cfg = RLConfig(algo=params["algo"], mask=params["mask"], complexity=params["complexity"],
                   shaping=params["shaping"], seed=params["seed"], stop_timesteps=params["stop_timesteps"],
                   opponents=params["opponents"], eval_opponents="L2", eval_episodes=params["curve_episodes"],
                   eval_interval=max(1, round(params["stop_timesteps"] / params["curve_points"] / steps_per_iter)),
                   checkpoint_every=10**9, **params.get("overrides", {}))
    out = Path(tune.get_context().get_trial_dir())
    gen = iterate(cfg, out)
    try:
        for algo, row in gen:
            if row["env_steps"] >= cfg.stop_timesteps:
                checkpoint = save_checkpoint(algo, out, algo.config.env_config["game"])
                break
            tune.report({k: v for k, v in row.items() if isinstance(v, float)})
    finally:
        gen.close()
    policy = policy_from_checkpoint(checkpoint)
    final = {f"final_win_rate/{level}": r["win_rate"] for level in params["eval_levels"].split(",")
             for r in [evaluate_against(policy, policy.game, level, params["eval_episodes"], seed=10**6)]}
    final["final_invalid_rate"] = row.get("invalid_rate", 0.0)
    tune.report({**{k: v for k, v in row.items() if isinstance(v, float)}, **final})


def steps_to(df, column: str, threshold: float):
    """First env-step count at which `column` reached `threshold` (None if never)."""
    if column not in df:
        return None
    hit = df[df[column] >= threshold]
    return None if hit.empty else int(hit["env_steps"].iloc[0])


def summarise(results: list[dict], levels: list[str]) -> str:
    """Markdown table, one row per (algo, mask, complexity, shaping) cell, mean over seeds."""
    import numpy as np

    groups = {}
    for r in results:
        groups.setdefault((r["algo"], r["mask"], r["complexity"], r["shaping"]), []).append(r)
    head = ["algo", "mask", "complexity", "reward"] + [f"win vs {lv}" for lv in levels] + [
        "steps to 80% vs L2", "invalid-action rate", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (algo, mask, c, s), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], not kv[0][1], -kv[0][3])):
        wins = [f"{np.mean([r['final'].get(f'final_win_rate/{lv}', np.nan) for r in rs]):.2f}" for lv in levels]
        reached = [r["steps_to_80_vs_L2"] for r in rs]
        steps = (f"{int(np.mean([x for x in reached if x is not None])):,}" if all(x is not None for x in reached)
                 else f"not reached ({sum(x is None for x in reached)}/{len(rs)})")
        invalid = np.mean([r["final"].get("final_invalid_rate", np.nan) for r in rs])
        lines.append("| " + " | ".join([algo.upper(), "on" if mask else "off", str(c),
                                        f"shaped {s}" if s else "sparse", *wins, steps, f"{invalid:.3f}",
                                        str(len(rs))]) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({r["complexity"] for r in results})
    fig, axes = plt.subplots(1, len(levels), figsize=(7 * len(levels), 4.5), squeeze=False)
    for ax, c in zip(axes[0], levels):
        for r in (r for r in results if r["complexity"] == c):
            x, y = r["curve"]
            label = f"{r['algo'].upper()} mask={'on' if r['mask'] else 'off'} {'shaped' if r['shaping'] else 'sparse'}"
            ax.plot(x, y, color={"ppo": "C0", "dqn": "C3"}[r["algo"]], alpha=0.8,
                    ls="-" if r["mask"] else "--", lw=2 if r["shaping"] else 1, label=label if r["seed"] == 0 else None)
        ax.set(title=f"complexity {c}: evaluation win rate vs L2", xlabel="env steps", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    cfg = parse_config(CompareConfig, argv, prog="python -m workloads.rl.compare")
    from ray import tune

    out = run_dir("rl-compare", cfg.out or None)
    stop = 2000 if cfg.smoke_test else cfg.stop_timesteps
    grid = cells(dataclasses.replace(cfg, complexities="1", seeds=1) if cfg.smoke_test else cfg)
    common = {"stop_timesteps": stop, "opponents": cfg.opponents, "eval_levels": cfg.eval_levels,
              "eval_episodes": 6 if cfg.smoke_test else cfg.eval_episodes, "curve_points": cfg.curve_points,
              "curve_episodes": 4 if cfg.smoke_test else 20,
              "overrides": {"num_envs_per_env_runner": 4, "train_batch_size": 800, "minibatch_size": 200,
                            "num_epochs": 2} if cfg.smoke_test else {}}
    resumed = cfg.resume and tune.Tuner.can_restore(out / "grid")
    if cfg.resume and not resumed:
        fail(f"--resume: no Tune experiment to continue in {out / 'grid'}")
    init_ray(num_gpus=cfg.num_gpus or None)
    started = time.time()
    trainable = tune.with_resources(trial, {"cpu": 1, "gpu": cfg.num_gpus})
    tuner = tune.Tuner.restore(str(out / "grid"), trainable, resume_errored=True) if resumed else tune.Tuner(
        trainable,
        param_space={**common, "cell": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(max_concurrent_trials=cfg.max_concurrent),
        run_config=tune.RunConfig(name="grid", storage_path=str(out), verbose=1),
    )
    try:
        grid_result = tuner.fit()
    except UsageError as exc:
        fail(str(exc))
    wall = time.time() - started
    results = []
    for res in grid_result:
        cell = res.config["cell"]
        df = res.metrics_dataframe
        if df is None or res.error:
            results.append({**cell, "error": str(res.error), "final": {}, "curve": ([], []),
                            "steps_to_80_vs_L2": None})
            continue
        col = "eval_win_rate_vs/L2"
        curve = df[["env_steps", col]].dropna() if col in df else df[["env_steps"]].iloc[:0].assign(**{col: []})
        final = {k: v for k, v in res.metrics.items() if k.startswith("final_")}
        results.append({**cell, "final": final, "steps_to_80_vs_L2": steps_to(df, col, 0.8),
                        "curve": (curve["env_steps"].tolist(), curve[col].tolist()), "path": res.path})
    levels = cfg.eval_levels.split(",")
    table = summarise([r for r in results if "error" not in r], levels)
    note = (f"{len(grid)} trials, {stop:,} env steps each, {cfg.max_concurrent} at a time; "
            f"wall time {wall / 60:.1f} min" + (" (of the resumed call only)" if resumed else ""))
    (out / "compare.md").write_text(table + "\n\n" + note + "\n")
    plot(results, out / "compare_curves.png")
    write_json(out / "compare.json", {"config": dataclasses.asdict(cfg), "wall_s": wall, "trials": results})
    write_summary(out, {"workload": "rl-compare", "trials": len(grid), "failed": sum("error" in r for r in results),
                        "wall_s": round(wall, 1), "table": str(out / "compare.md"),
                        "plots": [str(out / "compare_curves.png")]})
    print(table)
    print(note)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
