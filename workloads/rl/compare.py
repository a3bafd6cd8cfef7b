"""The paper's experiment as a Ray Tune grid: {PPO, DQN} x {flat, factorised} x {mask, no mask} x complexity x
{shaped, sparse} (factorised cells for PPO only: RLlib's DQN takes Discrete actions).

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

from envs.bizsim.opponents import parse_specs
from workloads import contract
from workloads.contract import UsageError, WorkloadConfig, field, write_json
from workloads.rl.train import ALGOS, COMPLEXITIES, ENCODINGS, SMOKE_SIZES


@dataclasses.dataclass
class CompareConfig(WorkloadConfig):
    """PPO vs DQN, masks on/off, complexity levels and shaped vs sparse reward, under equal env-step budgets."""

    workload = "rl-compare"

    algos: str = field("ppo,dqn", help="algorithms in the grid (comma-separated)")
    complexities: str = field("1,2,3,4", help="bizsim complexity levels in the grid (comma-separated)")
    encodings: str = field("flat,factorised", help="action encodings in the grid (factorised cells: PPO only)")
    shaping: float = field(0.1, help="net-worth shaping weight of the 'shaped' cells (the sparse cells use 0)")
    sparse: bool = field(True, help="also the sparse-reward cells (shaping 0)")
    seeds: int = field(2, help="seeds per cell (--seed, --seed + 1, ...)", minimum=1)
    stop_timesteps: int = field(300_000, help="env steps per trial (the equal budget)", minimum=1000)
    opponents: str = field("L1,L2,L3", help="training opponent mix (one level per episode)")
    eval_levels: str = field("L1,L2,L3", help="final evaluation opponents")
    eval_episodes: int = field(100, help="final evaluation episodes per level", minimum=1)
    curve_points: int = field(15, help="in-training evaluations against L2 per trial", minimum=1)
    curve_episodes: int = field(20, help="episodes per in-training evaluation against L2", minimum=1)
    tiny_trials: bool = field(False, help="train each trial at workloads.rl's --smoke-test sizes (small batches)")
    max_concurrent: int = field(2, help="trials at once (each uses 1 CPU)", minimum=1)
    resume: bool = field(False, help="continue the interrupted grid in --out (finished trials are kept)")
    num_gpus: int = field(0, help="GPUs per trial (fractions are not offered here; 0 = CPU)", minimum=0)

    def smoke(self) -> CompareConfig:
        """The --smoke-test grid: complexity 1, shaped cells only, one seed, 2k steps, tiny trials."""
        return dataclasses.replace(
            self,
            complexities="1",
            encodings="flat",
            seeds=1,
            sparse=False,
            stop_timesteps=2000,
            eval_episodes=6,
            curve_episodes=4,
            tiny_trials=True,
        )

    def validate(self):
        from workloads.rl.policy import checked_specs

        for algo in self.algos.split(","):
            if algo not in ALGOS:
                raise UsageError(f"--algos: unknown algorithm {algo!r} ({', '.join(ALGOS)})")
        for encoding in self.encodings.split(","):
            if encoding not in ENCODINGS:
                raise UsageError(f"--encodings: unknown encoding {encoding!r} ({', '.join(ENCODINGS)})")
        if not cells(self):
            raise UsageError("--encodings factorised with --algos dqn leaves no cell (DQN runs flat only)")
        for c in self.complexities.split(","):
            if not c.isdigit() or int(c) not in COMPLEXITIES:
                raise UsageError(f"--complexities: {c!r} is not a level 1..4")
        checked_specs(self.opponents, "--opponents")
        checked_specs(self.eval_levels, "--eval-levels")
        if self.resume and not self.out:
            raise UsageError("--resume needs the --out folder of the interrupted grid")
        if self.resume:
            from ray import tune

            if not tune.Tuner.can_restore(Path(self.out) / "grid"):
                raise UsageError(f"--resume: no Tune experiment to continue in {Path(self.out) / 'grid'}")

    def ray_options(self) -> dict:
        return {"num_gpus": self.num_gpus or None}


def cells(cfg: CompareConfig) -> list[dict]:
    """Every (algo, encoding, mask, complexity, shaping, seed) of the grid; DQN only with flat actions."""
    shapings = [cfg.shaping, 0.0] if cfg.sparse else [cfg.shaping]
    return [
        {"algo": a, "encoding": e, "mask": m, "complexity": int(c), "shaping": s, "seed": seed}
        for a, e, m, c, s, seed in itertools.product(
            cfg.algos.split(","),
            cfg.encodings.split(","),
            (True, False),
            cfg.complexities.split(","),
            shapings,
            range(cfg.seed, cfg.seed + cfg.seeds),
        )
        if not (a == "dqn" and e == "factorised")
    ]


def trial(params: dict):
    """One Tune trial: train with workloads.rl.train, report every iteration, evaluate at the end."""
    from ray import tune

    from workloads.rl.evaluate import evaluate_against
    from workloads.rl.policy import policy_from_checkpoint
    from workloads.rl.train import RLConfig, iterate, save_checkpoint

    params = {**params, **params["cell"]}
    steps_per_iter = 4096 if params["algo"] == "ppo" else 1000
    cfg = RLConfig(
        algo=params["algo"],
        encoding=params.get("encoding", "flat"),
        mask=params["mask"],
        complexity=params["complexity"],
        shaping=params["shaping"],
        seed=params["seed"],
        stop_timesteps=params["stop_timesteps"],
        opponents=params["opponents"],
        eval_opponents="L2",
        eval_tables="copies",
        eval_episodes=params["curve_episodes"],
        eval_interval=max(1, round(params["stop_timesteps"] / params["curve_points"] / steps_per_iter)),
        **params.get("overrides", {}),
    )
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
    final = {
        f"final_win_rate/{level}": r["win_rate"]
        for level in parse_specs(params["eval_levels"])
        for r in [evaluate_against(policy, policy.game, level, params["eval_episodes"], seed=10**6)]
    }
    final["final_invalid_rate"] = row.get("invalid_rate", 0.0)
    tune.report({**{k: v for k, v in row.items() if isinstance(v, float)}, **final})


def steps_to(df, column: str, threshold: float):
    """First env-step count at which `column` reached `threshold` (None if never)."""
    if column not in df:
        return None
    hit = df[df[column] >= threshold]
    return None if hit.empty else int(hit["env_steps"].iloc[0])


def summarise(results: list[dict], levels: list[str]) -> str:
    """Markdown table, one row per (algo, encoding, mask, complexity, shaping) cell, mean over seeds."""
    import numpy as np

    groups = {}
    for r in results:
        key = (r["algo"], r.get("encoding", "flat"), r["mask"], r["complexity"], r["shaping"])
        groups.setdefault(key, []).append(r)
    head = (
        ["algo", "encoding", "mask", "complexity", "reward"]
        + [f"win vs {lv}" for lv in levels]
        + ["steps to 80% vs L2", "invalid-action rate", "seeds"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = lambda kv: (kv[0][3], kv[0][0], kv[0][1], not kv[0][2], -kv[0][4])  # noqa: E731
    for (algo, encoding, mask, c, s), rs in sorted(groups.items(), key=order):
        wins = [f"{np.mean([r['final'].get(f'final_win_rate/{lv}', np.nan) for r in rs]):.2f}" for lv in levels]
        reached = [r["steps_to_80_vs_L2"] for r in rs]
        steps = (
            f"{int(np.mean([x for x in reached if x is not None])):,}"
            if all(x is not None for x in reached)
            else f"not reached ({sum(x is None for x in reached)}/{len(rs)})"
        )
        invalid = np.mean([r["final"].get("final_invalid_rate", np.nan) for r in rs])
        lines.append(
            "| "
            + " | ".join(
                [
                    algo.upper(),
                    encoding,
                    "on" if mask else "off",
                    str(c),
                    f"shaped {s}" if s else "sparse",
                    *wins,
                    steps,
                    f"{invalid:.3f}",
                    str(len(rs)),
                ]
            )
            + " |"
        )
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
            label = (
                f"{r['algo'].upper()} {r.get('encoding', 'flat')} mask={'on' if r['mask'] else 'off'} "
                f"{'shaped' if r['shaping'] else 'sparse'}"
            )
            ax.plot(
                x,
                y,
                color={("ppo", "flat"): "C0", ("ppo", "factorised"): "C2", ("dqn", "flat"): "C3"}[
                    (r["algo"], r.get("encoding", "flat"))
                ],
                alpha=0.8,
                ls="-" if r["mask"] else "--",
                lw=2 if r["shaping"] else 1,
                label=label if r["seed"] == 0 else None,
            )
        ax.set(title=f"complexity {c}: evaluation win rate vs L2", xlabel="env steps", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(cfg: CompareConfig, out: Path) -> dict:
    """Run (or resume) the grid with Tune, then the table, curves and every trial's figures."""
    from ray import tune

    grid = cells(cfg)
    common = {
        "stop_timesteps": cfg.stop_timesteps,
        "opponents": cfg.opponents,
        "eval_levels": cfg.eval_levels,
        "eval_episodes": cfg.eval_episodes,
        "curve_points": cfg.curve_points,
        "curve_episodes": cfg.curve_episodes,
        "overrides": dict(SMOKE_SIZES) if cfg.tiny_trials else {},
    }
    started = time.time()
    trainable = tune.with_resources(trial, {"cpu": 1, "gpu": cfg.num_gpus})
    tuner = (
        tune.Tuner.restore(str(out / "grid"), trainable, resume_errored=True)
        if cfg.resume
        else tune.Tuner(
            trainable,
            param_space={**common, "cell": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(max_concurrent_trials=cfg.max_concurrent),
            run_config=tune.RunConfig(name="grid", storage_path=str(out), verbose=1),
        )
    )
    grid_result = tuner.fit()
    grid_s = time.time() - started
    results = []
    for res in grid_result:
        cell = res.config["cell"]
        df = res.metrics_dataframe
        if df is None or res.error:
            results.append({**cell, "error": str(res.error), "final": {}, "curve": ([], []), "steps_to_80_vs_L2": None})
            continue
        col = "eval_win_rate_vs/L2"
        curve = df[["env_steps", col]].dropna() if col in df else df[["env_steps"]].iloc[:0].assign(**{col: []})
        final = {k: v for k, v in res.metrics.items() if k.startswith("final_")}
        results.append(
            {
                **cell,
                "final": final,
                "steps_to_80_vs_L2": steps_to(df, col, 0.8),
                "curve": (curve["env_steps"].tolist(), curve[col].tolist()),
                "path": res.path,
            }
        )
    table = summarise([r for r in results if "error" not in r], parse_specs(cfg.eval_levels))
    note = (
        f"{len(grid)} trials, {cfg.stop_timesteps:,} env steps each, {cfg.max_concurrent} at a time; "
        f"wall time {grid_s / 60:.1f} min" + (" (of the resumed call only)" if cfg.resume else "")
    )
    (out / "compare.md").write_text(table + "\n\n" + note + "\n")
    plot(results, out / "compare_curves.png")
    write_json(out / "compare.json", {"config": dataclasses.asdict(cfg), "grid_s": grid_s, "trials": results})
    print(table)
    print(note)
    failed = sum("error" in r for r in results)
    return {
        "status": "trials_failed" if failed else "ok",
        "trials": len(grid),
        "failed": failed,
        "grid_s": round(grid_s, 1),
        "outputs": {
            "table": str(out / "compare.md"),
            "trials": str(out / "compare.json"),
            "curves": str(out / "compare_curves.png"),
            "grid": str(out / "grid"),
        },
    }


def main(argv=None) -> int:
    return contract.main(CompareConfig, run, argv, prog="python -m workloads.rl.compare")


if __name__ == "__main__":
    sys.exit(main())
