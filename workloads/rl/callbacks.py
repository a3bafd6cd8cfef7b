"""RLlib callbacks for bizsim: game metrics, the opponent curriculum and the non-stationary schedule.

The schedule lives in `env_config["schedule"]`:
    {"mode": "fixed" | "curriculum" | "nonstationary", "stages": [mix, ...], "threshold": 0.8,
     "every": 10, "league_size": 4, "run_dir": "<out>"}
A mix is {opponent spec: weight}. "league" as a stage is the league of the paper's plan, after AlphaStar and
RLlib's self-play examples: frozen snapshots of the learner (saved under `<run_dir>/snapshots/`) join the previous
stage's mix, a new one each time the learner's evaluation against the league crosses the threshold, and they are
drawn by payoff (prioritised fictitious self-play: weight (1 - p)^2 for a snapshot the learner beats at rate p, so
the ones it still loses to come up most). Live self-play seats (`--learner-seats`) and the main exploiter
(`--exploiter`, a second trained policy in half of the games) are set up in train.py / env.py. The stage index,
snapshot list and payoffs are kept in `<run_dir>/schedule_state.json`, so `--resume` continues at the same stage.
"""

from __future__ import annotations

import json
from pathlib import Path

from ray.rllib.callbacks.callbacks import RLlibCallback

from workloads.rl.game import EXPLOITER, LEARNER, save_game

LEAGUE = "league"
SNAPSHOT_SHARE = 0.5  # of the league stage's weight goes to the snapshots, the rest to the previous stage's mix


def opponent_label(specs) -> str:
    """The name an episode's opponents are logged under: a snapshot by its folder name (iter_000123)."""
    return "+".join(Path(s).name if "/" in s else s for s in specs)


def pfsp_weight(win_rate: float) -> float:
    """Prioritised fictitious self-play, AlphaStar's "hard" weighting: opponents the learner still loses to first."""
    return (1.0 - win_rate) ** 2 + 1e-3


def set_mix(env_runner_group, mix):
    """Give every sub-env of every env runner (local and remote) the opponent mix `mix`."""
    if env_runner_group is None:
        return

    def apply(runner):
        env = getattr(runner, "env", None)
        for sub in getattr(env, "envs", []) if env is not None else []:
            sub.unwrapped.set_opponents(mix)

    env_runner_group.foreach_env_runner(apply, local_env_runner=True)


def stage_label(stage) -> str:
    return "+".join(sorted(stage)) if isinstance(stage, dict) else str(stage)


class BizSimCallbacks(RLlibCallback):
    """Logs win rate, score and invalid-action rate per episode; runs the curriculum / non-stationary schedule."""

    # ---- metrics (on every env runner, training and evaluation) -----------------------------------------------
    def on_episode_end(self, *, episode, env_runner=None, metrics_logger=None, env=None, env_index=0, **kwargs):
        result = env.envs[env_index].unwrapped.episode_result
        if result is None or metrics_logger is None:
            return
        opponent = opponent_label(result["opponents"])
        for agent, r in result.items():
            if agent.startswith(EXPLOITER):
                metrics_logger.log_value("exploiter_win_rate", r["win"], window=200)
            if not agent.startswith(LEARNER):
                continue
            metrics_logger.log_value("win_rate", r["win"], window=200)
            metrics_logger.log_value(("win_rate_vs", opponent), r["win"], window=200)
            metrics_logger.log_value("final_score", r["score"], window=200)
            metrics_logger.log_value("invalid_rate", r["invalid"] / max(1, r["steps"]), window=200)

    # ---- schedule (on the driver) -----------------------------------------------------------------------------
    def on_algorithm_init(self, *, algorithm, **kwargs):
        self.schedule = dict(algorithm.config.env_config.get("schedule") or {"mode": "fixed"})
        self.state = {"stage": 0, "snapshots": [], "last_switch": 0, "payoff": {}}
        path = self._state_path()
        if path is not None and path.is_file():
            self.state.update(json.loads(path.read_text()))
        if self.schedule["mode"] != "fixed":
            self._apply(algorithm)

    def _state_path(self):
        run_dir = self.schedule.get("run_dir")
        return Path(run_dir) / "schedule_state.json" if run_dir else None

    def current_mix(self) -> dict:
        stages = self.schedule["stages"]
        stage = stages[self.state["stage"] % len(stages)]
        if stage == LEAGUE:
            base = next(s for s in reversed(stages[: self.state["stage"]]) if s != LEAGUE)
            snaps = self.state["snapshots"]
            if not snaps:
                return base
            total = sum(base.values())
            weights = {p: pfsp_weight(self.state["payoff"].get(Path(p).name, 0.5)) for p in snaps}
            norm = sum(weights.values())
            return {
                **{k: (1 - SNAPSHOT_SHARE) * v for k, v in base.items()},
                **{p: SNAPSHOT_SHARE * total * w / norm for p, w in weights.items()},
            }
        return stage

    def _apply(self, algorithm):
        mix = self.current_mix()
        set_mix(algorithm.env_runner_group, mix)
        if self.schedule["mode"] == "curriculum":  # evaluation follows the stage; non-stationary keeps it fixed
            set_mix(getattr(algorithm, "eval_env_runner_group", None), mix)
        path = self._state_path()
        if path is not None:
            path.write_text(json.dumps(self.state))

    def _snapshot(self, algorithm, iteration):
        """Save the learner module as a frozen league member (at most `league_size`, oldest dropped)."""
        folder = Path(self.schedule["run_dir"]) / "snapshots" / f"iter_{iteration:06d}"
        algorithm.get_module(LEARNER).save_to_path(str(folder))
        save_game(folder, algorithm.config.env_config["game"])
        self.state["snapshots"] = (self.state["snapshots"] + [str(folder)])[-int(self.schedule.get("league_size", 4)) :]

    def advance(self, algorithm, iteration):
        """Move to the next curriculum stage (the league stage stays and adds a snapshot instead)."""
        stages = self.schedule["stages"]
        if self.state["stage"] < len(stages) - 1:
            self.state["stage"] += 1
        if stages[self.state["stage"]] == LEAGUE:
            self._snapshot(algorithm, iteration)
        self._apply(algorithm)

    def update_payoff(self, algorithm, result) -> None:
        """The learner's recent win rate against each league snapshot (from training games) re-weights the mix."""
        seen = result.get("env_runners", {}).get("win_rate_vs") or {}
        names = {Path(p).name for p in self.state["snapshots"]}
        fresh = {k: float(v) for k, v in seen.items() if k in names}
        if fresh:
            self.state["payoff"].update(fresh)
            self._apply(algorithm)

    def on_train_result(self, *, algorithm, metrics_logger=None, result, **kwargs):
        mode = self.schedule["mode"]
        iteration = int(result.get("training_iteration", algorithm.iteration))
        if mode == "curriculum" and self.schedule["stages"][self.state["stage"]] == LEAGUE:
            self.update_payoff(algorithm, result)
        if mode == "curriculum":
            win = result.get("evaluation", {}).get("env_runners", {}).get("win_rate")
            if win is not None and win >= float(self.schedule["threshold"]):
                self.advance(algorithm, iteration)
        elif mode == "nonstationary" and iteration - self.state["last_switch"] >= int(self.schedule["every"]):
            self.state["stage"] += 1
            self.state["last_switch"] = iteration
            self._apply(algorithm)
        if mode != "fixed":
            result["schedule"] = {"stage": self.state["stage"], "mix": stage_label(self.current_mix())}
