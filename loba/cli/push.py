"""`loba push DIR --repo USER/NAME [--private]`: a run folder to a Hub model repo (loba/hub/push.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="the output folder of `loba train` (slider, loss.csv, samples/, eval/)")
    parser.add_argument("--repo", required=True, help="the Hub model repo, USER/NAME (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its setting)")
    parser.add_argument("--slider", type=Path, help="the slider file when DIR holds several")
    parser.add_argument("--run-file", type=Path, help="the run file to upload with it (default: DIR/run.toml when present)")
    parser.add_argument("--base-model", help="the Hub id of the base model for the card (default: the run file's model "
                                             "when it is a Hub id)")


def run(args) -> int:
    from ..hub.push import push_run

    result = push_run(args.dir, args.repo, private=args.private, slider=args.slider, run_file=args.run_file,
                      base_model=args.base_model)
    print(f"pushed {len(result.files)} files to {result.url}: {', '.join(result.files)}")
    return 0
