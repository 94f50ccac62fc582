"""One prompt-file entry (a TOML/JSON table) -> PromptPairs or a SliderTarget.

`defaults` are the surrounding table's keys that sd-scripts lets every entry inherit; the entry's
own keys win. Files named by an entry (neutral lists, masks) are relative to the prompt file.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, Optional

from ..errors import SpecError
from ..models.buckets import buckets_for_mask
from .checks import Resolution, as_text, normalize_resolutions, require
from .files import PromptFolder, read_text_file
from .layers import layer_from
from .masks import box_mask, load_mask_image
from .reattach import ReattachEntry
from .slider import SliderTarget
from .spec import AnchorPrompt, PromptPair
from .style_shift import StyleShiftEntry

# sd-scripts' recognized keys (library/leco_train_util.py), kept verbatim for interop.
PROMPT_KEYS = frozenset({"target", "positive", "unconditional", "neutral", "action", "guidance_scale", "resolution",
                         "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight"})
SLIDER_KEYS = frozenset({"target_class", "positive", "negative", "neutral", "guidance_scale", "resolution", "resolutions",
                         "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight"})
NEUTRAL_FILE_KEYS = ("neutral_prompt_file", "prompt_file")
# sd-scripts reads neutrals lists/files for sliders only; LOBA also takes them (and masks) on plain entries.
EXTRA_KEYS = frozenset({"resolutions", "neutrals", *NEUTRAL_FILE_KEYS, "mask", "mask_box", "mask_outside",
                        "timestep_window", "timestep_curve", "region"})
PLAIN_ENTRY_KEYS = PROMPT_KEYS | EXTRA_KEYS
SLIDER_ENTRY_KEYS = SLIDER_KEYS | EXTRA_KEYS
ANCHOR_KEYS = frozenset({"prompt", "weight"})
REATTACH_KEYS = frozenset({"caption", "redirect", "explicit", "schedule", "ramp", "multiplier", "weight", "resolution",
                           "resolutions", "dynamic_resolution", "dynamic_crops", "batch_size", "mask", "mask_box",
                           "mask_outside", "timestep_window", "timestep_curve", "region"})
REATTACH_FIELDS = ("caption", "redirect", "explicit", "schedule", "ramp", "multiplier", "weight", "dynamic_resolution",
                   "dynamic_crops", "batch_size", "mask_outside", "timestep_window", "timestep_curve", "region")
# Keys that become dataclass fields as they are; resolution, neutral and mask keys are read apart.
PAIR_FIELDS = ("target", "positive", "unconditional", "action", "guidance_scale", "dynamic_resolution", "batch_size",
               "dynamic_crops", "multiplier", "weight", "mask_outside", "timestep_window", "timestep_curve", "region")
SLIDER_FIELDS = ("target_class", "positive", "negative", "guidance_scale", "dynamic_resolution", "batch_size",
                 "dynamic_crops", "multiplier", "weight", "mask_outside", "timestep_window", "timestep_curve", "region")


def check_keys(table: Mapping, known: AbstractSet[str], where: str, tolerated: AbstractSet[str] = frozenset(), note: str = "") -> None:
    """Unlike sd-scripts, a misspelled key is an error instead of a silently ignored setting.

    `known` keys are listed in the message; `tolerated` ones (training options) are allowed unlisted.
    """
    unknown = sorted(str(key) for key in table if key not in known and key not in tolerated)
    if unknown:
        hint = _mixed_kinds_hint(unknown[0], known)
        raise SpecError(where, unknown[0], f"unknown key{hint}; known keys: {', '.join(sorted(known))}{note}")


def _mixed_kinds_hint(key: str, known: AbstractSet[str]) -> str:
    if key == "target_class" and "target" in known:
        return " in a plain prompt entry (the first of [[targets]] has `target`, so all are plain pairs)"
    if key == "target" and "target_class" in known:
        return " in a slider entry (use target_class; the first of [[targets]] decides plain vs slider)"
    return ""


def require_table(value: Any, where: str, field: str) -> Mapping:
    require(isinstance(value, Mapping), where, field, f"must be a table of keys, got {type(value).__name__}")
    return value


def plain_pairs(item: Mapping, defaults: Mapping, name: str, folder: PromptFolder,
                shared_neutrals: Optional[list[str]]) -> list[PromptPair]:
    """A [[prompts]] entry; several neutrals give one pair each."""
    require_table(item, name, "entry")
    check_keys(item, PLAIN_ENTRY_KEYS, name)
    fields = _fields(item, defaults, PAIR_FIELDS)
    require("target" in fields, name, "target", 'is missing: name the concept to erase or enhance, e.g. target = "van gogh"')
    resolutions, mask = entry_sizes_and_mask(item, defaults, name, folder)
    neutrals = own_neutrals(item, name, folder) or shared_neutrals or [None]  # None -> unconditional
    return [PromptPair(**fields, neutral=neutral, resolutions=resolutions, mask=mask,
                       name=f"{name} neutral[{i}]" if len(neutrals) > 1 else name)
            for i, neutral in enumerate(neutrals)]


def slider_target(item: Mapping, defaults: Mapping, name: str, folder: PromptFolder,
                  shared_neutrals: Optional[list[str]]) -> SliderTarget:
    """A [[targets]] entry (or a [[prompts]] entry with target_class)."""
    require_table(item, name, "entry")
    check_keys(item, SLIDER_ENTRY_KEYS, name)
    fields = _fields(item, defaults, SLIDER_FIELDS)
    require("target_class" in fields, name, "target_class",
            'is missing: name the subject the slider acts on, e.g. target_class = "person"')
    resolutions, mask = entry_sizes_and_mask(item, defaults, name, folder)
    neutrals = own_neutrals(item, name, folder) or shared_neutrals or [""]
    return SliderTarget(**fields, neutrals=tuple(neutrals), resolutions=resolutions, mask=mask, name=name)


def reattach_entries(value: Any, folder: PromptFolder, where: str = "reattach") -> list[ReattachEntry]:
    """[[reattach]] tables: U-LOBA entries (caption, redirect, explicit anchors, schedule)."""
    require(isinstance(value, list) and value, where, "reattach",
            'must be a non-empty list of tables, e.g. [[reattach]] caption = "a triangle" redirect = ["a blue triangle"]')
    entries = []
    for i, item in enumerate(value):
        name = f"reattach[{i}]"
        check_keys(require_table(item, name, "entry"), REATTACH_KEYS, name)
        require("caption" in item, name, "caption", 'is missing: the under-specified caption, e.g. caption = "a triangle"')
        require("redirect" in item, name, "redirect",
                'is missing: the prompts of the wanted distribution, e.g. redirect = ["a blue triangle", "a green triangle"]')
        resolutions, mask = entry_sizes_and_mask(item, {}, name, folder)
        entries.append(ReattachEntry(**_fields(item, {}, REATTACH_FIELDS), resolutions=resolutions, mask=mask, name=name))
    return entries


STYLE_SHIFT_KEYS = frozenset({"style", "content", "replaces", "template", "explicit", "layers", "schedule", "ramp",
                              "multiplier", "weight", "resolution", "resolutions", "dynamic_resolution", "dynamic_crops",
                              "batch_size", "mask_outside", "timestep_window", "timestep_curve"})
STYLE_SHIFT_FIELDS = ("style", "content", "replaces", "template", "explicit", "schedule", "ramp", "multiplier", "weight",
                      "dynamic_resolution", "dynamic_crops", "batch_size", "mask_outside", "timestep_window",
                      "timestep_curve")


def style_shift_entries(value: Any, folder: PromptFolder, where: str = "style_shift") -> list[StyleShiftEntry]:
    """[[style_shift]] tables: ST-LOBA entries (style, content prompts, explicit anchors, over-layered regions)."""
    require(isinstance(value, list) and value, where, "style_shift",
            'must be a non-empty list of tables, e.g. [[style_shift]] style = "outlined" content = ["a circle"]')
    entries = []
    for i, item in enumerate(value):
        name = f"style_shift[{i}]"
        check_keys(require_table(item, name, "entry"), STYLE_SHIFT_KEYS, name)
        require("style" in item, name, "style", 'is missing: the style words to migrate to, e.g. style = "outlined"')
        require("content" in item, name, "content",
                'is missing: the prompts whose style moves, e.g. content = ["a circle", "a red square"]')
        layers = item.get("layers", [])
        require(isinstance(layers, list), name, "layers",
                'must be a list of tables, e.g. layers = [{ region = { word = "circle" }, weight = 1.0 }]')
        stack = tuple(layer_from(layer, name, j, lambda path, field: _mask_from_file(path, field, folder))
                      for j, layer in enumerate(layers))
        resolutions, _ = entry_sizes_and_mask(item, {}, name, folder)
        entries.append(StyleShiftEntry(**_fields(item, {}, STYLE_SHIFT_FIELDS), layers=stack, resolutions=resolutions,
                                       name=name))
    return entries


def anchor_prompts(value: Any, where: str) -> list[AnchorPrompt]:
    """[[anchors]] tables with prompt (and weight); a bare string is a prompt of weight 1."""
    require(isinstance(value, list), where, "anchors", 'must be a list, e.g. [[anchors]] prompt = "a photo of a dog"')
    anchors = []
    for i, item in enumerate(value):
        name = f"anchors[{i}]"
        if isinstance(item, str):
            anchors.append(AnchorPrompt(item, name=name))
            continue
        check_keys(require_table(item, name, "entry"), ANCHOR_KEYS, name)
        require("prompt" in item, name, "prompt", 'is missing: the prompt whose output must not change, e.g. "a photo of a dog"')
        anchors.append(AnchorPrompt(item["prompt"], item.get("weight", 1.0), name=name))
    return anchors


def _fields(item: Mapping, defaults: Mapping, names: tuple[str, ...]) -> dict[str, Any]:
    merged = {key: defaults[key] for key in names if key in defaults}
    merged.update({key: item[key] for key in names if key in item})
    return merged


def entry_resolutions(item: Mapping, defaults: Mapping, name: str) -> tuple[Resolution, ...]:
    """The entry's own resolution(s) win over inherited ones; `resolutions` wins over `resolution`."""
    key, value = _resolution_key(item, defaults)
    return ((512, 512),) if key is None else normalize_resolutions(value, name, key)


