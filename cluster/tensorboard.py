"""`python -m cluster tensorboard`: TensorBoard over the run folder, on 127.0.0.1 (the baseline Tune dashboard).

Every Tune and RLlib run writes TensorBoard event files into its trial folders under runs/, so one TensorBoard
over runs/ shows every workload's scalars. It binds to 127.0.0.1 only; reach it from elsewhere through an SSH
tunnel rather than --host 0.0.0.0.

    python -m cluster tensorboard [--logdir runs] [--port 6006]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and exec TensorBoard; returns only on a usage error."""
    parser = argparse.ArgumentParser(
        prog="python -m cluster tensorboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--logdir",
        default=os.environ.get("DLWILD_RUNS", "runs"),
        help="run folder or URI TensorBoard reads (default: $DLWILD_RUNS or runs)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=6006)
    args = parser.parse_args(argv)
    if "://" not in args.logdir and not Path(args.logdir).is_dir():
        print(f"error: no run folder at {args.logdir} yet; run a workload first or pass --logdir", file=sys.stderr)
        return 2
    print(f"TensorBoard: http://{args.host}:{args.port}/  (logdir {args.logdir}; Ctrl-C stops it)", flush=True)
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        args.logdir,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    os.execv(sys.executable, command)  # TensorBoard takes over this process: Ctrl-C and kill reach it directly


if __name__ == "__main__":
    raise SystemExit(main())
