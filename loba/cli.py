"""`loba`: the headless command line.

    loba train CONFIG.toml --out DIR [--resume CHECKPOINT|auto] [--model PATH] [--set key=value ...]
    loba make-tiny-model DIR [--kind sd1|sd2|sdxl] [--v-prediction]
    loba eval --slider FILE --spec SPEC.toml --out DIR [--weights TOYMODEL] [--device cpu]
    loba toyworld export-diffusers DIR [--weights FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from .errors import LobaError


def _parse_value(text: str):
    from .toml_compat import TOMLDecodeError, loads

    try:
        return loads(f"v = {text}")["v"]
    except TOMLDecodeError:
        return text


def _overrides(pairs: Sequence[str]) -> dict:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise LobaError(f"--set expects key=value, got '{pair}'")
        values[key.strip()] = _parse_value(value.strip())
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loba", description="Train LoRA sliders from prompts alone (LECO, extended).")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a slider from a TOML/JSON run file")
    train.add_argument("config", type=Path, help="run file: model, training options and prompts (sd-scripts LECO keys work)")
    train.add_argument("--out", type=Path, required=True, help="output folder: slider.safetensors, loss.csv, checkpoints/")
    train.add_argument("--resume", help="checkpoint to continue from, or 'auto' for the newest in OUT/checkpoints")
    train.add_argument("--model", help="base model (overrides pretrained_model_name_or_path)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option, e.g. --set network_dim=8")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    tiny = commands.add_parser("make-tiny-model", help="build a tiny random SD-architecture pipeline (smoke tests, no download)")
    tiny.add_argument("folder", type=Path)
    tiny.add_argument("--kind", choices=("sd1", "sd2", "sdxl"), default="sd1")
    tiny.add_argument("--v-prediction", action="store_true")
    tiny.add_argument("--seed", type=int, default=0)
    evaluate = commands.add_parser("eval", help="score a slider on the toy world: metrics.json and grid.png")
    evaluate.add_argument("--slider", type=Path, required=True, help="kohya LoRA file trained on the toy model")
    evaluate.add_argument("--spec", type=Path, required=True, help="eval spec TOML (see examples/eval-*.toml)")
    evaluate.add_argument("--out", type=Path, required=True, help="output folder")
    evaluate.add_argument("--weights", help="toy model: a diffusers folder or weights file (default: the shipped one)")
    evaluate.add_argument("--device", default="cpu")
    _add_toyworld(commands)
    return parser


def _add_toyworld(commands) -> None:
    """`loba toyworld <verb>`: the toy text-to-image model, one subparser per verb."""
    toyworld = commands.add_parser("toyworld", help="the toy-world text-to-image model")
    verbs = toyworld.add_subparsers(dest="toyworld_command", required=True)
    export = verbs.add_parser("export-diffusers", help="write the toy model as a diffusers StableDiffusionPipeline folder")
    export.add_argument("folder", type=Path)
    export.add_argument("--weights", type=Path, help="toy-world weight file (default: the one shipped in the package)")


def _run_toyworld(args) -> int:
    if args.toyworld_command == "export-diffusers":
        from .toyworld.export import export_diffusers

        print(f"toy-world pipeline written to {export_diffusers(args.folder, args.weights)}")
        return 0
    raise LobaError(f"unknown toyworld command '{args.toyworld_command}'")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            from .cli_train import run_train

            return run_train(args.config, args.out, resume=args.resume, model=args.model,
                             overrides=_overrides(args.set), quiet=args.quiet)
        if args.command == "toyworld":
            return _run_toyworld(args)
        if args.command == "eval":
            from .toyworld.evaluate import run_eval

            return run_eval(args.slider, args.spec, args.out, args.weights, args.device)
        from .tiny_models import tiny_pipeline

        tiny_pipeline(args.folder, args.kind, "v_prediction" if args.v_prediction else "epsilon", args.seed)
        print(f"tiny {args.kind} pipeline written to {args.folder}")
        return 0
    except LobaError as exc:
        print(f"loba: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
