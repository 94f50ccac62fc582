"""`loba train --num-processes N`: the same command, data-parallel, through accelerate's own launcher.

It is `accelerate launch --multi_gpu --num_processes N -m loba.cli train ...` called in this process (accelerate's
launch_command: torchrun's elastic agent starts the N workers and ends them all when one fails). On a machine
without GPUs the workers join a gloo group on the CPU (loba/train/distributed.py). For FSDP, several machines or a
saved `accelerate config`, call `accelerate launch` yourself with the same arguments after `-m loba.cli train`.
"""

from __future__ import annotations

import argparse
import socket
import sys

from ..errors import ConfigError


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The `loba train` arguments every worker runs with: the caller's own, less --num-processes."""
    argv = ["train", str(args.config)]
    for flag, value in (("--out", args.out), ("--resume", args.resume), ("--model", args.model)):
        if value is not None:
            argv += [flag, str(value)]
    for pair in args.set:
        argv += ["--set", pair]
    if args.preview_every:
        argv += ["--preview-every", str(args.preview_every), "--preview-weights", args.preview_weights]
    argv += ["--instant"] * bool(args.instant) + ["--quiet"] * bool(args.quiet)
    return argv


def free_port() -> int:
    """A TCP port nobody listens on now: the workers' rendezvous. accelerate's fixed default (29500) collides with
    any other run on the machine (a second user's, or one still shutting down), and rank 0 then fails to listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_processes(args: argparse.Namespace) -> int:
    """Run `loba train` in args.num_processes processes; the exit code of the launch (0, or the first failure's)."""
    if args.instant:
        raise ConfigError("num-processes", "an instant slider trains no step: run it in one process")
    try:
        from accelerate.commands.launch import launch_command, launch_command_parser
    except ImportError:
        raise ConfigError("num-processes", "several processes need accelerate: pip install accelerate") from None
    launcher = ["--multi_gpu", "--num_processes", str(args.num_processes), "--num_machines", "1",
                "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
                "--quiet", "-m", "loba.cli"]
    parsed = launch_command_parser().parse_args(launcher + worker_argv(args))
    try:
        launch_command(parsed)
    except SystemExit as exit_:  # accelerate exits 1 after printing which worker failed (its traceback is above)
        code = exit_.code if isinstance(exit_.code, int) else 1
        if code:
            print(f"loba: error: a training process failed (exit {code}); every process was stopped", file=sys.stderr)
        return code
    return 0
