"""PromptPair and AnchorPrompt: the units of training the trainer consumes.

A PromptPair carries the sd-scripts/LECO prompt settings: the student sees `target` at the pair's
`multiplier` and is pulled toward eps(neutral) -/+ guidance_scale * (eps(positive) - eps(unconditional))
for action erase/enhance. Defaults follow sd-scripts: positive = target, neutral = unconditional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from ..config.prompt_bounds import entry_bound_violation
from ..objectives.actions import OBJECTIVES, pair_actions
from ..objectives.timestep_curves import TIMESTEP_CURVES, TIMESTEP_RANGE
from .checks import (
    Resolution,
    as_count,
    as_flag,
    as_number,
    as_text,
    check_mask,
    mask_summary,
    normalize_resolutions,
    require,
    set_field,
)
from .layers import RegionLayer, check_layers
from .region import AttentionRegion, region_from

if TYPE_CHECKING:
    import torch

def distinct(items) -> list:
    """Items without repeats, first occurrence order kept (prompts are encoded once each)."""
    return list(dict.fromkeys(items))


def random_bucket_resolution(size: int, generator: Optional[torch.Generator] = None) -> Resolution:
    """sd-scripts' dynamic_resolution bucket: height and width drawn independently as multiples of
    64 between size//2 and size. Below 128 the step is 8 so that tiny test resolutions still vary."""
    import torch

    step = 64 if size >= 128 else 8
    low, high = max((size // 2) // step, 1), max(size // step, 1)
    device = generator.device if generator is not None else None
    height = int(torch.randint(low, high + 1, (1,), generator=generator, device=device)) * step
    width = int(torch.randint(low, high + 1, (1,), generator=generator, device=device)) * step
    return height, width


@dataclass(frozen=True)
class PromptPair:
    OWN_ACTIONS: ClassVar[frozenset[str]] = frozenset()  # entry-built objectives a subclass carries the fields of

    target: str
    positive: Optional[str] = None  # None -> target
    unconditional: str = ""  # also the CFG negative of the partial denoise
    neutral: Optional[str] = None  # None -> unconditional
    action: str = "erase"
    guidance_scale: float = 1.0
    resolutions: tuple[Resolution, ...] = ((512, 512),)  # (height, width)
    dynamic_resolution: bool = False
    dynamic_crops: bool = False
    batch_size: int = 1
    multiplier: float = 1.0
    weight: float = 1.0
    mask: Optional[torch.Tensor] = field(default=None, compare=False)  # [H, W] in 0..1, white = train
    mask_outside: str = "ignore"  # MASK_OUTSIDE: what the loss asks outside the mask
    timestep_window: tuple[int, int] = TIMESTEP_RANGE  # [start, end): the timesteps this pair trains at
    timestep_curve: str = "flat"  # TIMESTEP_CURVES: how often each timestep of the window trains
    region: Optional[AttentionRegion] = None  # the region from the frozen model's attention to a word (instead of a mask)
    name: str = ""  # label for error messages, e.g. "prompts[2]"
    layers: tuple[RegionLayer, ...] = ()  # over-layered regions with weights (instead of a mask or region)

    def __post_init__(self):
        entry = self.name or "prompt pair"
        self._normalize_prompts(entry)
        require(self.action in OBJECTIVES, entry, "action",
                f"unknown action {self.action!r}; use one of: {', '.join(pair_actions())}")
        own = OBJECTIVES.get(self.action).entry
        require(own is None or self.action in self.OWN_ACTIONS, entry, "action",
                f"{self.action!r} is built by {own}, which gives it its prompts and schedule; a plain pair can use: "
                f"{', '.join(pair_actions())}")
        normalize_common_fields(self, entry)
        set_field(self, "name", as_text(self.name, entry, "name"))

    def _normalize_prompts(self, entry: str) -> None:
        target = as_text(self.target, entry, "target")
        positive = target if self.positive is None else as_text(self.positive, entry, "positive")
        # An empty target with the default positive gives a zero offset: the pair would train nothing.
        # An empty target with its own positive is a real pair (sd-scripts' `target_class = ""` sliders).
        require(target.strip() or positive.strip(), entry, "target",
                'is empty: name the concept to erase or enhance, e.g. target = "van gogh"')
        unconditional = as_text(self.unconditional, entry, "unconditional")
        neutral = unconditional if self.neutral is None else as_text(self.neutral, entry, "neutral")
        set_field(self, "positive", positive)
        set_field(self, "neutral", neutral)

    def prompts(self) -> tuple[str, ...]:
        """The distinct prompts this pair needs encoded, in a stable order."""
        return tuple(distinct((self.target, self.positive, self.unconditional, self.neutral)))

    def sample_resolution(self, generator: Optional[torch.Generator] = None) -> Resolution:
        """(height, width) for one step: uniform over `resolutions`, then sd-scripts' bucket when dynamic
        (square sizes only; a masked pair's bucket stays square like its mask)."""
        require(self.resolutions, self.name or "prompt pair", "resolutions",
                "is not set; give a resolution or a default for the whole run")
        height, width = self.resolutions[0]
        if len(self.resolutions) > 1:
            import torch

            device = generator.device if generator is not None else None
            height, width = self.resolutions[int(torch.randint(len(self.resolutions), (1,), generator=generator, device=device))]
        if self.dynamic_resolution and height == width:
            drawn = random_bucket_resolution(height, generator)
            # A mask keeps its (square) aspect ratio: one drawn side for both, never a stretched mask.
            return (drawn[0], drawn[0]) if self.mask is not None else drawn
        return height, width

    def to_dict(self) -> dict:
        """JSON-safe and readable back by prompt_set_from_dict (masks only summarized)."""
        return {"target": self.target, "positive": self.positive, "unconditional": self.unconditional,
                "neutral": self.neutral, "action": self.action, **common_fields(self)}


@dataclass(frozen=True)
class AnchorPrompt:
    """A preservation prompt: the student's output for it must not move."""

    prompt: str
    weight: float = 1.0
    name: str = ""

    def __post_init__(self):
        entry = self.name or "anchor"
        as_text(self.prompt, entry, "prompt")
        set_field(self, "weight", check_weight(self.weight, entry))
        as_text(self.name, entry, "name")

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "weight": self.weight}


def bounded(name: str, value: Any, entry: str, field: str = "") -> Any:
    """`value` when it lies within the bounds of prompt field `name` (loba.config.prompt_bounds), else SpecError."""
    message = entry_bound_violation(name, value)
    require(message is None, entry, field or name, f"{value!r}: {message}")
    return value


def check_multiplier(value: Any, entry: str) -> float:
    multiplier = bounded("multiplier", as_number(value, entry, "multiplier"), entry)
    require(multiplier != 0, entry, "multiplier", "must not be 0: at 0 the adapter is off and nothing trains; use e.g. 1.0")
    return multiplier


def check_weight(value: Any, entry: str) -> float:
    weight = as_number(value, entry, "weight")
    # A negative loss weight makes the loss unbounded below: training would diverge, not erase.
    require(weight >= 0, entry, "weight", f"must be >= 0 (a loss weight), got {weight}")
    return bounded("weight", weight, entry)


def check_resolutions(value: Any, entry: str) -> tuple[Resolution, ...]:
    resolutions = normalize_resolutions(value, entry, "resolutions")
    for height, width in resolutions:
        bounded("resolution", max(height, width), entry, "resolutions")
    return resolutions


def normalize_common_fields(entry: Any, label: str) -> None:
    """Check and normalize the settings PromptPair and SliderTarget share (in place on a frozen dataclass)."""
    set_field(entry, "guidance_scale", bounded("guidance_scale", as_number(entry.guidance_scale, label, "guidance_scale"), label))
    set_field(entry, "resolutions", check_resolutions(entry.resolutions, label))
    set_field(entry, "dynamic_resolution", as_flag(entry.dynamic_resolution, label, "dynamic_resolution"))
    set_field(entry, "dynamic_crops", as_flag(entry.dynamic_crops, label, "dynamic_crops"))
    set_field(entry, "batch_size", bounded("batch_size", as_count(entry.batch_size, label, "batch_size"), label))
    set_field(entry, "multiplier", check_multiplier(entry.multiplier, label))
    set_field(entry, "weight", check_weight(entry.weight, label))
    set_field(entry, "mask", check_mask(entry.mask, label))
    set_field(entry, "region", region_from(entry.region, label))
    require(entry.mask is None or entry.region is None, label, "region",
            "an entry takes its region from a mask or from attention, not both; drop the mask or the region")
    if entry.region is not None:
        entry.region.check_prompt(region_prompt(entry), label)
    layers = check_layers(getattr(entry, "layers", ()), label)
    if hasattr(entry, "layers"):
        set_field(entry, "layers", layers)
    require(not layers or (entry.mask is None and entry.region is None), label, "layers",
            "an entry takes its region from layers or from one mask / region, not both; put the mask or region in a layer")
    set_field(entry, "mask_outside", check_mask_outside(entry.mask_outside, entry.mask, label, entry.region or layers or None))
    set_field(entry, "timestep_window", check_timestep_window(entry.timestep_window, label))
    require(entry.timestep_curve in TIMESTEP_CURVES, label, "timestep_curve",
            f"{entry.timestep_curve!r} is not one of: {', '.join(TIMESTEP_CURVES)}")
    set_field(entry, "timestep_curve", str(entry.timestep_curve).lower())


def check_timestep_window(value: Any, entry: str) -> tuple[int, int]:
    low, high = TIMESTEP_RANGE
    hint = f"e.g. timestep_window = [0, 400] (texture, detail) or [600, {high}] (layout)"
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in value)
    require(ok, entry, "timestep_window", f"must be two whole numbers [start, end) in [{low}, {high}), {hint}; got {value!r}")
    start, end = int(value[0]), int(value[1])
    require(low <= start < end <= high, entry, "timestep_window",
            f"[{start}, {end}) must lie in [{low}, {high}) with start < end, {hint}")
    return start, end


