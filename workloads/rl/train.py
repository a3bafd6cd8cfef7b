"""Training on bizsim with RLlib's new API stack: config dataclass, AlgorithmConfig builder, loop, outputs.

A run resumes after a kill: every checkpoint carries `run_state.json` (how many progress rows it covers and the
opponent schedule's state), and `--resume` cuts the run folder back to it (progress rows, TensorBoard steps and
league snapshots of the lost iterations go), so no iteration is lost or counted twice.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from envs.bizsim.opponents import parse_mix, parse_specs
from workloads.contract import UsageError, WorkloadConfig, config_from_dict, field, write_json
from workloads.rl.game import TABLE_SEP, TABLES, table_for

ALGOS = ("ppo", "dqn")
ENCODINGS = ("flat", "factorised")
COMPLEXITIES = (1, 2, 3, 4)
RUN_STATE = "run_state.json"  # in every checkpoint: what of the run folder the checkpoint covers
SCHEDULE_STATE = "schedule_state.json"
# the --smoke-test sizes of one training (workloads.rl.compare trains its smoke trials at them too)
SMOKE_SIZES = dict(num_envs_per_env_runner=4, train_batch_size=800, minibatch_size=200, num_epochs=2)


@dataclasses.dataclass
class RLConfig(WorkloadConfig):
    """Train a firm in bizsim with RLlib (PPO or DQN) against scripted, scheduled or league opponents."""

    workload = "rl"

    algo: str = field("ppo", help="algorithm", choices=ALGOS)
    num_env_runners: int = field(
        0, help="remote EnvRunner actors (0 = sample in the driver; fastest on 2 cores)", minimum=0
    )
    num_envs_per_env_runner: int = field(16, help="vectorised bizsim copies per EnvRunner", minimum=1)
    stop_iters: int = field(0, help="stop after this many training iterations (0 = no limit)", minimum=0)
    stop_timesteps: int = field(300_000, help="stop after this many env steps sampled", minimum=1)
    time_budget_s: float = field(0.0, help="stop after this many seconds of training (0 = no limit)", minimum=0)
    complexity: int = field(1, help="bizsim complexity level", choices=COMPLEXITIES)
    mask: bool = field(True, help="action masks (off: all-ones masks, invalid actions become counted no-ops)")
    shaping: float = field(0.1, help="weight of the dense net-worth term next to the sparse outcome (0 = sparse)")
    encoding: str = field("flat", help="flat Discrete(N) or factorised MultiDiscrete (PPO only)", choices=ENCODINGS)
    opponents: str = field("L1,L2,L3", help="comma-separated opponent levels, import paths or snapshot folders")
    eval_opponents: str = field("L1,L2,L3,L4", help="opponents of the evaluations (one per episode)")
    eval_tables: str = field(
        "mixed",
        help="evaluation tables: mixed (learner, L2, L4 and the opponent, seats rotated) or copies (of the opponent)",
        choices=TABLES,
    )
    curriculum: bool = field(
        False,
        help="stages L0, then each of --opponents, a mixed pool, then league "
        "snapshots, advancing when the evaluation win rate crosses the threshold",
    )
    curriculum_threshold: float = field(
        0.8, help="evaluation win rate that moves the curriculum on", minimum=0, maximum=1
    )
    nonstationary: bool = field(
        False, help="cycle the training opponents through --opponents and their pool every --switch-every iterations"
    )
    switch_every: int = field(10, help="iterations between opponent switches in --nonstationary mode", minimum=1)
    learner_seats: int = field(1, help="seats the learner plays in each game (more = self-play seats)", minimum=1)
    exploiter: bool = field(
        False, help="league: a second trained policy (the main exploiter) takes an opponent's seat in half the games"
    )
    eval_interval: int = field(5, help="evaluate every this many iterations (0 = only at the end)", minimum=0)
    eval_episodes: int = field(30, help="episodes per evaluation", minimum=1)
    checkpoint_every: int = field(10, help="save <out>/checkpoint every this many iterations", minimum=1)
    lr: float = field(0.0, help="learning rate (0 = the algorithm's tuned default here)", minimum=0)
    train_batch_size: int = field(0, help="train batch per learner (0 = tuned default)", minimum=0)
    minibatch_size: int = field(0, help="PPO minibatch (0 = tuned default)", minimum=0)
    num_epochs: int = field(0, help="PPO epochs per batch (0 = tuned default)", minimum=0)
    rollout_fragment_length: int = field(0, help="env steps per sub-env per sample call (0 = auto)", minimum=0)
    vf_share_layers: bool = field(True, help="PPO: one encoder for policy and value (halves the sampling forward)")
    torch_threads: int = field(
        1,
        help="torch intra-op threads in the driver (1 is fastest for these small nets on a busy 2-core machine)",
        minimum=1,
    )
    as_test: bool = field(False, help="exit 1 unless the final evaluation win rate reaches --target-win-rate")
    target_win_rate: float = field(0.8, help="success criterion for --as-test", minimum=0, maximum=1)
    resume: bool = field(
        False, help="continue the run in --out from <out>/checkpoint (saved settings; stop criteria from this command)"
    )
    num_gpus: int = field(0, help="GPUs for the learner (0 = CPU)", minimum=0)

    def validate(self):
        from workloads.rl.policy import checked_specs

        if self.encoding == "factorised" and self.algo == "dqn":
            raise UsageError("--encoding factorised needs --algo ppo (RLlib's DQN handles Discrete actions only)")
        if self.curriculum and self.nonstationary:
            raise UsageError("choose one of --curriculum and --nonstationary")
        if self.exploiter and self.learner_seats >= 4:
            raise UsageError("--exploiter needs a seat that is not the learner's: --learner-seats at most 3")
        if self.curriculum and not self.eval_interval:
            raise UsageError("--curriculum advances on the periodic evaluation: give --eval-interval >= 1")
        if self.resume and not self.out:
            raise UsageError("--resume needs --out pointing at the run to continue")
        if self.resume and not any((Path(self.out) / name).is_dir() for name in ("checkpoint", "checkpoint.old")):
            raise UsageError(f"--resume: no checkpoint in {Path(self.out) / 'checkpoint'}")
        checked_specs(self.opponents, "--opponents")
        checked_specs(self.eval_opponents, "--eval-opponents")

    def smoke(self) -> RLConfig:
        """The --smoke-test sizes: a few small iterations with one evaluation and a checkpoint."""
        return dataclasses.replace(
            self,
            stop_iters=min(self.stop_iters or 3, 3),
            stop_timesteps=min(self.stop_timesteps, 3000),
            eval_interval=2,
            eval_episodes=4,
            checkpoint_every=2,
            **smoke_sizes(self),
        )

    def ray_options(self) -> dict:
        return {"num_gpus": self.num_gpus or None}

    def checked(self) -> RLConfig:
        """As for every workload; with --resume, the saved settings of the run with this command's stop criteria."""
        config = super().checked()
        return load_saved_config(Path(config.out), config) if config.resume else config


