"""One LECO-style training step: partial denoise -> batched teachers -> student -> loss.

Costs per step: k CFG forwards without grad (the denoise), ONE batched forward without grad for
every prompt the pair and the preservation anchors need (no unconditional halves), and ONE batched
student forward with grad for the target prompt and the anchors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Optional

import torch

from ..adapters.text_encoder import has_text_encoder
from ..config.train_config import TrainConfig
from ..diffusion.noise import initial_noise
from ..diffusion.sampler import cfg_ddim
from ..models.backend import Conditioning, ModelBackend, SizeConditioning
from ..objectives.actions import OBJECTIVES, TargetContext
from ..objectives.losses import compute_loss
from ..prompts import PromptPair, PromptSet
from ..prompts.masks import mask_to_latent
from .microbatch import in_micro_batches
from .phases import PhaseClock
from .step_regions import StepRegions
from .timestep_draws import allowed_indices, draw_index, pair_draws
from .trajectories import MIB, TrajectoryCache


@dataclass
class StepPlan:
    """The random draws of one step, all from the trainer's own generator (so resume is exact)."""

    pair_index: int
    pair: PromptPair
    height: int
    width: int
    k: int
    timestep: int
    noise: torch.Tensor
    size: Optional[SizeConditioning]
    region_mask: Optional[torch.Tensor] = None  # [B, 1, h, w] from the teacher's attention (attention regions)


@dataclass
class StepResult:
    """The step's loss (with grad) and its parts. The parts stay device tensors: reading a value on the host
    waits for the device, so the trainer reads them together with its own checks in one read, after backward."""

    loss: torch.Tensor
    main: torch.Tensor
    preservation: torch.Tensor
    timestep: int
    pair_index: int
    _values: Optional[list[float]] = field(default=None, repr=False)

    def read(self, *more: torch.Tensor) -> list[float]:
        """[main, preservation, *more] as floats, in ONE host read."""
        values = torch.stack([self.main, self.preservation, *(t.detach().float().reshape(()) for t in more)]).tolist()
        self._values = values[:2]
        return values

    @property
    def main_loss(self) -> float:
        return (self._values or self.read())[0]

    @property
    def preservation_loss(self) -> float:
        return (self._values or self.read())[1]


