"""StyleShiftEntry: ST-LOBA's unit. Migrate a render style across everything the model draws.

Each content prompt ("a red circle") becomes a re-attach pair whose redirect is its styled form ("a red outlined
circle"): on the styled prompt's own x_t the student's content prompt learns what the styled prompt draws, so at
w = 1 the content prompts draw the new style and nothing else of theirs moves (every attribute the content prompt
names is also in the styled one). Over-layered regions (loba.prompts.layers) say how much of the shift each part
of the image takes; outside the stack the frozen model is held (mask_outside = "hold", the default here).
Explicit requests of the old style ("a red filled circle") are anchors: they keep their output.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Union

from ..objectives.timestep_curves import TIMESTEP_RANGE
from .checks import Resolution, as_text, require, set_field
from .layers import RegionLayer
from .reattach import AUTO, ReattachPair, check_explicit, check_ramp, check_schedule
from .spec import AnchorPrompt, common_fields, normalize_common_fields

DEFAULT_TEMPLATE = "{content}, {style}"  # tag-style prompts (SDXL anime models): the style words appended
MAX_CONTENT = 256


@dataclass(frozen=True)
class StyleShiftPair(ReattachPair):
    """A re-attach pair (target = content prompt, positive = its styled form) built by a style shift."""


@dataclass(frozen=True)
class StyleShiftEntry:
    style: str
    content: tuple[tuple[str, str], ...]  # (content prompt, its styled form); a bare prompt is styled by `template`
    replaces: str = ""  # the old style's words: explicit = auto holds the content prompts that ask for it
    template: str = DEFAULT_TEMPLATE
    explicit: Union[str, tuple[str, ...]] = AUTO  # "auto", the prompts, or () for none
    layers: tuple[RegionLayer, ...] = ()
    schedule: str = "linear"
    ramp: float = 0.5
    multiplier: float = 1.0
    weight: float = 1.0
    guidance_scale: float = 1.0  # unused by the objective; kept for the shared entry fields
    resolutions: tuple[Resolution, ...] = ((512, 512),)
    dynamic_resolution: bool = False
    dynamic_crops: bool = False
    batch_size: int = 1
    mask: None = None  # a style shift takes its regions from `layers`
    mask_outside: str = "hold"  # with layers; without them the whole image shifts
    timestep_window: tuple[int, int] = TIMESTEP_RANGE
    timestep_curve: str = "flat"
    region: None = None
    name: str = ""

    def __post_init__(self):
        entry = self.name or "style_shift"
        style = as_text(self.style, entry, "style").strip()
        require(style, entry, "style", 'is empty: give the style words to migrate to, e.g. style = "outlined"')
        set_field(self, "style", style)
        set_field(self, "replaces", as_text(self.replaces, entry, "replaces").strip())
        template = as_text(self.template, entry, "template")
        require("{content}" in template and "{style}" in template, entry, "template",
                f'must contain {{content}} and {{style}}, e.g. "{DEFAULT_TEMPLATE}"; got {template!r}')
        set_field(self, "template", template)
        set_field(self, "content", check_content(self.content, style, template, entry))
        set_field(self, "explicit", check_explicit(self.explicit, entry))
        set_field(self, "schedule", check_schedule(self.schedule, entry))
        set_field(self, "ramp", check_ramp(self.ramp, entry))
        require(self.mask is None and self.region is None, entry, "layers",
                "a style shift takes its regions as layers = [{ region = ..., weight = ... }, ...], not mask / region")
        # Named for messages; normalize_common_fields checks the stack.
        set_field(self, "layers", tuple(replace(layer, name=f"{entry} layers[{i}]") for i, layer in enumerate(self.layers)))
        for prompt, _ in self.content:
            for layer in self.layers:
                layer.for_prompt(prompt, entry)
        if not self.layers and self.mask_outside == "hold":
            set_field(self, "mask_outside", "ignore")  # no layers: the whole image shifts, nothing is outside
        normalize_common_fields(self, entry)

    def explicit_prompts(self) -> tuple[str, ...]:
        """auto: each content prompt asking for the old style (`replaces`), or none when the old style is not named."""
        if self.explicit != AUTO:
            return self.explicit
        if not self.replaces:
            return ()
        return tuple(fill(self.template, prompt, self.replaces) for prompt, _ in self.content)

    def expand(self) -> list[StyleShiftPair]:
        """One re-attach pair per content prompt; loss weights average to the entry's weight."""
        label = self.name or "style_shift"
        return [StyleShiftPair(target=prompt, positive=styled, unconditional="", neutral=prompt, action="reattach",
                               resolutions=self.resolutions, dynamic_resolution=self.dynamic_resolution,
                               dynamic_crops=self.dynamic_crops, batch_size=self.batch_size, multiplier=self.multiplier,
                               weight=self.weight, mask_outside=self.mask_outside if self.layers else "ignore",
                               timestep_window=self.timestep_window, timestep_curve=self.timestep_curve,
                               layers=tuple(layer.for_prompt(prompt, label) for layer in self.layers),
                               schedule=self.schedule, ramp=self.ramp, name=f"{label} {prompt!r} -> {styled!r}")
                for prompt, styled in self.content]

    def anchors(self) -> list[AnchorPrompt]:
        label = self.name or "style_shift"
        return [AnchorPrompt(p, name=f"{label} explicit[{i}]") for i, p in enumerate(self.explicit_prompts())]

    def to_dict(self) -> dict:
        data = {"style": self.style, "content": [{"prompt": p, "styled": s} for p, s in self.content],
                "replaces": self.replaces, "template": self.template,
                "explicit": self.explicit if self.explicit == AUTO else list(self.explicit),
                "layers": [layer.to_dict() for layer in self.layers], "schedule": self.schedule, "ramp": self.ramp,
                **common_fields(self)}
        data.pop("guidance_scale")
        data.setdefault("mask_outside", self.mask_outside)
        return data


