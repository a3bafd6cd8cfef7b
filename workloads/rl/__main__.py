"""`python -m workloads.rl`: train PPO or DQN on bizsim (see workloads/rl/__init__.py for how to run)."""

from __future__ import annotations

import sys

from workloads.contract import UsageError, fail, init_ray, parse_config, run_dir
from workloads.rl.train import RLConfig, run


def main(argv=None) -> int:
    cfg = parse_config(RLConfig, argv, prog="python -m workloads.rl")
    out = run_dir("rl", cfg.out or None)
    if cfg.resume and not (out / "checkpoint").is_dir():
        fail(f"--resume: no checkpoint in {out / 'checkpoint'}")
    init_ray(num_cpus=None, num_gpus=cfg.num_gpus or None)
    try:
        summary = run(cfg, out)
    except UsageError as exc:
        fail(str(exc))
    print(f"summary: {out / 'summary.json'}")
    print(f"checkpoint: {summary['checkpoint']}  env steps: {summary['env_steps']}  "
          f"env steps/s: {summary['env_steps_per_s']}  final eval: {summary['final_eval']}")
    if cfg.as_test and not summary.get("as_test_passed"):
        print(f"--as-test failed: evaluation win rate below {cfg.target_win_rate}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
