"""`loba`: the headless command line.

    loba train CONFIG.toml --out DIR [--resume CHECKPOINT|auto] [--model PATH|toyworld] [--set key=value ...]
               [--preview-every N [--preview-weights -1,0,1]] [--instant] [--num-processes N]
    accelerate launch [--multi_gpu|--use_fsdp ...] -m loba.cli train CONFIG.toml --out DIR   data-parallel, any launcher
    loba demo --out DIR [--threads N] [--seeds 0,1,2] [--only sliders|unlearn|style]   the main job on the embedded toy models
    loba eval --slider FILE --spec SPEC.toml --out DIR [--weights TOYMODEL] [--device cpu]
    loba eval --model CKPT_OR_FOLDER --slider FILE --spec SPEC.toml --out DIR   any SD1/SD2/SDXL model (loba/eval)
    loba toyworld build|competence|export-diffusers ...
    loba push DIR --repo USER/NAME [--private]   the slider, its model card and run file to the Hugging Face Hub
    loba convert-args --out RUN.toml -- [accelerate launch] sdxl_train_leco.py --option=value ...

Each command is a registered (add_arguments, run) pair; heavy imports happen inside run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import LobaError
from ..registry import Registry


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: Registry[Command] = Registry("command", field="command")


def _parse_value(text: str):
    from ..config.toml_compat import TOMLDecodeError, loads

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


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from .train import add_train_arguments

    add_train_arguments(parser)


def _train(args) -> int:
    if args.num_processes < 1:
        raise LobaError(f"--num-processes must be 1 or more, got {args.num_processes}")
    if args.num_processes > 1:
        from .launch import launch_processes

        return launch_processes(args)
    from .train import run_train

    return run_train(args.config, args.out, resume=args.resume, model=args.model, overrides=_overrides(args.set), quiet=args.quiet,
                     preview_every=args.preview_every, preview_weights=args.preview_weights, instant=args.instant,
                     hub_model=args.hub_model)


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="measure on this model (diffusers folder, checkpoint file or 'toyworld') with a "
                                        "real-model spec (examples/eval-model.toml); without it: the toy-world evaluation")
    parser.add_argument("--dtype", default="float32", help="with --model: float32, float16 or bfloat16")
    parser.add_argument("--model-config", help="with --model and a checkpoint file: a diffusers folder with its configs (offline)")
    parser.add_argument("--slider", type=Path, required=True, help="kohya LoRA file (trained on the toy model without --model)")
    parser.add_argument("--spec", type=Path, required=True, help="eval spec TOML (see examples/eval-*.toml)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--weights", help="toy model: a diffusers folder or weights file (default: the shipped one)")
    parser.add_argument("--device", default="cpu")


def _eval(args) -> int:
    if args.model:
        from ..eval.headless import run_model_eval

        run_model_eval(args.model, args.slider, args.spec, args.out, device=args.device, dtype=args.dtype,
                       model_config=args.model_config)
        print(f"metrics.json, grid.png and report.html in {args.out}")
        return 0
    from ..toyworld.evaluate import run_eval

    return run_eval(args.slider, args.spec, args.out, args.weights, args.device)


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got '{text}'")
    return int(text)


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 0,1,2, got '{text}'") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"a seed is repeated in '{text}': each seed runs once")
    return seeds


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per slider, summary.json)")
    parser.add_argument("--weights", type=Path, help="toy-world weight file (default: the one shipped in the package)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run of the same steps (figures meaningless)")
    parser.add_argument("--objective", choices=("leco-classic",),
                        help="also run the original LECO recipe on the same budget and print both side by side")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="torch threads while training and scoring (default 1: figures and train seconds reproducible)")
    parser.add_argument("--seeds", type=_seed_list, metavar="N,N,...",
                        help="run each recipe once per training seed (e.g. 0,1,2) and report min / median / max over them")
    parser.add_argument("--only", choices=("sliders", "unlearn", "style"),
                        help="run one part: the two sliders on the plain world, U-LOBA's unlearning comparison on "
                             "the entangled world, or ST-LOBA's style shift there (default: sliders and unlearn; "
                             "unlearn writes DIR/unlearn/, style DIR/style/)")
    parser.add_argument("--world", type=_world_list, default=("toyworld",), metavar="NAME,...",
                        help="which toy worlds the sliders run on: toyworld (SD1), flow (a toy Flux transformer, flow "
                             "matching) or toyworld,flow (both, side by side in one table)")
    parser.add_argument("--unlearn-cases", type=_case_list, default=("triangle",), metavar="NAME,...",
                        help="which entangled-world biases the unlearn part re-attaches: triangle, square, large or all")
    parser.add_argument("--style-cases", type=_style_list, default=("pastel",), metavar="NAME,...",
                        help="which render styles the style part shifts to: pastel, outlined or all")


def _world_list(text: str) -> tuple[str, ...]:
    from ..toyworld.demo import WORLD_RECIPE_SUFFIXES

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in WORLD_RECIPE_SUFFIXES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown world {unknown[0] if unknown else text!r}; the slider demo runs on "
                                         f"{', '.join(WORLD_RECIPE_SUFFIXES)} (comma-separated for several)")
    return names


def _names_or_all(text: str, known, what: str) -> tuple[str, ...]:
    """Comma-separated names from `known` (or "all"), refused with the list when one is unknown."""
    names = tuple(known) if text == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown[0] if unknown else text!r}; use "
                                         f"{', '.join(known)} or all")
    return names


def _case_list(text: str) -> tuple[str, ...]:
    from ..toyworld.unlearn_cases import UNLEARN_CASES

    return _names_or_all(text, UNLEARN_CASES, "case")


def _style_list(text: str) -> tuple[str, ...]:
    from ..toyworld.style_shift_demo import STYLE_CASES

    return _names_or_all(text, STYLE_CASES, "style")


def _demo(args) -> int:
    from ..toyworld.demo import run_demo
    from ..toyworld.unlearn_demo import run_unlearn

    objectives = ("loba",) + ((args.objective,) if args.objective else ())
    if args.only == "style":
        return _style_demo(args)
    if args.only != "unlearn":
        run_demo(args.out, args.weights, quick=args.quick, objectives=objectives, threads=args.threads, seeds=args.seeds,
                 worlds=args.world)
    if args.only != "sliders":
        seeds = args.seeds or (0,)
        for seed in seeds:
            folder = args.out / "unlearn" / (f"seed-{seed}" if len(seeds) > 1 else "")
            run_unlearn(folder, cases=args.unlearn_cases, quick=args.quick, threads=args.threads, seed=seed)
    print(f"demo results in {args.out} (summary.json, */eval/grid.png, unlearn/summary.json)")
    return 0


def _style_demo(args) -> int:
    from ..toyworld.style_shift_demo import run_style

    seeds = args.seeds or (0,)
    for seed in seeds:
        folder = args.out / "style" / (f"seed-{seed}" if len(seeds) > 1 else "")
        run_style(folder, cases=args.style_cases, quick=args.quick, threads=args.threads, seed=seed)
    print(f"demo results in {args.out} (style/summary.json, style/*/*/grid.png)")
    return 0


def _toyworld_arguments(parser: argparse.ArgumentParser) -> None:
    from .toyworld import add_toyworld_verbs

    add_toyworld_verbs(parser)


def _toyworld(args) -> int:
    from .toyworld import run_toyworld

    return run_toyworld(args)


COMMANDS.register("train", Command("train a slider from a TOML/JSON run file", _train_arguments, _train))
COMMANDS.register("demo", Command("train and evaluate two sliders on the embedded toy model (offline, CPU)", _demo_arguments, _demo))
COMMANDS.register("eval", Command("score a slider on the toy world: metrics.json and grid.png", _eval_arguments, _eval))
def _convert_args_arguments(parser: argparse.ArgumentParser) -> None:
    from .convert_args import add_arguments

    add_arguments(parser)


def _convert_args(args) -> int:
    from .convert_args import run

    return run(args)


COMMANDS.register("convert-args", Command("an sd-scripts LECO command line (train_leco.py, sdxl_train_leco.py) as a run file",
                                          _convert_args_arguments, _convert_args))
def _push_arguments(parser: argparse.ArgumentParser) -> None:
    from .push import add_arguments

    add_arguments(parser)


def _push(args) -> int:
    from .push import run

    return run(args)


COMMANDS.register("push", Command("upload a run folder's slider, model card and run file to the Hugging Face Hub",
                                  _push_arguments, _push))
COMMANDS.register("toyworld", Command("the toy-world text-to-image model", _toyworld_arguments, _toyworld))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loba", description="Train LoRA sliders from prompts alone (LECO, extended).")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(commands.add_parser(name, help=command.help))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS.get(args.command).run(args)
    except LobaError as exc:
        print(f"loba: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