def smoke_sizes(cfg: RLConfig) -> dict:
    """SMOKE_SIZES, keeping the batch sizes and epochs that `cfg` sets itself."""
    return {k: v if k == "num_envs_per_env_runner" else getattr(cfg, k) or v for k, v in SMOKE_SIZES.items()}


def schedule_for(cfg: RLConfig, run_dir: Path) -> dict:
    """The opponent schedule handed to the callbacks (see workloads.rl.callbacks)."""
    levels = parse_specs(cfg.opponents)
    pool = parse_mix(levels)
    if cfg.curriculum:
        stages = [{"L0": 1.0}] + [{s: 1.0} for s in levels] + ([pool] if len(levels) > 1 else []) + ["league"]
        return {
            "mode": "curriculum",
            "stages": stages,
            "threshold": cfg.curriculum_threshold,
            "league_size": 4,
            "run_dir": str(run_dir),
        }
    if cfg.nonstationary:
        stages = [{s: 1.0} for s in levels] + [pool]
        return {"mode": "nonstationary", "stages": stages, "every": cfg.switch_every, "run_dir": str(run_dir)}
    return {"mode": "fixed"}


def build_algo_config(cfg: RLConfig, run_dir: Path):
    """The RLlib AlgorithmConfig for `cfg`: masked modules, multi-agent mapping, tuned sampling sizes."""
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from envs.bizsim import BizSimEnv
    from workloads.rl.callbacks import BizSimCallbacks
    from workloads.rl.env import BizSimMultiAgentEnv
    from workloads.rl.game import EXPLOITER, LEARNER, game_config
    from workloads.rl.modules import MaskedDQNTorchRLModule, MaskedPPOTorchRLModule

    game = game_config(complexity=cfg.complexity, encoding=cfg.encoding, mask=cfg.mask, shaping=cfg.shaping)
    schedule = schedule_for(cfg, run_dir)
    opponents = schedule["stages"][0] if schedule["mode"] != "fixed" else parse_specs(cfg.opponents)
    env_config = {
        "game": game,
        "opponents": opponents,
        "learner_seats": cfg.learner_seats,
        "exploiter": cfg.exploiter,
        "seed": cfg.seed,
        "schedule": schedule,
    }
    model_config = {
        "fcnet_hiddens": [128, 128],
        "fcnet_activation": "tanh" if cfg.algo == "ppo" else "relu",
        "vf_share_layers": cfg.vf_share_layers,
    }
    if cfg.encoding == "factorised":
        space = BizSimEnv(**game).action_space("firm_0")
        model_config["factorised"] = {
            "unit_row": space.unit_row.tolist(),
            "target_row": space.target_row.tolist(),
            "n_unit_rows": space.n_unit_rows,
            "n_target_rows": space.n_target_rows,
        }
    module_class = MaskedPPOTorchRLModule if cfg.algo == "ppo" else MaskedDQNTorchRLModule
    trained = [LEARNER, EXPLOITER] if cfg.exploiter else [LEARNER]
    fragment = cfg.rollout_fragment_length or "auto"
    if cfg.algo == "ppo":
        config = PPOConfig().training(
            lr=cfg.lr or 3e-4,
            train_batch_size_per_learner=cfg.train_batch_size or 4096,
            minibatch_size=cfg.minibatch_size or 1024,
            num_epochs=cfg.num_epochs or 4,
            gamma=0.995,
            lambda_=0.95,
            entropy_coeff=0.01,
            vf_loss_coeff=0.5,
            clip_param=0.2,
            vf_clip_param=10.0,
        )
    else:
        batch = cfg.train_batch_size or 256
        config = DQNConfig().training(
            lr=cfg.lr or 5e-4,
            train_batch_size_per_learner=batch,
            gamma=0.995,
            n_step=3,
            double_q=True,
            dueling=True,
            target_network_update_freq=2000,
            num_steps_sampled_before_learning_starts=2000,
            epsilon=[(0, 1.0), (max(10_000, cfg.stop_timesteps // 4), 0.05)],
            replay_buffer_config={
                "type": "MultiAgentPrioritizedEpisodeReplayBuffer",
                "capacity": 100_000,
                "alpha": 0.6,
                "beta": 0.4,
            },
        )
        if fragment == "auto":
            fragment = max(1, batch // cfg.num_envs_per_env_runner)  # replay ratio ~1: each sample trained once
    config = (
        config.environment(env=BizSimMultiAgentEnv, env_config=env_config, disable_env_checking=True)
        .framework("torch")
        .env_runners(
            num_env_runners=cfg.num_env_runners,
            num_envs_per_env_runner=cfg.num_envs_per_env_runner,
            rollout_fragment_length=fragment,
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0, num_gpus_per_learner=1 if cfg.num_gpus > 0 else 0)
        .multi_agent(policies=set(trained), policy_mapping_fn=_to_module, policies_to_train=trained)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    name: RLModuleSpec(module_class=module_class, model_config=model_config) for name in trained
                }
            )
        )
        .callbacks(BizSimCallbacks)
        .evaluation(
            evaluation_interval=cfg.eval_interval or None,
            evaluation_duration=cfg.eval_episodes,
            evaluation_duration_unit="episodes",
            evaluation_num_env_runners=0,
            evaluation_config={
                "explore": False,
                "num_envs_per_env_runner": 1,
                "env_config": {**env_config, "seed": cfg.seed + 10_000, "opponents": eval_mix(cfg, game)},
            },
        )
        .reporting(metrics_num_episodes_for_smoothing=200)
        .debugging(seed=cfg.seed, log_level="ERROR")
    )
    return config


def eval_mix(cfg: RLConfig, game: dict) -> list[str]:
    """The periodic evaluation's opponent specs: one table per --eval-opponents entry, of --eval-tables' kind."""
    n_others = game["n_firms"] - cfg.learner_seats
    if cfg.eval_tables == "copies":
        return parse_specs(cfg.eval_opponents)
    return [TABLE_SEP.join(table_for(spec, cfg.eval_tables, n_others)) for spec in parse_specs(cfg.eval_opponents)]


def _to_module(agent_id, episode=None, **kwargs):
    """learner_k -> the learner module, exploiter_0 -> the exploiter's."""
    return agent_id.rsplit("_", 1)[0]


def metrics_row(result: dict) -> dict:
    """The figures we plot and log from one RLlib result dict."""
    runners = result.get("env_runners", {})
    ev = result.get("evaluation", {}).get("env_runners", {})
    row = {
        "iteration": result.get("training_iteration"),
        "env_steps": runners.get("num_env_steps_sampled_lifetime", 0),
        "time_s": result.get("time_total_s", 0.0),
        "episode_return": runners.get("episode_return_mean"),
        "episode_len": runners.get("episode_len_mean"),
        "win_rate": runners.get("win_rate"),
        "invalid_rate": runners.get("invalid_rate"),
    }
    throughput = runners.get("num_env_steps_sampled_lifetime_throughput")
    if isinstance(throughput, dict):
        row["sample_steps_per_s"] = throughput.get("throughput_since_last_reduce")
    if ev:
        row["eval_win_rate"] = ev.get("win_rate")
        row["eval_invalid_rate"] = ev.get("invalid_rate")
        for opponent, value in (ev.get("win_rate_vs") or {}).items():
            row[f"eval_win_rate_vs/{opponent}"] = value
    if "schedule" in result:
        row["stage"] = result["schedule"]["stage"]
        row["stage_mix"] = result["schedule"]["mix"]
    return {
        k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "stage_mix" else v)
        for k, v in row.items()
        if v is not None
    }


