"""`python -m cluster up|down|status|submit|validate`: the embedded cluster and its jobs.

How to run:
    python -m cluster up                 # head node on 127.0.0.1, dashboard http://127.0.0.1:8265
    python -m cluster up --autoscale     # head with 0 CPUs; fake worker nodes come and go with demand
    python -m cluster submit doctor      # run a workload as a Ray job, stream its logs
    python -m cluster status             # dashboard URL, resources, jobs
    python -m cluster down               # stop exactly what `up` started
    python -m cluster validate cluster/kuberay/*.yaml serving/config.yaml
    python -m cluster tensorboard        # TensorBoard over runs/ on http://127.0.0.1:6006
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn


def _fail(message: str) -> NoReturn:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2 if "usage" in message else 1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see --help; usage: python -m cluster up|down|status|submit|validate|tensorboard)")


def _cmd_up(args: argparse.Namespace) -> int:
    from cluster import head

    try:
        state, started = head.up(
            num_cpus=args.num_cpus, port=args.port, dashboard_port=args.dashboard_port, autoscale=args.autoscale
        )
    except RuntimeError as exc:
        _fail(str(exc))
    if not started:
        print(f"already running: dashboard {state.dashboard_url} (pid {state.pid}); `python -m cluster down` stops it")
        return 0
    mode = "autoscaling (fake multi-node)" if state.autoscale else "single node"
    print(f"started Ray head ({mode}) at {state.gcs_address}, pid {state.pid}")
    print(f"dashboard: {state.dashboard_url}")
    print(f"token auth: on, token file {head.token_path()} (clients on this machine find it there)")
    print(f"submit work: ray job submit --address {state.dashboard_url} --working-dir . -- python -m workloads.doctor")
    return 0


def _cmd_down(_args: argparse.Namespace) -> int:
    from cluster import head

    if head.load_state() is None:
        print("nothing to stop: no cluster started by `python -m cluster up`")
        return 0
    try:
        count = head.down()
    except RuntimeError as exc:
        _fail(str(exc))
    print(f"stopped {count} Ray process(es)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from cluster import head

    info = head.status()
    if not info:
        print("not running: start it with `python -m cluster up`")
        return 1
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dashboard:  {info['dashboard_url']}   (GCS {info['gcs_address']}, pid {info['pid']})")
    print(f"token file: {info['token_file']}")
    resources = info.get("resources") or {}
    shown = ", ".join(
        f"{k} {v:g}" if k in ("CPU", "GPU") else f"{k} {v / 2**30:.1f} GiB" for k, v in sorted(resources.items())
    )
    print(f"nodes:      {info.get('nodes', '?')}   resources: {shown or info.get('resources_error', '-')}")
    jobs = info.get("jobs", [])
    print(f"jobs:       {len(jobs)}" + ("" if jobs else "  (none yet)"))
    for job in jobs:
        print(f"  {job['submission_id']:<28} {job['status']:<10} {job['entrypoint']}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from cluster import jobs

    try:
        return jobs.submit(args.workload, args.args, address=args.address, follow=not args.no_follow)
    except ValueError as exc:
        _fail(str(exc))
    except (ConnectionError, RuntimeError) as exc:
        _fail(
            f"cannot reach the cluster at {args.address or jobs.default_address()}: {str(exc).splitlines()[0]}"
            " (start one with `python -m cluster up`)"
        )


def _cmd_validate(args: argparse.Namespace) -> int:
    from cluster import validate

    return validate.main(args.paths)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("up", help="start the embedded head node on 127.0.0.1")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for work (default: all of this machine)")
    p.add_argument("--port", type=int, default=6379, help="GCS port")
    p.add_argument("--dashboard-port", type=int, default=8265)
    p.add_argument(
        "--autoscale",
        action="store_true",
        help="head with 0 CPUs and fake worker nodes added and removed by the autoscaler",
    )
    p.set_defaults(func=_cmd_up)
    p = sub.add_parser("down", help="stop what `up` started (by PID)")
    p.set_defaults(func=_cmd_down)
    p = sub.add_parser("status", help="dashboard URL, resources and jobs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("submit", help="run `python -m workloads.<workload> ARGS` as a Ray job and stream its logs")
    p.add_argument("workload")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the workload")
    p.add_argument("--address", default=None, help="dashboard URL (default: the cluster of `up`)")
    p.add_argument("--no-follow", action="store_true", help="print the submission id and return")
    p.set_defaults(func=_cmd_submit)
    p = sub.add_parser("validate", help="check launcher YAML, KubeRay manifests and Serve configs offline")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_cmd_validate)
    sub.add_parser("tensorboard", help="serve TensorBoard over the run folder on 127.0.0.1 (--logdir, --port)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tensorboard"]:  # its flags belong to cluster.tensorboard, not to this parser
        from cluster import tensorboard

        return tensorboard.main(argv[1:])
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
