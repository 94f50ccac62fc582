"""`loba toyworld build --world entangled`: the shipped toy model fine-tuned into the entangled world.

The shipped autoencoder never saw outlines or pastel colors (it decodes them as filled vivid blobs), so
the fine-tune has three stages, each saved in the work folder (an interrupted build resumes at the last
finished stage, and inside the two training stages at the last checkpoint):
1. autoencoder: the shipped VAE's decoder trained on styled renders; the encoder stays the shipped one, so
   the shipped UNet's latent space keeps its meaning (the UNet only has to learn where styles go);
2. latent dataset: fresh styled renders encoded by that VAE (the shipped scaling factor is kept);
3. UNet: the shipped UNet trained on entangled captions (entangled_captions.py: the biases live there);
   the text encoder stays the shipped one except the token rows of the new words, so it is shared.
Same seed and thread count give the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .model import ToyComponents

Log = Callable[[str], None]
NEW_WORDS = ("an", "outlined", "filled", "vivid", "pastel", "shape")


@dataclass(frozen=True)
class EntangledRecipe:
    seed: int = 0
    # Measured on 2 CPU cores: autoencoder 300 steps ~2.5 min, denoiser 1200 steps ~11 min quiet (38 min shared
    # with other jobs), competence ~2-10 min.
    autoencoder_steps: int = 300
    autoencoder_batch: int = 12
    autoencoder_lr: float = 5e-4
    read_back_images: int = 256
    dataset_size: int = 4000
    denoiser_steps: int = 1200  # length of the cosine learning-rate schedule
    denoiser_stop_at: int = 1200  # the shipped weights: the whole schedule (250 steps left the biases at chance)
    denoiser_batch: int = 32
    denoiser_lr: float = 3e-4
    save_every: int = 25  # steps between checkpoints inside the training stages
    threads: int = 2


def new_word_rows(tokenizer) -> list[int]:
    """Token ids of the words the shipped world never saw (the only text-encoder rows the fine-tune trains)."""
    return sorted({i for word in NEW_WORDS for i in tokenizer(word).input_ids[1:-1]})


def _progress(path: Path, load: bool, state: dict | None = None) -> dict | None:
    if load:
        return torch.load(path, weights_only=False) if path.is_file() else None
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return None


def finetune_autoencoder(vae, recipe: EntangledRecipe, log: Log, progress: Path | None = None) -> None:
    """The decoder (and post-quant conv) learns to draw styled renders from the FROZEN shipped encoder's
    means: every latent the shipped UNet learned keeps its meaning, plain scenes included."""
    from .render import render_styled_batch
    from .train_autoencoder import cosine_lr, images_to_tensor

    vae.requires_grad_(False)
    trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    for parameter in trained:
        parameter.requires_grad_(True)
    vae.decoder.train()
    optimizer = torch.optim.AdamW(trained, lr=recipe.autoencoder_lr, weight_decay=0.0)
    start, saved = 0, _progress(progress, True) if progress is not None else None
    if saved is not None:
        vae.load_state_dict(saved["vae"])
        optimizer.load_state_dict(saved["optimizer"])
        start = saved["step"]
        log(f"autoencoder fine-tune resumes at step {start}")
    started = time.perf_counter()
    for step in range(start, recipe.autoencoder_steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, recipe.autoencoder_steps, recipe.autoencoder_lr, warmup=min(10, recipe.autoencoder_steps))
        x = images_to_tensor(render_styled_batch(recipe.autoencoder_batch, seed=recipe.seed * 1_000_003 + 5_000_000 + step)[0])
        with torch.no_grad():
            mean = vae.encode(x).latent_dist.mean  # the UNet is trained on means: the decoder must read them
        error = vae.decode(mean).sample - x
        loss = error.abs().mean() + error.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        if step % 10 == 0 or step == recipe.autoencoder_steps - 1:
            log(f"autoencoder step {step + 1}/{recipe.autoencoder_steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f}s)")
        if progress is not None and (step + 1) % recipe.save_every == 0:
            _progress(progress, False, {"step": step + 1, "vae": vae.state_dict(), "optimizer": optimizer.state_dict()})
    vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_styled_dataset(vae, n: int, seed: int, scaling_factor: float) -> tuple[torch.Tensor, list]:
    from .render import render_styled_batch
    from .train_autoencoder import images_to_tensor

    images, attributes, styles = render_styled_batch(n, seed)
    latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in images_to_tensor(images).split(512)])
    return latents * scaling_factor, list(zip(attributes, styles))


def _stage(path: Path, log: Log, make: Callable[[], dict]) -> dict:
    from .build import _stage as stage

    return stage(path, log, make)


def build_entangled(work: Path, base: ToyComponents, recipe: EntangledRecipe = EntangledRecipe(),
                    log: Log = print) -> tuple[ToyComponents, dict]:
    """(the entangled model, its build record) from `base` (the shipped components, modified in place)."""
    from .attributes import Attributes
    from .entangled_captions import entangled_caption
    from .style import Style
    from .train_denoiser import train_denoiser

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    ae = _stage(work / "entangled-autoencoder.pt", log, lambda: _autoencoder_stage(base, recipe, log, work))
    base.vae.load_state_dict(ae["vae"])
    base.vae.eval().requires_grad_(False)

    def dataset_stage() -> dict:
        latents, scenes = encode_styled_dataset(base.vae, recipe.dataset_size, recipe.seed + 13_000_001, base.scaling_factor)
        return {"latents": latents, "scenes": [(asdict(a), asdict(s)) for a, s in scenes]}

    data = _stage(work / "entangled-dataset.pt", log, dataset_stage)
    scenes = [(Attributes(**{**a, "center": tuple(a["center"])}), Style(**s)) for a, s in data["scenes"]]

    def denoiser_stage() -> dict:
        started = time.perf_counter()
        train_denoiser(base, data["latents"], scenes, recipe.denoiser_steps, recipe.denoiser_batch, recipe.seed + 1, log,
                       lr=recipe.denoiser_lr, progress=work / "entangled-denoiser-progress.pt", save_every=recipe.save_every,
                       captioner=entangled_caption, text_rows=new_word_rows(base.tokenizer), warmup=min(20, recipe.denoiser_steps),
                       stop_at=recipe.denoiser_stop_at)
        return {"unet": base.unet.state_dict(), "text_encoder": base.text_encoder.state_dict(),
                "seconds": time.perf_counter() - started}

    denoiser = _stage(work / "entangled-denoiser.pt", log, denoiser_stage)
    base.unet.load_state_dict(denoiser["unet"])
    base.text_encoder.load_state_dict(denoiser["text_encoder"])
    record = {"recipe": asdict(recipe), "seconds": {"autoencoder": ae["seconds"], "denoiser": denoiser["seconds"]},
              "autoencoder_read_back": ae["read_back"]}
    return base.eval(), record


def _autoencoder_stage(base: ToyComponents, recipe: EntangledRecipe, log: Log, work: Path) -> dict:
    from .entangled_competence import styled_read_back

    started = time.perf_counter()
    finetune_autoencoder(base.vae, recipe, log, progress=work / "entangled-autoencoder-progress.pt")
    read_back = styled_read_back(base.vae, recipe.read_back_images, seed=recipe.seed + 17_000_001)
    log(f"autoencoder read-back (styled renders): {read_back}")
    return {"vae": base.vae.state_dict(), "read_back": read_back, "seconds": time.perf_counter() - started}