def _resolution_key(item: Mapping, defaults: Mapping) -> tuple[Optional[str], Any]:
    for table in (item, defaults):
        for key in ("resolutions", "resolution"):
            if key in table:
                return key, table[key]
    return None, None


def entry_sizes_and_mask(item: Mapping, defaults: Mapping, name: str, folder: PromptFolder) -> tuple[tuple[Resolution, ...], Any]:
    """The entry's sizes and mask. With a bucket set (resolution = "sdxl_buckets") and a mask image, the entry trains
    at the set's buckets of the mask's aspect ratio; a mask that fits none is refused, never stretched."""
    resolutions = entry_resolutions(item, defaults, name)
    key, value = _resolution_key(item, defaults)
    from_set = isinstance(value, str)
    require(not (from_set and _mask_key(item, defaults) == "mask_box"), name, "mask_box",
            f"cannot go with the bucket set {value!r}: a box has no aspect ratio of its own, so it would be drawn at one "
            "bucket only; give one resolution [height, width], or a mask image whose shape picks the buckets")
    mask = entry_mask(item, defaults, name, folder, resolutions[0])
    if from_set and mask is not None:
        resolutions = buckets_for_mask(mask.shape, resolutions, name)
    return resolutions, mask


def _mask_key(item: Mapping, defaults: Mapping) -> Optional[str]:
    for table in (item, defaults):
        for key in ("mask", "mask_box"):
            if key in table:
                return key
    return None