# What a masked loss asks of the student outside the mask: nothing (the pixels are left out of the loss, so
# the slider may change them freely), or the frozen model's own prediction for the same prompt there.
MASK_OUTSIDE = {"ignore": "outside the mask is left out of the loss (the slider may change it)",
                "hold": "outside the mask the student must keep the frozen model's prediction (the change stays inside)"}


def check_mask_outside(value: Any, mask: Any, entry: str, region: Any = None) -> str:
    require(value in MASK_OUTSIDE, entry, "mask_outside", f"{value!r} is not one of: {', '.join(MASK_OUTSIDE)}")
    require(value != "hold" or mask is not None or region is not None, entry, "mask_outside",
            '"hold" keeps the outside of a mask, but this entry has no mask or region; give a mask / mask_box / '
            'region or use "ignore"')
    return value


def region_prompt(entry: Any) -> str:
    """The prompt whose attention an entry's region reads: the student's prompt (target, target_class, caption)."""
    for name in ("target", "target_class", "caption"):
        if hasattr(entry, name):
            return getattr(entry, name)
    raise AttributeError(f"{type(entry).__name__} has no target prompt")


def common_fields(entry: Any) -> dict:
    """The settings PromptPair and SliderTarget share, as file keys."""
    data = {"guidance_scale": entry.guidance_scale, "resolutions": [list(r) for r in entry.resolutions],
            "dynamic_resolution": entry.dynamic_resolution, "dynamic_crops": entry.dynamic_crops,
            "batch_size": entry.batch_size, "multiplier": entry.multiplier, "weight": entry.weight}
    if entry.mask is not None:
        data["mask"] = mask_summary(entry.mask)
    if entry.mask_outside != "ignore":  # only when set, so files and fingerprints from before it stay the same
        data["mask_outside"] = entry.mask_outside
    if tuple(entry.timestep_window) != TIMESTEP_RANGE:  # the same: only when set
        data["timestep_window"] = list(entry.timestep_window)
    if entry.timestep_curve != "flat":
        data["timestep_curve"] = entry.timestep_curve
    if entry.region is not None:
        data["region"] = entry.region.to_dict()
    if getattr(entry, "layers", ()):
        data["layers"] = [layer.to_dict() for layer in entry.layers]
    return data
