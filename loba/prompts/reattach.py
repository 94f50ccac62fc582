"""ReattachEntry: U-LOBA's unit. Move what an under-specified caption produces onto a chosen distribution
(the redirect) while the explicit prompts of the concept keep theirs.

"a triangle" (red 80% of the time) -> redirect "a red triangle", "a blue triangle", "a green triangle",
"a yellow triangle" (equal weights: no color preferred). It expands into one ReattachPair per redirect prompt
(action "reattach": loba.objectives.actions explains the target) with loss weights proportional to the
redirect weights, and into explicit anchors: prompts whose output must not move (by default the redirect
prompts themselves, each the explicit form of one value), trained at the same x_t as the caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from ..config.prompt_bounds import entry_bound_violation
from ..errors import SpecError
from ..objectives.timestep_curves import TIMESTEP_RANGE
from .checks import Resolution, as_number, as_text, require, set_field
from .region import AttentionRegion
from .spec import AnchorPrompt, PromptPair, common_fields, normalize_common_fields

if TYPE_CHECKING:
    import torch

AUTO = "auto"  # explicit anchors = the redirect prompts


@dataclass(frozen=True)
class ReattachPair(PromptPair):
    """A PromptPair (target = caption, positive = one redirect prompt) with its interpolation schedule."""

    OWN_ACTIONS: ClassVar[frozenset[str]] = frozenset({"reattach"})

    schedule: str = "linear"
    ramp: float = 0.5


@dataclass(frozen=True)
class ReattachEntry:
    caption: str
    redirect: tuple[tuple[str, float], ...]  # (prompt, weight); weights are relative
    explicit: Union[str, tuple[str, ...]] = AUTO  # "auto" (the redirect prompts), or the prompts; () for none
    schedule: str = "linear"
    ramp: float = 0.5
    multiplier: float = 1.0
    weight: float = 1.0
    guidance_scale: float = 1.0  # unused by the objective; kept for the shared entry fields
    resolutions: tuple[Resolution, ...] = ((512, 512),)
    dynamic_resolution: bool = False
    dynamic_crops: bool = False
    batch_size: int = 1
    mask: Optional[torch.Tensor] = field(default=None, compare=False)
    mask_outside: str = "ignore"
    timestep_window: tuple[int, int] = TIMESTEP_RANGE
    timestep_curve: str = "flat"
    region: Optional[AttentionRegion] = None
    name: str = ""

    def __post_init__(self):
        entry = self.name or "reattach"
        caption = as_text(self.caption, entry, "caption")
        require(caption.strip(), entry, "caption",
                'is empty: give the under-specified caption to re-attach, e.g. caption = "a triangle"')
        set_field(self, "redirect", check_redirect(self.redirect, caption, entry))
        set_field(self, "explicit", check_explicit(self.explicit, entry))
        set_field(self, "schedule", check_schedule(self.schedule, entry))
        set_field(self, "ramp", check_ramp(self.ramp, entry))
        as_text(self.name, entry, "name")
        normalize_common_fields(self, entry)

    def explicit_prompts(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.redirect) if self.explicit == AUTO else self.explicit

    def expand(self) -> list[ReattachPair]:
        """One pair per redirect prompt with weight > 0; loss weights average to the entry's weight."""
        kept = [(p, w) for p, w in self.redirect if w > 0]
        total = sum(w for _, w in kept)
        return [ReattachPair(target=self.caption, positive=prompt, unconditional="", neutral=self.caption,
                             action="reattach", resolutions=self.resolutions, dynamic_resolution=self.dynamic_resolution,
                             dynamic_crops=self.dynamic_crops, batch_size=self.batch_size, multiplier=self.multiplier,
                             weight=self.weight * w * len(kept) / total, mask=self.mask, mask_outside=self.mask_outside,
                             timestep_window=self.timestep_window, timestep_curve=self.timestep_curve, region=self.region,
                             schedule=self.schedule, ramp=self.ramp, name=f"{self.name or 'reattach'} -> {prompt!r}")
                for prompt, w in kept]

    def anchors(self) -> list[AnchorPrompt]:
        return [AnchorPrompt(p, name=f"{self.name or 'reattach'} explicit[{i}]") for i, p in enumerate(self.explicit_prompts())]

    def to_dict(self) -> dict:
        data = {"caption": self.caption, "redirect": [{"prompt": p, "weight": w} for p, w in self.redirect],
                "explicit": self.explicit if self.explicit == AUTO else list(self.explicit),
                "schedule": self.schedule, "ramp": self.ramp, **common_fields(self)}
        data.pop("guidance_scale")
        return data


