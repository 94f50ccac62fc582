"""Sampling the toy model with a slider at a chosen weight: the renders `loba eval` reads back.

An own DDIM loop (not a diffusers pipeline) so that every piece a slider comparison depends on is
pinned here: the noise of each sample comes from its seed alone (the same seed starts from the same
latent at every slider weight: a paired comparison), the slider acts through the adapter network's
multiplier (0 = the base model bit for bit), and prompt embeddings are computed once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..adapters import AdapterNetwork
from ..adapters.text_encoder import AdapterRoot, has_text_encoder, text_encoder_stems
from ..diffusion.sampler import cfg_ddim
from ..diffusion.schedule import NoiseSchedule, scaled_linear_alphas_cumprod
from ..pixels import decoder_to_pixels, pixels_to_uint8
from .model import DEFAULT_SAMPLING, LATENT_SIZE, SCHEDULER_CONFIG, ToyComponents

LATENT_CHANNELS = 4
TOKEN_LENGTH = 77
UNCONDITIONAL = ""  # what the model was trained on for classifier-free guidance


def toy_noise_schedule() -> NoiseSchedule:
    """SD's scaled-linear schedule from SCHEDULER_CONFIG, in float64 as NoiseSchedule expects."""
    alphas_cumprod = scaled_linear_alphas_cumprod(SCHEDULER_CONFIG["beta_start"], SCHEDULER_CONFIG["beta_end"],
                                                  SCHEDULER_CONFIG["num_train_timesteps"])
    return NoiseSchedule(alphas_cumprod, SCHEDULER_CONFIG["prediction_type"])


def initial_noise(seeds: Sequence[int]) -> torch.Tensor:
    """[N, 4, 8, 8] float32: one CPU generator per seed, so a sample's noise never depends on its batch."""
    shape = (LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))) for seed in seeds])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Decoder output [N, 3, H, W] in -1..1 -> uint8 [N, H, W, 3], rounded like a saved PNG."""
    return pixels_to_uint8(decoder_to_pixels(images))


class ToySampler:
    """Deterministic DDIM (eta 0) with classifier-free guidance on the toy model's diffusers components."""

    def __init__(self, components: ToyComponents, device: str | torch.device = "cpu"):
        self.components = components
        self.device = torch.device(device)
        for module in (components.unet, components.text_encoder, components.vae):
            module.to(self.device).eval().requires_grad_(False)
        self.schedule = toy_noise_schedule()
        self._embeddings: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """[N, 77, width] last hidden states (SD1's context), each distinct prompt encoded once per sampler."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._embeddings]
        if missing:
            tokenizer, encoder = self.components.tokenizer, self.components.text_encoder
            ids = tokenizer(missing, padding="max_length", max_length=TOKEN_LENGTH, truncation=True, return_tensors="pt").input_ids
            hidden = encoder(ids.to(self.device))[0]
            self._embeddings.update(zip(missing, hidden))
        return torch.stack([self._embeddings[p] for p in prompts])

    def sample(self, prompts: Sequence[str], seeds: Sequence[int], slider: AdapterNetwork | None = None, weight: float = 0.0,
               steps: int = DEFAULT_SAMPLING["steps"], cfg: float = DEFAULT_SAMPLING["cfg"], batch_size: int = 64, *,
               negative: str = UNCONDITIONAL) -> np.ndarray:
        """uint8 [N, 64, 64, 3] for prompts[i] from seeds[i]; the slider (if any) at multiplier `weight`;
        `negative` is the CFG negative prompt (the unconditional "" by default)."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per sample")
        if slider is None or slider.is_attached:
            return self._sample_with(slider, weight, prompts, seeds, steps, cfg, batch_size, negative)
        with slider.attached(slider_root(self.components, slider), self.device):
            return self._sample_with(slider, weight, prompts, seeds, steps, cfg, batch_size, negative)

    def _sample_with(self, slider, weight, prompts, seeds, steps, cfg, batch_size, negative=UNCONDITIONAL) -> np.ndarray:
        previous = slider.multiplier if slider is not None else None
        if slider is not None:
            slider.multiplier = weight
        text = slider is not None and has_text_encoder(slider.names)
        if text:
            self._embeddings = {}  # a text-encoder slider changes the embeddings with its weight: none cached across
        try:
            chunks = [self._sample_batch(prompts[i:i + batch_size], seeds[i:i + batch_size], steps, cfg, negative)
                      for i in range(0, len(prompts), batch_size)]
        finally:
            if slider is not None:
                slider.multiplier = previous
            if text:
                self._embeddings = {}
        return np.concatenate(chunks) if chunks else np.zeros((0, 64, 64, 3), np.uint8)

    def _sample_batch(self, prompts, seeds, steps: int, cfg: float, negative: str = UNCONDITIONAL) -> np.ndarray:
        # Negative and conditional halves in one UNet call: the slider sees both, as in any LoRA host.
        context = torch.cat([self.embed([negative] * len(prompts)), self.embed(prompts)])
        return self.denoise(seeds, lambda t: context, steps, cfg)

    @torch.no_grad()
    def denoise(self, seeds: Sequence[int], context_at: Callable[[int], torch.Tensor], steps: int, cfg: float) -> np.ndarray:
        """uint8 [N, 64, 64, 3] by DDIM from each seed's noise; context_at(t) is the [negative; conditional] context
        of timestep t (one context throughout for a plain sample; a prompt switch changes it mid-sample)."""
        n = len(seeds)

        def predict(x_pair: torch.Tensor, t: int) -> torch.Tensor:
            timesteps = torch.full((2 * n,), t, dtype=torch.long, device=self.device)
            return self.components.unet(x_pair, timesteps, context_at(t)).sample

        grid = self.schedule.ddim_grid(steps).tolist()
        [x] = cfg_ddim(predict, initial_noise(seeds).to(self.device), self.schedule, grid, cfg)
        decoded = self.components.vae.decode(x / self.components.scaling_factor).sample
        return to_uint8(decoded)