class SliderStep:
    def __init__(self, backend: ModelBackend, network, prompts: PromptSet, config: TrainConfig,
                 embeddings: dict[str, Conditioning]):
        self.backend = backend
        self.network = network
        self.config = config
        self.embeddings = embeddings  # the frozen text encoder's: the teachers' (and the student's, unless it trains it)
        # With text-encoder adapters the student's prompts are re-encoded through them, with grad, every step.
        self.trains_text = has_text_encoder(getattr(network, "names", ()))
        self.pairs = prompts.pairs()
        self.anchors = prompts.training_anchors()
        self.schedule = backend.noise_schedule()
        sampling = config.sampling
        self.grid = self.schedule.ddim_grid(sampling.max_denoising_steps, sampling.timestep_spacing)
        self.allowed_k = allowed_indices(self.grid, sampling)
        self.pair_k = [pair_draws(pair, self.grid, self.allowed_k) for pair in self.pairs]
        # Polled inside the denoise; the trainer points it at the host's stop request.
        self.should_stop: Callable[[], bool] = lambda: False
        # finished steps / max_train_steps, set by the trainer before each step (objectives that move over training).
        self.progress = 0.0
        self.regions = StepRegions(backend, self.pairs)
        self.cache = TrajectoryCache(sampling.trajectory_cache, sampling.trajectory_refresh_every, config.seed, backend.dtype,
                                     sampling.trajectory_cache_mb * MIB, backend.device) if sampling.trajectory_cache else None

    # -- drawing -----------------------------------------------------------------------------
    def plan(self, generator: torch.Generator) -> StepPlan:
        index = int(torch.randint(len(self.pairs), (1,), generator=generator))
        pair = self.pairs[index]
        height, width = pair.sample_resolution(generator)
        k = draw_index(self.pair_k[index], generator)
        scale = self.backend.vae_scale_factor
        shape = (pair.batch_size, self.backend.latent_channels, height // scale, width // scale)
        # Latents stay float32 through the denoise; only the model input is cast to the model dtype.
        noise = initial_noise(shape, generator, self.config.noise, self.backend.device, torch.float32)
        size = self._size_conditioning(pair, height, width, generator)
        return StepPlan(index, pair, height, width, k, int(self.grid[k]), noise, size)

    def _size_conditioning(self, pair: PromptPair, height: int, width: int, generator) -> Optional[SizeConditioning]:
        if self.backend.family != "sdxl":
            return None
        if not pair.dynamic_crops:
            return SizeConditioning.plain(height, width)
        # sd-scripts' rule: pretend the image was 1-3x larger and cropped at a random corner.
        scale = float(torch.rand(1, generator=generator)) * 2 + 1
        original = (int(height * scale), int(width * scale))
        top = int(torch.randint(max(original[0] - height, 1), (1,), generator=generator))
        left = int(torch.randint(max(original[1] - width, 1), (1,), generator=generator))
        return SizeConditioning(original, (top, left), (height, width))

    # -- model calls ---------------------------------------------------------------------------
    def _autocast(self):
        mode = self.config.mixed_precision
        if mode == "no":
            return contextlib.nullcontext()
        dtype = torch.float16 if mode == "fp16" else torch.bfloat16
        return torch.autocast(self.backend.device.type, dtype=dtype)

    def _batched(self, prompts: list[str], x: torch.Tensor, embeddings=None) -> tuple[torch.Tensor, Conditioning]:
        embeddings = self.embeddings if embeddings is None else embeddings
        cond = Conditioning.cat([embeddings[p].repeat(x.shape[0]) for p in prompts])
        return x.repeat(len(prompts), 1, 1, 1), cond

    def _predict(self, x: torch.Tensor, timestep: int, cond: Conditioning, size) -> torch.Tensor:
        t = torch.full((x.shape[0],), timestep, dtype=torch.long, device=x.device)
        with self._autocast():
            return self.backend.predict(x.to(self.backend.dtype), t, cond, size).float()

    def denoise(self, plan: StepPlan) -> torch.Tensor:
        """x at grid[k]: from the trajectory cache when it is on, else k fresh DDIM steps from noise."""
        if plan.k == 0 or self.config.sampling.single_step:
            return plan.noise  # x at grid[0] = T - 1 (nothing to denoise), or iLECO's single step: noise read as x_t
        if self.cache is None:
            return self._denoise(plan, plan.k, keep_all=False)[-1]
        key = (plan.pair_index, plan.height, plan.width)
        nbytes = self.allowed_k[-1] * plan.noise.numel() * self.cache.dtype.itemsize
        return self.cache.x_t(key, plan.k, lambda n: self._trajectories(plan, n), nbytes)

    def _trajectories(self, plan: StepPlan, n: int) -> list[torch.Tensor]:
        """n trajectories in one batched denoise: the plan's noise, then n - 1 draws of the cache's generator.
        They run to the deepest k this run can draw, so every later draw of k finds its x_t."""
        extra = [initial_noise(tuple(plan.noise.shape), self.cache.generator, self.config.noise, self.backend.device,
                               torch.float32) for _ in range(n - 1)]
        batched = replace(plan, noise=torch.cat([plan.noise, *extra]))
        return list(torch.stack(self._denoise(batched, self.allowed_k[-1], keep_all=True)).chunk(n, dim=1))

    @torch.no_grad()
    def _denoise(self, plan: StepPlan, steps: int, keep_all: bool) -> list[torch.Tensor]:
        """x at grid[1..steps] (keep_all) or only the last one: CFG-DDIM steps from noise; no gradient
        ever flows through here."""
        sampling = self.config.sampling
        self.network.multiplier = plan.pair.multiplier if sampling.denoise_with_adapter else 0.0
        n = plan.noise.shape[0]
        prompts = (plan.pair.unconditional, OBJECTIVES.get(plan.pair.action).denoise_prompt(plan.pair))
        embeddings = self.embeddings
        if self.trains_text and sampling.denoise_with_adapter:  # the slider's text encoder too, as a host applies it
            embeddings = self.backend.encode_prompts_trainable(list(prompts))
        cond = Conditioning.cat([embeddings[p].repeat(n) for p in prompts])

        def predict(x_pair: torch.Tensor, t: int) -> torch.Tensor:
            return in_micro_batches(lambda x, c: self._predict(x, t, c, plan.size), x_pair, cond, sampling.teacher_batch_size)

        return cfg_ddim(predict, plan.noise, self.schedule, self.grid, sampling.leco_denoise_guidance_scale, steps=steps,
                        keep_all=keep_all, should_stop=self.should_stop)

    def preserving(self, plan: StepPlan) -> bool:
        """True where the slider must leave the target prompt as the frozen model predicts it."""
        return plan.timestep >= self.config.sampling.preserve_from_timestep

    @torch.no_grad()
    def teachers(self, plan: StepPlan, x_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """The frozen model (adapter off) for every prompt the pair and the anchors need, in one batch; attention
        regions are read from the target prompt's rows of that same forward."""
        needed = (plan.pair.target,) if self.preserving(plan) else OBJECTIVES.get(plan.pair.action).teacher_prompts(plan.pair)
        if self.holds_outside(plan) or plan.pair.region is not None or plan.pair.layers:
            needed = (*needed, plan.pair.target)
        prompts = list(dict.fromkeys(needed + tuple(a.prompt for a in self.anchors)))
        self.network.multiplier = 0.0
        x_in, cond = self._batched(prompts, x_t)
        captures = {} if self.preserving(plan) else self.regions.captures(plan.pair, prompts, x_t.shape[0])
        with contextlib.ExitStack() as hooks:
            for capture in captures.values():
                hooks.enter_context(capture.hooked())
            out = in_micro_batches(lambda x, c: self._predict(x, plan.timestep, c, plan.size), x_in, cond,
                                   self.config.sampling.teacher_batch_size).chunk(len(prompts))
        if not self.preserving(plan):
            plan.region_mask = self.regions.region_map(plan.pair, plan.pair_index, captures, tuple(x_t.shape[-2:]))
        return dict(zip(prompts, out))

    def student(self, plan: StepPlan, x_t: torch.Tensor) -> list[torch.Tensor]:
        """The model with the adapter at the pair's multiplier, for the target and every anchor."""
        prompts = [plan.pair.target] + [a.prompt for a in self.anchors]
        self.network.multiplier = plan.pair.multiplier
        embeddings = self.backend.encode_prompts_trainable(prompts) if self.trains_text else None
        x_in, cond = self._batched(prompts, x_t, embeddings)
        return list(self._predict(x_in, plan.timestep, cond, plan.size).chunk(len(prompts)))

    # -- loss ----------------------------------------------------------------------------------
    def latent_mask(self, plan: StepPlan, latent_hw: tuple[int, int]) -> Optional[torch.Tensor]:
        if plan.pair.mask is None:
            return None
        return self.regions.latent_mask((plan.pair_index, *latent_hw), lambda: mask_to_latent(plan.pair.mask, latent_hw))

    def holds_outside(self, plan: StepPlan) -> bool:
        has_region = plan.pair.mask is not None or plan.pair.region is not None or bool(plan.pair.layers)
        return has_region and plan.pair.mask_outside == "hold"

    def target(self, plan: StepPlan, teacher: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.preserving(plan):
            return teacher[plan.pair.target]
        context = TargetContext(progress=self.progress, timestep=plan.timestep)
        return OBJECTIVES.get(plan.pair.action).combine(plan.pair, teacher, context)

    def run(self, plan: StepPlan, clock: Optional[PhaseClock] = None, rows: Optional[slice] = None) -> StepResult:
        """With `rows` (data-parallel: this process's share of the plan's batch) only those rows are trained; the
        trajectory cache still denoises the whole batch, so its own draws stay those of one process."""
        clock = clock or PhaseClock(self.backend.device)
        if rows is not None and self.cache is None:
            plan = replace(plan, noise=plan.noise[rows])
            rows = None
        with clock("denoise"):
            x_t = self.denoise(plan)
        if rows is not None:
            x_t = x_t[rows]
        with clock("teachers"):
            teacher = self.teachers(plan, x_t)
        target = self.target(plan, teacher)
        with clock("student_forward"):
            predictions = self.student(plan, x_t)
        timesteps = torch.full((x_t.shape[0],), plan.timestep, dtype=torch.long)
        loss_cfg = self.config.loss
        mask = plan.region_mask if plan.region_mask is not None else self.latent_mask(plan, tuple(x_t.shape[-2:]))
        if mask is not None and self.holds_outside(plan):
            # The whole image is in the loss: the objective inside, the frozen model's own prediction outside,
            # so the change cannot leak out of the region (an ignored outside is free to move).
            target = mask * target + (1 - mask) * teacher[plan.pair.target]
            mask = None
        main = compute_loss(predictions[0], target, cfg=loss_cfg, timesteps=timesteps, schedule=self.schedule,
                            mask=mask, weight=plan.pair.weight)
        preservation = torch.zeros((), device=main.device)
        for anchor, prediction in zip(self.anchors, predictions[1:]):
            preservation = preservation + compute_loss(prediction, teacher[anchor.prompt], cfg=loss_cfg,
                                                       timesteps=timesteps, schedule=self.schedule, weight=anchor.weight)
        if self.anchors:
            # Mean over anchors so that adding anchors does not change the loss scale.
            preservation = loss_cfg.preservation_weight * preservation / len(self.anchors)
        total = main + preservation
        return StepResult(total, main.detach().float(), preservation.detach().float().reshape(()), plan.timestep, plan.pair_index)