def fill(template: str, content: str, style: str) -> str:
    """The template with its two fields filled (plain replacement: other braces in a prompt template stay as typed)."""
    return template.replace("{content}", content).replace("{style}", style)


def check_content(value: Any, style: str, template: str, entry: str) -> tuple[tuple[str, str], ...]:
    """[(prompt, styled)] from prompts (styled by the template) or {prompt, styled} tables."""
    hint = ('e.g. content = ["a circle", "a red square"] or [{ prompt = "a red circle", styled = "a red outlined '
            'circle" }]')
    items = [value] if isinstance(value, str) else value
    require(isinstance(items, (list, tuple)) and len(items) > 0, entry, "content",
            f"is empty: a style shift needs the content prompts whose style moves, {hint}")
    require(len(items) <= MAX_CONTENT, entry, "content", f"has {len(items)} prompts; at most {MAX_CONTENT}")
    content = []
    for i, item in enumerate(items):
        field = f"content[{i}]"
        if isinstance(item, (list, tuple)) and len(item) == 2:
            prompt, styled = item
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"prompt", "styled"})
            require(not unknown, entry, field, f"unknown key {unknown[0] if unknown else ''!r}; known keys: prompt, styled")
            require("prompt" in item, entry, field, f"has no prompt; {hint}")
            prompt, styled = item["prompt"], item.get("styled")
        else:
            prompt, styled = item, None
        prompt = as_text(prompt, entry, f"{field}.prompt").strip()
        require(prompt, entry, f"{field}.prompt", f"is empty; {hint}")
        styled = fill(template, prompt, style) if styled is None else as_text(styled, entry, f"{field}.styled").strip()
        require(styled != prompt, entry, f"{field}.styled",
                f"{styled!r} is the content prompt itself, so nothing would shift; name the style in it")
        content.append((prompt, styled))
    prompts = [p for p, _ in content]
    duplicate = next((p for i, p in enumerate(prompts) if p in prompts[:i]), None)
    require(duplicate is None, entry, "content", f"{duplicate!r} is listed twice; give each content prompt once")
    return tuple(content)