def denoiser_of(components) -> torch.nn.Module:
    """The UNet of an SD1 world, the transformer of the flow world."""
    return getattr(components, "transformer", None) or components.unet


def load_slider_network(path: str | os.PathLike, unet: torch.nn.Module, components: ToyComponents | None = None) -> AdapterNetwork:
    """The slider file's AdapterNetwork for the toy UNet (diffusers module names, kohya SD1 stems), not attached;
    with the components, its lora_te layers too (on their text encoder). For the flow world's transformer the
    file is read in kohya's Flux layout (fused qkv split back per diffusers module)."""
    from ..models.naming import KohyaNames
    from ..sliders.kohya import load_slider, network_from_file

    if hasattr(unet, "single_transformer_blocks"):
        return _flux_slider_network(path, unet)
    slider, unet_names = load_slider(path), KohyaNames(unet, "sd1").module_name_from_kohya
    if components is None:
        return network_from_file(slider, unet, unet_names)
    text = text_encoder_stems("sd1", [components.text_encoder])
    return network_from_file(slider, AdapterRoot(unet, [components.text_encoder]),
                             lambda stem: text.get(stem) if stem.startswith("lora_te") else unet_names(stem))


def _flux_slider_network(path: str | os.PathLike, transformer: torch.nn.Module) -> AdapterNetwork:
    from ..models.flux_naming import FluxNames
    from ..sliders.kohya import SliderFile, load_slider, network_from_file

    names, slider = FluxNames(transformer), load_slider(path)
    if any(stem.startswith("lora_te") for stem in slider.module_stems()):
        from ..errors import AdapterFileError

        raise AdapterFileError(f"{path}: text-encoder layers are not applied on the flow toy world (transformer only)")
    return network_from_file(SliderFile(names.from_file(slider.tensors), slider.metadata, slider.path), transformer,
                             names.module_name_from_kohya)


def slider_root(components: ToyComponents, slider: AdapterNetwork):
    """What the slider attaches to: the UNet (flow world: the transformer), or it and the text encoder for a
    text-encoder slider."""
    denoiser = denoiser_of(components)
    return AdapterRoot(denoiser, [components.text_encoder]) if has_text_encoder(slider.names) else denoiser


def load_toy_components(weights: str | os.PathLike | None = None) -> ToyComponents:
    """The toy model from a diffusers folder (`loba toyworld export-diffusers`), a toy-world weight file,
    or (None) the shipped weights."""
    folder = Path(weights) if weights is not None else None
    if folder is not None and (folder / "unet").is_dir():
        return _from_diffusers_folder(folder)
    from .files import load_toy_components as load_weight_file

    return load_weight_file(weights)


def _from_diffusers_folder(folder: Path) -> ToyComponents:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    vae = AutoencoderKL.from_pretrained(folder / "vae")
    return ToyComponents(UNet2DConditionModel.from_pretrained(folder / "unet"), CLIPTextModel.from_pretrained(folder / "text_encoder"),
                         CLIPTokenizer.from_pretrained(folder / "tokenizer"), vae, float(vae.config.scaling_factor)).eval()