def save_checkpoint(algo, run_dir: Path, game: dict, progress_rows: int | None = None) -> Path:
    """Save to a fresh folder, then swap it in: `<out>/checkpoint/` is never half written.

    Beside the algorithm: the game (bizsim.json) and `run_state.json`, the number of progress rows logged up to
    this checkpoint and the opponent schedule's state, which `--resume` restores (see `rewind`).
    """
    from workloads.rl.game import save_game

    final = run_dir / "checkpoint"
    tmp = run_dir / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp))
    save_game(tmp, game)
    schedule = run_dir / SCHEDULE_STATE
    write_json(
        tmp / RUN_STATE,
        {
            "iteration": algo.iteration,
            "progress_rows": progress_rows,
            "schedule_state": json.loads(schedule.read_text()) if schedule.is_file() else None,
        },
    )
    old = run_dir / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def rewind(run_dir: Path) -> dict:
    """Cut the run folder back to its checkpoint before a resume: progress rows after it, the schedule state and
    league snapshots of later iterations are what the killed run did past the checkpoint, and are redone."""
    if not (run_dir / "checkpoint").is_dir() and (run_dir / "checkpoint.old").is_dir():
        os.replace(run_dir / "checkpoint.old", run_dir / "checkpoint")  # killed in the middle of the swap
    state_path = run_dir / "checkpoint" / RUN_STATE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    progress = run_dir / "progress.jsonl"
    if state.get("progress_rows") is not None and progress.is_file():
        lines = [line for line in progress.read_text().splitlines() if line.strip()]
        progress.write_text("".join(line + "\n" for line in lines[: state["progress_rows"]]))
    if state.get("schedule_state") is not None:
        write_json(run_dir / SCHEDULE_STATE, state["schedule_state"])
    kept = set((state.get("schedule_state") or {}).get("snapshots", []))
    for snap in (run_dir / "snapshots").glob("iter_*"):
        if "iteration" in state and int(snap.name[5:]) > state["iteration"] and str(snap) not in kept:
            shutil.rmtree(snap, ignore_errors=True)
    return state


