"""workloads.rl: RLlib (new API stack) trains a firm in bizsim; PPO vs DQN, masks, shaping, curricula, leagues.

Section 6 of "Deep Learning in the Wild": DQN struggled as the state and action space grew, PPO less so;
reward shaping sped both up; an action mask was crucial for DQN; training went from no opponents to scripted
levels, with self-play last. See workloads/rl/README.md for figures.

How to run
----------
`python -m workloads.rl --smoke-test`                                   (a ~1 minute check of every output)
`python -m workloads.rl --algo ppo --complexity 1 --curriculum --time-budget-s 1700`   (the default training)
`python -m workloads.rl --algo dqn --opponents L1,L2 --stop-timesteps 300000`
`python -m workloads.rl.evaluate --checkpoint runs/rl/<ts>/checkpoint --opponents L1,L2,L3 --episodes 200`
`python -m workloads.rl.compare --smoke-test`                           (the PPO/DQN x mask x shaping grid)
Under a cluster: `ray job submit --working-dir . -- python -m workloads.rl --smoke-test --out /tmp/rl`.

Results to expect
-----------------
`<out>/summary.json` (the contract's common keys, output paths, env steps/s, final evaluation),
`<out>/learning_curves.png`, `<out>/progress.csv`, TensorBoard logs in `<out>/tensorboard/`, the final checkpoint
in `<out>/checkpoint/`; `--resume --out <out>` continues a killed run from its last checkpoint.
"""
