"""Headless rendering: any SD1 / SD2 / SDXL model through the diffusers backend, sampled with LOBA's one sampler
(cfg_ddim), the slider as an attached adapter at multiplier w (w = 0 is the base model bit for bit).

Matches ComfyUI's KSampler 'ddim' + 'ddim_uniform' step for step, so the Evaluate node and `loba eval --model`
agree on the same seeds: the grid is ComfyUI's ddim_uniform one, the noise is ComfyUI's prepare_noise (one CPU
generator per seed over the whole latent), and the start latent is an empty latent noised the way ComfyUI does
(comfy/samplers.py max_denoise: full-variance noise only when the grid starts at the last timestep).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..diffusion.sampler import cfg_ddim
from ..diffusion.schedule import NoiseSchedule
from ..errors import ConfigError
from ..models.backend import Conditioning, SizeConditioning
from ..pixels import pixels_to_uint8
from .run import Rendered
from .spec import EvalRunSpec


def ddim_uniform_grid(steps: int, total: int) -> list[int]:
    """ComfyUI's ddim_uniform timesteps, descending (1, 1 + T//steps, ... below T)."""
    return list(range(1, total, max(total // steps, 1)))[::-1]


def start_latent(noise: torch.Tensor, schedule: NoiseSchedule, first: int) -> torch.Tensor:
    if first >= schedule.num_train_timesteps - 1:
        return noise
    _, s = schedule.coefficients(torch.tensor([first]), noise)
    return noise * s


def check_sampling(spec: EvalRunSpec) -> None:
    if spec.sampler != "ddim":
        raise ConfigError("sampler", f"headless evaluation samples with LOBA's DDIM only: set sampler = \"ddim\" (got {spec.sampler!r})")
    if spec.scheduler != "ddim_uniform":
        raise ConfigError("scheduler", f"headless evaluation walks ComfyUI's ddim_uniform grid: set scheduler = \"ddim_uniform\" "
                                       f"(got {spec.scheduler!r})")


class DiffusersRenderer:
    """render(prompt, weight, seed) -> Rendered (uint8 [H, W, 3] and the final latent); use inside `attached()`."""

    gives_latents = True

    def __init__(self, backend, network, spec: EvalRunSpec):
        check_sampling(spec)
        if getattr(backend, "vae", None) is None:
            raise ConfigError("model", "the model has no VAE: evaluation needs decoded images")
        self.backend, self.network, self.spec = backend, network, spec
        self.schedule = backend.noise_schedule()
        self.grid = ddim_uniform_grid(spec.steps, self.schedule.num_train_timesteps)
        side = backend.native_resolution
        self.height, self.width = spec.height or side, spec.width or side
        self.conds = backend.encode_prompts([spec.negative_prompt, *spec.prompts])

    @contextlib.contextmanager
    def attached(self) -> Iterator[DiffusersRenderer]:
        with self.network.attached(self.backend.denoiser(), self.backend.device):
            yield self

    @torch.no_grad()
    def __call__(self, prompt: str, weight: float, seed: int) -> Rendered:
        backend = self.backend
        shape = (1, backend.latent_channels, self.height // backend.vae_scale_factor, self.width // backend.vae_scale_factor)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
        pair = Conditioning.cat([self.conds[self.spec.negative_prompt], self.conds[prompt]])
        size = SizeConditioning.plain(self.height, self.width)

        def predict(x_pair: torch.Tensor, t: int) -> torch.Tensor:
            steps = torch.full((x_pair.shape[0],), t, dtype=torch.long, device=backend.device)
            return backend.predict(x_pair.to(backend.device, backend.dtype), steps, pair, size)

        self.network.multiplier = float(weight)
        x = start_latent(noise, self.schedule, self.grid[0]).to(backend.device)
        [latent] = cfg_ddim(predict, x, self.schedule, self.grid, self.spec.cfg)
        return Rendered(pixels_to_uint8(backend.decode(latent))[0], latent[0].float().cpu().numpy())
