"""`loba toyworld <verb>`: build the embedded toy model, measure it, export it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import LobaError

DEFAULT_WORK = Path.home() / ".cache" / "loba" / "toyworld-build"
DEFAULT_WORKS = {"toyworld": DEFAULT_WORK, "entangled": DEFAULT_WORK.parent / "toyworld-entangled-build",
                 "flow": DEFAULT_WORK.parent / "toyworld-flow-build"}


def _world_argument(parser: argparse.ArgumentParser, what: str) -> None:
    from ..toyworld.worlds import DEFAULT_WORLD, world_names

    parser.add_argument("--world", choices=world_names(), default=DEFAULT_WORLD,
                        help=f"which shipped toy world {what} (entangled: biased under-specified captions, styles; flow: a toy "
                             "Flux transformer trained by flow matching)")


def add_toyworld_verbs(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="toyworld_command", required=True)
    build = verbs.add_parser("build", help="train the toy model from nothing (deterministic; resumes an interrupted build)")
    build.add_argument("--out", type=Path, required=True,
                       help="weights file to write (shipped: loba/toyworld/weights/toyworld.safetensors)")
    build.add_argument("--work", type=Path, help="stage checkpoints (resumable; default ~/.cache/loba/<world>-build)")
    _world_argument(build, "to build (entangled: a fine-tune of the shipped world)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--denoiser-steps", type=int, help="override the recipe (quick trial builds)")
    build.add_argument("--autoencoder-steps", type=int, help="override the recipe (quick trial builds)")
    build.add_argument("--denoiser-stop-at", type=int,
                       help="override the recipe: stop at this step of the denoiser schedule (a longer run resumes "
                            "from the last checkpoint once the work folder's finished denoiser stage file is removed)")
    build.add_argument("--no-competence", action="store_true", help="skip measuring competence before packaging")
    competence = verbs.add_parser("competence", help="measure how well the toy model draws what it is asked")
    competence.add_argument("--weights", type=Path, help="weights file (default: the shipped one)")
    competence.add_argument("--samples", type=int, default=64, help="samples per prompt (fully specified and partial)")
    competence.add_argument("--out", type=Path, help="write the figures as JSON here")
    _world_argument(competence, "to measure when --weights is not given")
    export = verbs.add_parser("export-diffusers", help="write the toy model as a diffusers StableDiffusionPipeline folder")
    export.add_argument("folder", type=Path)
    export.add_argument("--weights", type=Path, help="toy-world weight file (default: the one shipped in the package)")
    _world_argument(export, "to export when --weights is not given")


def _weights(args):
    from ..toyworld.worlds import world_weights

    return args.weights if args.weights is not None else world_weights(args.world)


def _build_entangled(args) -> int:

    from ..toyworld.entangled import EntangledRecipe
    from ..toyworld.entangled_package import build_and_package_entangled

    recipe = _with_step_options(EntangledRecipe(seed=args.seed), args)
    build_and_package_entangled(args.work or DEFAULT_WORKS["entangled"], args.out, recipe, competence=not args.no_competence)
    return 0



def _with_step_options(recipe, args):
    """The recipe with the step counts the command line sets (0 keeps the recipe's own)."""
    from dataclasses import replace

    given = {name: getattr(args, name) for name in ("denoiser_stop_at", "denoiser_steps", "autoencoder_steps")}
    return replace(recipe, **{name: value for name, value in given.items() if value})


def _build_flow(args) -> int:
    from ..toyworld.flow_build import FlowRecipe
    from ..toyworld.flow_package import build_and_package_flow

    if args.autoencoder_steps:
        raise LobaError("--autoencoder-steps does not apply to --world flow (it reuses the shipped autoencoder); use "
                        "--denoiser-steps or --denoiser-stop-at")
    recipe = _with_step_options(FlowRecipe(seed=args.seed), args)
    build_and_package_flow(args.work or DEFAULT_WORKS["flow"], args.out, recipe, competence=not args.no_competence)
    return 0


def _build(args) -> int:

    from ..toyworld.build import BuildRecipe, build_and_package

    if args.world == "entangled":
        return _build_entangled(args)
    if args.world == "flow":
        return _build_flow(args)
    recipe = _with_step_options(BuildRecipe(seed=args.seed), args)
    build_and_package(args.work or DEFAULT_WORK, args.out, recipe, competence=not args.no_competence)
    return 0


def _competence(args) -> int:
    from ..toyworld.competence import measure_competence
    from ..toyworld.files import load_toy_components

    components = load_toy_components(_weights(args))
    if args.world == "entangled":  # its own figures: explicit prompts obeyed, designed bias rates, styles
        from ..toyworld.entangled_competence import measure_entangled

        figures = measure_entangled(components, samples=args.samples)
    else:
        figures = measure_competence(components, samples_per_prompt=args.samples, partial_samples=args.samples)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        from ..sliders.atomic import atomic_write_text

        atomic_write_text(args.out, text)
    return 0 if figures.get("competent", True) else 1  # the entangled figures have no pass bar


def _export(args) -> int:
    from ..toyworld.export import export_diffusers

    if args.weights is None and args.world == "flow":
        raise LobaError("export-diffusers writes a StableDiffusionPipeline; the flow world is a Flux-architecture model "
                        "(its file loads with `loba` and the Toy World Loader); choose --world toyworld or entangled")

    print(f"toy-world pipeline written to {export_diffusers(args.folder, _weights(args))}")
    return 0


VERBS = {"build": _build, "competence": _competence, "export-diffusers": _export}


def run_toyworld(args) -> int:
    if args.toyworld_command not in VERBS:
        raise LobaError(f"unknown toyworld command '{args.toyworld_command}'")
    return VERBS[args.toyworld_command](args)
