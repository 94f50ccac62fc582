"""SliderTarget: a bidirectional slider entry, expanded into PromptPairs exactly as kohya sd-scripts does.

With poles P (positive), N (negative) and multiplier m, each (neutral, resolution) gives the pairs
(positive, unconditional, action, multiplier):
  both poles: (N, P, erase, +m), (P, N, enhance, +m), (P, N, erase, -m), (N, P, enhance, -m)
  only N:     (N, "", erase, +m), (N, "", enhance, -m)
  only P:     (P, "", enhance, +m), (P, "", erase, -m)
Every pair pulls eps_{+m}(target_class) toward eps(neutral) + g*(P - N), and eps_{-m} the other way;
with both poles the 4 pairs differ only in which pole is the CFG negative of the partial denoise.
The order (neutral, then resolution, then the table) matches sd-scripts so files train alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..objectives.timestep_curves import TIMESTEP_RANGE
from .checks import Resolution, as_text, require, set_field
from .region import AttentionRegion
from .spec import PromptPair, common_fields, normalize_common_fields

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SliderTarget:
    target_class: str
    positive: str = ""
    negative: str = ""
    neutrals: tuple[str, ...] = ("",)
    multiplier: float = 1.0
    weight: float = 1.0
    guidance_scale: float = 1.0
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
        entry = self.name or "slider target"
        self._check_prompts(entry)
        normalize_common_fields(self, entry)

    def _check_prompts(self, entry: str) -> None:
        # target_class may be "": sd-scripts documents `target_class = ""` sliders (e.g. a detail slider).
        as_text(self.target_class, entry, "target_class")
        as_text(self.name, entry, "name")
        positive = as_text(self.positive, entry, "positive")
        negative = as_text(self.negative, entry, "negative")
        require(positive.strip() or negative.strip(), entry, "positive",
                'a slider needs a positive and/or a negative pole, e.g. positive = "smiling person"')
        neutrals = (self.neutrals,) if isinstance(self.neutrals, str) else tuple(self.neutrals)
        require(len(neutrals) > 0, entry, "neutrals", 'is empty; give at least one neutral prompt, e.g. [""]')
        set_field(self, "neutrals", tuple(as_text(n, entry, f"neutrals[{i}]") for i, n in enumerate(neutrals)))

    def directions(self) -> list[tuple[str, str, str, float, str]]:
        """(positive, unconditional, action, multiplier, label) per pair of one (neutral, resolution)."""
        p, n, m = self.positive, self.negative, self.multiplier
        if p.strip() and n.strip():
            return [(n, p, "erase", m, "N/P"), (p, n, "enhance", m, "P/N"),
                    (p, n, "erase", -m, "P/N"), (n, p, "enhance", -m, "N/P")]
        if n.strip():
            return [(n, "", "erase", m, 'N/""'), (n, "", "enhance", -m, 'N/""')]
        return [(p, "", "enhance", m, 'P/""'), (p, "", "erase", -m, 'P/""')]

    def expand(self) -> list[PromptPair]:
        pairs = []
        for i, neutral in enumerate(self.neutrals):
            for resolution in self.resolutions:
                for positive, unconditional, action, multiplier, label in self.directions():
                    pairs.append(self._pair(neutral, resolution, positive, unconditional, action, multiplier,
                                            self._label(i, resolution, label, action, multiplier)))
        return pairs

    def _pair(self, neutral, resolution, positive, unconditional, action, multiplier, name) -> PromptPair:
        return PromptPair(target=self.target_class, positive=positive, unconditional=unconditional, neutral=neutral,
                          action=action, guidance_scale=self.guidance_scale, resolutions=(resolution,),
                          dynamic_resolution=self.dynamic_resolution, dynamic_crops=self.dynamic_crops,
                          batch_size=self.batch_size, multiplier=multiplier, weight=self.weight, mask=self.mask,
                          mask_outside=self.mask_outside, timestep_window=self.timestep_window,
                          timestep_curve=self.timestep_curve, region=self.region, name=name)

    def _label(self, neutral_index: int, resolution: Resolution, poles: str, action: str, multiplier: float) -> str:
        """e.g. "targets[0] P/N enhance +1"; neutral and size only when there are several."""
        parts = [self.name or "slider"]
        if len(self.neutrals) > 1:
            parts.append(f"neutral[{neutral_index}]")
        if len(self.resolutions) > 1:
            parts.append(f"{resolution[0]}x{resolution[1]}")
        parts += [poles, action, f"{multiplier:+g}"]
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {"target_class": self.target_class, "positive": self.positive, "negative": self.negative,
                "neutrals": list(self.neutrals), **common_fields(self)}
