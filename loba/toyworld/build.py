"""`loba toyworld build`: the deterministic recipe that trains the embedded toy model from nothing.

Stages, each saved in the work folder so an interrupted build resumes at the last finished stage:
autoencoder -> latent dataset -> text encoder + UNet -> the packaged weights file. Same seed and
device class give the same weights (CPU runs use a fixed thread count for that reason).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from .model import ToyComponents, build_text_encoder, build_unet, build_vae, clip_tokenizer

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildRecipe:
    seed: int = 0
    autoencoder_steps: int = 3000
    autoencoder_batch: int = 16
    dataset_size: int = 30000
    denoiser_steps: int = 9000  # length of the cosine learning-rate schedule
    denoiser_stop_at: int = 5000  # the shipped weights are the EMA at this step of that schedule
    denoiser_batch: int = 64
    threads: int = 2
    check_images: int = 1000  # fresh renders read back after encode/decode
    scale_images: int = 2048  # renders whose latent std sets the scaling factor


def _stage(path: Path, log: Log, make: Callable[[], dict]) -> dict:
    if path.is_file():
        log(f"reusing {path.name}")
        return torch.load(path, weights_only=False)
    state = make()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state


def build(work: Path, recipe: BuildRecipe = BuildRecipe(), log: Log = print) -> ToyComponents:
    from .train_autoencoder import latent_scaling_factor, reconstruction_accuracy, train_autoencoder
    from .train_denoiser import encode_dataset, train_denoiser

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    vae = build_vae()

    def autoencoder_stage() -> dict:
        started = time.perf_counter()
        train_autoencoder(vae, recipe.autoencoder_steps, recipe.autoencoder_batch, recipe.seed, log)
        accuracy = reconstruction_accuracy(vae, recipe.check_images, seed=recipe.seed + 7_000_001)
        log(f"autoencoder reconstructions read back: {accuracy}")
        return {"vae": vae.state_dict(), "scaling_factor": latent_scaling_factor(vae, recipe.scale_images, recipe.seed + 7_000_002),
                "accuracy": accuracy, "seconds": time.perf_counter() - started}

    ae = _stage(work / "autoencoder.pt", log, autoencoder_stage)
    vae.load_state_dict(ae["vae"])
    vae.eval().requires_grad_(False)
    components = ToyComponents(build_unet(), build_text_encoder(), clip_tokenizer(work / "tokenizer"), vae, ae["scaling_factor"])

    def dataset_stage() -> dict:
        latents, attributes = encode_dataset(vae, recipe.dataset_size, recipe.seed + 9_000_001, ae["scaling_factor"])
        return {"latents": latents, "attributes": [asdict(a) for a in attributes]}

    data = _stage(work / "dataset.pt", log, dataset_stage)

    def denoiser_stage() -> dict:
        from .attributes import Attributes

        started = time.perf_counter()
        attributes = [Attributes(**{**a, "center": tuple(a["center"])}) for a in data["attributes"]]
        train_denoiser(components, data["latents"], attributes, recipe.denoiser_steps, recipe.denoiser_batch, recipe.seed, log,
                       progress=work / "denoiser-progress.pt", stop_at=recipe.denoiser_stop_at)
        return {"unet": components.unet.state_dict(), "text_encoder": components.text_encoder.state_dict(),
                "seconds": time.perf_counter() - started}

    denoiser = _stage(work / "denoiser.pt", log, denoiser_stage)
    components.unet.load_state_dict(denoiser["unet"])
    components.text_encoder.load_state_dict(denoiser["text_encoder"])
    (work / "build.json").write_text(json.dumps({"recipe": asdict(recipe), "autoencoder_accuracy": ae["accuracy"],
                                                 "scaling_factor": ae["scaling_factor"],
                                                 "seconds": {"autoencoder": ae["seconds"], "denoiser": denoiser["seconds"]}},
                                                indent=2))
    return components.eval()


def build_and_package(work: Path, out: Optional[Path], recipe: BuildRecipe, log: Log = print,
                      competence: bool = True) -> ToyComponents:
    """Build, measure competence with the reader (stored in the file's metadata), write the weights file."""
    components = build(work, recipe, log)
    metadata = json.loads((Path(work) / "build.json").read_text())
    metadata.pop("scaling_factor", None)  # the weights file stores its own
    from .train_autoencoder import reconstruction_accuracy

    # Read back with today's reader on renders the build never saw (build.json keeps the build-time figure).
    metadata["autoencoder_read_back"] = reconstruction_accuracy(components.vae, 2000, seed=recipe.seed + 11_000_001)
    log(f"autoencoder read-back: {metadata['autoencoder_read_back']}")
    if competence:
        from .competence import measure_competence

        metadata["competence"] = measure_competence(components, seed=recipe.seed)
        log(f"competence: {json.dumps(metadata['competence']['accuracy'])} competent={metadata['competence']['competent']}")
    if out is not None:
        from .files import save_toy_checkpoint

        save_toy_checkpoint(out, components, metadata)
        log(f"wrote {out}")
    return components
