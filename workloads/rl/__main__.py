"""`python -m workloads.rl`: train PPO or DQN on bizsim (see workloads/rl/__init__.py for how to run)."""

from __future__ import annotations

import sys

from workloads import contract
from workloads.rl.train import RLConfig, run


def main(argv=None) -> int:
    return contract.main(RLConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