def entry_mask(item: Mapping, defaults: Mapping, name: str, folder: PromptFolder, resolution: Resolution):
    """`mask` (an image path) or `mask_box` ([top, left, bottom, right] fractions, drawn at the first resolution)."""
    for table in (item, defaults):
        require(not ("mask" in table and "mask_box" in table), name, "mask", "give either mask or mask_box, not both")
        if "mask" in table:
            return _mask_from_file(table["mask"], name, folder)
        if "mask_box" in table:
            try:
                return box_mask(resolution[0], resolution[1], table["mask_box"])
            except ValueError as error:
                raise SpecError(name, "mask_box", str(error)) from None
    return None


def _mask_from_file(value: Any, name: str, folder: PromptFolder):
    require(not isinstance(value, Mapping), name, "mask",
            "is a summary from file metadata, not an image; give the path of a grayscale mask image")
    path = folder.path(value, name, "mask")
    try:
        return load_mask_image(path)
    except Exception as error:  # PIL raises OSError, ValueError or DecompressionBombError for what is not a mask
        raise SpecError(name, "mask", f"cannot read mask image {path}: {error}") from None


def own_neutrals(item: Mapping, name: str, folder: PromptFolder) -> Optional[list[str]]:
    """An entry's neutrals: the first of neutrals, neutral_prompt_file, prompt_file, neutral (sd-scripts' order)."""
    for key in ("neutrals", *NEUTRAL_FILE_KEYS, "neutral"):
        if key in item:
            return neutral_source(key, item[key], name, folder)
    return None


def shared_neutrals(table: Mapping, name: str, folder: PromptFolder) -> Optional[list[str]]:
    """Neutrals every entry inherits: the list and both files add up (sd-scripts), else `neutral`."""
    keys = [key for key in ("neutrals", *NEUTRAL_FILE_KEYS) if key in table]
    if keys:
        return [n for key in keys for n in neutral_source(key, table[key], name, folder)]
    if "neutral" in table:
        return neutral_source("neutral", table["neutral"], name, folder)
    return None


def neutral_source(key: str, value: Any, name: str, folder: PromptFolder) -> list[str]:
    if key == "neutral":
        return [as_text(value, name, key)]
    if key == "neutrals":
        values = [value] if isinstance(value, str) else value
        require(isinstance(values, list) and values, name, key, 'must be a non-empty list of prompts, e.g. ["", "a photo"]')
        return [as_text(v, name, f"{key}[{i}]") for i, v in enumerate(values)]
    return _read_prompt_lines(folder.path(value, name, key), name, key)


def _read_prompt_lines(path: Path, name: str, key: str) -> list[str]:
    """One prompt per non-empty line, stripped (sd-scripts' rule)."""
    lines = [line.strip() for line in read_text_file(path, name, key).splitlines()]
    prompts = [line for line in lines if line]
    require(prompts, name, key, f"{path} has no prompts; write one neutral prompt per line")
    return prompts
