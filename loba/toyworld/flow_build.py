"""`loba toyworld build --world flow`: the flow toy world, a toy Flux transformer trained by flow matching.

It reuses the shipped toy world's autoencoder (latents) and text encoder (context and pooled vector)
unchanged, so only the transformer is trained and shipped. Stages, each saved in the work folder (an
interrupted build resumes at the last finished stage, and inside the training at its last checkpoint):
1. latent dataset: fresh renders encoded by the shipped VAE (its scaling factor);
2. transformer: rectified-flow training (flow_train.py).
Same seed and thread count give the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from .flow_model import FLOW_CONFIG, FlowComponents, build_flow_transformer

Log = Callable[[str], None]


@dataclass(frozen=True)
class FlowRecipe:
    seed: int = 0
    # Measured on 2 CPU cores: dataset ~1 min; batch 32 at 0.09 s/step on a quiet machine (1-6 s/step while other
    # jobs held the cores). The EMA at step 1300 of a 2400-step schedule obeyed the shape word 0.45, the full 2400
    # steps 0.61, a 10000-step schedule 0.95 (competent; 15 min): the shipped weights.
    dataset_size: int = 4000
    denoiser_steps: int = 10000  # length of the cosine learning-rate schedule
    denoiser_stop_at: int = 10000  # stop at this step of that schedule (a shorter budget keeps the EMA so far)
    denoiser_batch: int = 32
    denoiser_lr: float = 1e-3
    ema_decay: float = 0.995
    warmup: int = 100
    save_every: int = 100  # steps between checkpoints inside the training
    threads: int = 2
    # Competence: samples per fully specified prompt (48 prompts) and per partial one.
    competence_samples: int = 8
    partial_samples: int = 32


def _stage(path: Path, log: Log, make: Callable[[], dict]) -> dict:
    from .build import _stage as stage

    return stage(path, log, make)


def build_flow(work: Path, base, recipe: FlowRecipe = FlowRecipe(), log: Log = print,
               config: Optional[dict] = None) -> tuple[FlowComponents, dict]:
    """(the flow model, its build record) on `base` (the shipped toy world's ToyComponents: VAE, text encoder)."""
    from .attributes import Attributes
    from .flow_train import train_flow_denoiser
    from .train_denoiser import encode_dataset

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)

    def dataset_stage() -> dict:
        latents, attributes = encode_dataset(base.vae, recipe.dataset_size, recipe.seed + 19_000_001, base.scaling_factor)
        return {"latents": latents, "attributes": [asdict(a) for a in attributes]}

    data = _stage(work / "flow-dataset.pt", log, dataset_stage)
    attributes = [Attributes(**{**a, "center": tuple(a["center"])}) for a in data["attributes"]]
    config = dict(FLOW_CONFIG if config is None else config)
    components = FlowComponents(build_flow_transformer(config), base.text_encoder, base.tokenizer, base.vae, base.scaling_factor)

    def denoiser_stage() -> dict:
        started = time.perf_counter()
        train_flow_denoiser(components, data["latents"], attributes, recipe.denoiser_steps, recipe.denoiser_batch,
                            recipe.seed + 3, log, lr=recipe.denoiser_lr, ema_decay=recipe.ema_decay,
                            progress=work / "flow-denoiser-progress.pt", save_every=recipe.save_every, warmup=recipe.warmup,
                            stop_at=recipe.denoiser_stop_at)
        return {"transformer": components.transformer.state_dict(), "seconds": time.perf_counter() - started}

    denoiser = _stage(work / "flow-denoiser.pt", log, denoiser_stage)
    components.transformer.load_state_dict(denoiser["transformer"])
    record = {"recipe": asdict(recipe), "seconds": {"denoiser": denoiser["seconds"]}}
    return components.eval(), record