def check_redirect(value: Any, caption: str, entry: str) -> tuple[tuple[str, float], ...]:
    """[(prompt, weight)] from prompts, (prompt, weight) pairs or {prompt, weight} tables."""
    hint = 'e.g. redirect = ["a blue triangle", "a green triangle"] or [{prompt = "a blue triangle", weight = 2}]'
    items = [value] if isinstance(value, str) else value
    require(isinstance(items, (list, tuple)) and len(items) > 0, entry, "redirect",
            f"is empty: give the prompts that describe the wanted distribution, {hint}")
    redirect = [_redirect_item(item, entry, f"redirect[{i}]", hint) for i, item in enumerate(items)]
    for i, (prompt, _) in enumerate(redirect):
        require(prompt.strip(), entry, f"redirect[{i}]", f"is an empty prompt; {hint}")
        require(prompt.strip() != caption.strip(), entry, f"redirect[{i}]",
                f"{prompt!r} is the caption itself, so it would re-attach the caption to what it already draws; "
                "give the explicit prompts of the values you want, e.g. \"a blue triangle\"")
    require(sum(w for _, w in redirect) > 0, entry, "redirect", "every redirect weight is 0; give at least one a weight > 0")
    return tuple(redirect)


def _redirect_item(item: Any, entry: str, field: str, hint: str) -> tuple[str, float]:
    if isinstance(item, str):
        prompt, weight = item, 1.0
    elif isinstance(item, dict):
        unknown = sorted(set(item) - {"prompt", "weight"})
        require(not unknown, entry, field, f"unknown key {unknown[0] if unknown else ''!r}; known keys: prompt, weight")
        require("prompt" in item, entry, field, f"has no prompt; {hint}")
        prompt, weight = item["prompt"], item.get("weight", 1.0)
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        prompt, weight = item
    else:
        raise SpecError(entry, field, f"must be a prompt or a {{prompt, weight}} table; {hint}")
    prompt = as_text(prompt, entry, f"{field}.prompt")
    weight = as_number(weight, entry, f"{field}.weight")
    require(weight >= 0, entry, f"{field}.weight",
            f"must be >= 0 (a share of the redirect distribution), got {weight}; leave a value out to exclude it")
    return prompt, weight


def check_explicit(value: Any, entry: str) -> Union[str, tuple[str, ...]]:
    if value == AUTO:
        return AUTO
    items = [value] if isinstance(value, str) else value
    require(isinstance(items, (list, tuple)), entry, "explicit",
            f'must be "{AUTO}" (the redirect prompts) or a list of prompts that must keep their output; got {value!r}')
    prompts = tuple(as_text(p, entry, f"explicit[{i}]") for i, p in enumerate(items))
    for i, prompt in enumerate(prompts):
        require(prompt.strip(), entry, f"explicit[{i}]", 'is an empty prompt; give e.g. "a red triangle"')
    return prompts


def check_schedule(value: Any, entry: str) -> str:
    from ..objectives.redirect_schedules import REDIRECT_SCHEDULES

    name = as_text(value, entry, "schedule")
    require(name in REDIRECT_SCHEDULES, entry, "schedule",
            f"unknown schedule {name!r}; use one of: {', '.join(REDIRECT_SCHEDULES.names())}")
    return name.lower()


def check_ramp(value: Any, entry: str) -> float:
    ramp = as_number(value, entry, "ramp")
    message = entry_bound_violation("ramp", ramp)
    require(message is None, entry, "ramp", f"{ramp!r}: {message}")
    return ramp