def iterate(cfg: RLConfig, run_dir: Path):
    """Build (or restore) the Algorithm and yield (algo, metrics row) per training iteration.

    The caller decides when to stop and when to checkpoint (`save_checkpoint`).
    """
    import torch
    from ray.rllib.algorithms.algorithm import Algorithm

    torch.set_num_threads(cfg.torch_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint"
    if cfg.resume:
        if not (checkpoint / "algorithm_state.pkl").is_file() and not any(checkpoint.glob("algorithm_state*")):
            raise UsageError(f"--resume: no checkpoint in {checkpoint}")
        algo = Algorithm.from_checkpoint(str(checkpoint))
    else:
        algo = build_algo_config(cfg, run_dir).build_algo()
    try:
        while True:
            yield algo, metrics_row(algo.train())
    finally:
        algo.stop()


def should_stop(cfg: RLConfig, row: dict, started: float) -> bool:
    return (
        (cfg.stop_iters and row["iteration"] >= cfg.stop_iters)
        or row["env_steps"] >= cfg.stop_timesteps
        or (cfg.time_budget_s and time.time() - started >= cfg.time_budget_s)
    )


def final_evaluation(checkpoint: Path, cfg: RLConfig) -> tuple[dict, list[dict]]:
    """After training: the saved policy (deterministic) at --eval-tables tables for every --eval-opponents entry,
    played by workloads.rl.evaluate (never the curriculum's stage mix). Returns the metrics row and the per-opponent
    rows with their Wilson intervals and score parts."""
    from workloads.rl.evaluate import evaluate_against
    from workloads.rl.policy import policy_from_checkpoint

    policy = policy_from_checkpoint(checkpoint)
    rows = [
        evaluate_against(policy, policy.game, spec, cfg.eval_episodes, cfg.seed + 20_000, cfg.eval_tables)
        for spec in parse_specs(cfg.eval_opponents)
    ]
    metrics = {
        "eval_win_rate": sum(r["wins"] for r in rows) / sum(r["episodes"] for r in rows),
        "eval_invalid_rate": sum(r["invalid_rate"] for r in rows) / len(rows),
    }
    for r in rows:
        metrics[f"eval_win_rate_vs/{r['opponent']}"] = r["win_rate"]
        metrics[f"eval_wilson_low_vs/{r['opponent']}"] = r["wilson_low"]
    return metrics, rows


def load_saved_config(run_dir: Path, cfg: RLConfig) -> RLConfig:
    """The settings of the run being resumed, with this command's stop criteria and resume flag."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise UsageError(f"--resume: {path} not found")
    saved = config_from_dict(RLConfig, json.loads(path.read_text()))
    return dataclasses.replace(
        saved,
        resume=True,
        out=cfg.out,
        stop_iters=cfg.stop_iters,
        stop_timesteps=cfg.stop_timesteps,
        time_budget_s=cfg.time_budget_s,
    )


class Logger:
    """progress.csv + TensorBoard scalars grouped by kind (charts/, eval/, schedule/), CleanRL style."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.path = run_dir / "progress.jsonl"
        self.rows = []
        if self.path.is_file():  # a resumed run (cut back to its checkpoint by `rewind`)
            self.rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        # TensorBoard hides what a killed run logged past the checkpoint: steps from the next one on are redone
        purge = int(max(r["env_steps"] for r in self.rows)) + 1 if self.rows else None
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)

    def log(self, row: dict):
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        step = int(row["env_steps"])
        for key, value in row.items():
            if isinstance(value, float) and key not in ("iteration", "env_steps"):
                group = "eval" if key.startswith("eval_") else "schedule" if key == "stage" else "charts"
                self.writer.add_scalar(f"{group}/{key}", value, step)
        self.writer.flush()

    def write_csv(self, run_dir: Path):
        keys = sorted({k for r in self.rows for k in r})
        with (run_dir / "progress.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

    def close(self):
        self.writer.close()


def plot_curves(rows: list[dict], path: Path, title: str = "") -> Path:
    """Learning curves against env steps: training win rate, evaluation win rates, return, invalid-action rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["env_steps"] for r in rows]

    def series(key):
        pts = [(r["env_steps"], r[key]) for r in rows if key in r]
        return zip(*pts) if pts else ((), ())

    for key in ["win_rate", "eval_win_rate"] + sorted({k for r in rows for k in r if k.startswith("eval_win_rate_vs")}):
        x, y = series(key)
        axes[0].plot(
            x, y, marker="." if key.startswith("eval") else None, label=key.replace("eval_win_rate_vs/", "eval vs ")
        )
    axes[0].set(title="win rate", xlabel="env steps", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    x, y = series("episode_return")
    axes[1].plot(x, y)
    axes[1].set(title="episode return (shaped)", xlabel="env steps")
    x, y = series("invalid_rate")
    axes[2].plot(x, y)
    axes[2].set(title="invalid-action rate", xlabel="env steps")
    if steps and any("stage" in r for r in rows):
        for r0, r1 in zip(rows, rows[1:]):
            if r1.get("stage") != r0.get("stage"):
                axes[0].axvline(r1["env_steps"], color="grey", lw=0.5)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(cfg: RLConfig, run_dir: Path) -> dict:
    """Train until a stop criterion, evaluate, checkpoint, plot; returns the summary keys of the run."""
    from tqdm import tqdm

    resumed = rewind(run_dir) if cfg.resume else {}  # cfg: the saved settings already (RLConfig.checked)
    write_json(run_dir / "config.json", dataclasses.asdict(cfg))
    logger = Logger(run_dir)
    start_steps = max((r["env_steps"] for r in logger.rows), default=0)
    started = time.time()
    row, final, final_rows = {}, {}, []
    progress = tqdm(total=cfg.stop_timesteps, unit="step", desc=f"{cfg.algo} bizsim", mininterval=5)
    gen = iterate(cfg, run_dir)
    try:
        for algo, row in gen:
            logger.log(row)
            progress.n = int(min(row["env_steps"], cfg.stop_timesteps))
            progress.set_postfix({k: round(row[k], 3) for k in ("win_rate", "eval_win_rate") if k in row})
            game = algo.config.env_config["game"]
            if should_stop(cfg, row, started):
                checkpoint = save_checkpoint(algo, run_dir, game, len(logger.rows))
                final, final_rows = final_evaluation(checkpoint, cfg)
                final = {**final, "iteration": row["iteration"], "env_steps": row["env_steps"]}
                logger.log(final)
                break
            if algo.iteration % cfg.checkpoint_every == 0:
                save_checkpoint(algo, run_dir, game, len(logger.rows))
    finally:
        gen.close()
        progress.close()
        logger.close()
    train_s = time.time() - started
    logger.write_csv(run_dir)
    plot = plot_curves(
        logger.rows,
        run_dir / "learning_curves.png",
        f"{cfg.algo.upper()} bizsim c{cfg.complexity} {cfg.encoding} mask={cfg.mask} shaping={cfg.shaping}",
    )
    train_rows = [r for r in logger.rows if "win_rate" in r]
    env_steps = int(row.get("env_steps", 0))
    summary = {
        "outputs": {
            "checkpoint": str(checkpoint),
            "config": str(run_dir / "config.json"),
            "progress": str(run_dir / "progress.csv"),
            "learning_curves": str(plot),
            "tensorboard": str(run_dir / "tensorboard"),
        },
        "iterations": int(row.get("iteration", 0)),
        "env_steps": env_steps,
        "resumed_from_iteration": resumed.get("iteration"),
        "train_s": round(train_s, 1),
        "env_steps_per_s": round((env_steps - start_steps) / max(train_s, 1e-9), 1),
        "train_win_rate": train_rows[-1]["win_rate"] if train_rows else None,
        "final_eval": final,
        "final_eval_tables": final_rows,
    }
    print(
        f"checkpoint: {checkpoint}  env steps: {env_steps}  env steps/s: {summary['env_steps_per_s']}  "
        f"final eval: {final}"
    )
    if cfg.as_test:
        summary["as_test_passed"] = bool(final.get("eval_win_rate", 0.0) >= cfg.target_win_rate)
        if not summary["as_test_passed"]:
            print(f"--as-test failed: evaluation win rate below {cfg.target_win_rate}", file=sys.stderr)
            summary["status"] = "as_test_failed"
    return summary
