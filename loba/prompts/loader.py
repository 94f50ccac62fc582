"""Prompt files: sd-scripts LECO TOML (both formats) plus LOBA's extensions, as TOML or JSON; p1atdev LECO's
YAML prompt list as [[prompts]].

Format A: `[[prompts]]`; top-level prompt keys are defaults; an entry with target_class is a slider.
Format B: `[[targets]]` at top level or under `[slider]` (or that table alone is one entry); the
first target decides whether all are plain pairs (`target`) or sliders (`target_class`).
LOBA adds `[[anchors]]`, per-entry `mask` / `mask_box`, and `neutrals` / `resolutions` on plain
entries. Unknown keys are errors, except top-level training options (`loba train CONFIG.toml`
keeps prompts and training options in one file; loba.config reads those).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, Union

from ..config.train_config import SECTIONS, TrainConfig
from ..errors import SpecError
from ..read_policy import UNRESTRICTED, PathRefused, ReadPolicy
from .checks import require
from .entries import (
    EXTRA_KEYS,
    PLAIN_ENTRY_KEYS,
    PROMPT_KEYS,
    SLIDER_ENTRY_KEYS,
    anchor_prompts,
    check_keys,
    plain_pairs,
    reattach_entries,
    require_table,
    shared_neutrals,
    slider_target,
    style_shift_entries,
)
from .files import PromptFolder, read_text_file
from .promptset import PromptSet

# Keys that make a file (or its [slider] table) hold prompt pairs or sliders besides any [[reattach]] entries.
ENTRY_MARKERS = frozenset({"prompts", "targets", "slider", "target", "target_class"})
TRAINING_NOTE = "; training options (network_dim, learning_rate, [optimizer], ...) are allowed at the top level too"


def training_option_keys() -> set[str]:
    """Every TrainConfig field and section name: tolerated at a prompt file's top level."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for section in SECTIONS.values():
        names |= {f.name for f in dataclasses.fields(section)}
    return names


def load_prompt_file(path: Union[str, Path], policy: ReadPolicy = UNRESTRICTED) -> PromptSet:
    """Read a .toml or .json prompt file; relative files inside it are found next to it (under the same policy)."""
    path = Path(path)
    return prompt_set_from_dict(read_prompt_table(path, policy), path.parent, path.name, policy)


def read_prompt_table(path: Path, policy: ReadPolicy = UNRESTRICTED) -> dict:
    suffix = path.suffix.lower()
    require(suffix in (".toml", ".json", ".yaml", ".yml"), path.name, "file",
            f"unsupported extension {suffix!r}; use a .toml, .json or (p1atdev LECO) .yaml prompt file")
    try:
        real = policy.resolve(path)
    except PathRefused as error:
        raise SpecError(path.name, "file", str(error)) from None
    text = read_text_file(real, path.name, "file")
    data = parse_toml(text, path.name) if suffix == ".toml" else _parse_json(text, path.name) if suffix == ".json" \
        else parse_leco_yaml(text, path.name)
    require(isinstance(data, dict), path.name, "file", "must hold a table (JSON object) at the top level")
    return data


def parse_toml(text: str, source: str, field: str = "file") -> Any:
    from ..config.toml_compat import TOMLDecodeError, loads

    try:
        return loads(text)
    except TOMLDecodeError as error:
        raise SpecError(source, field, f"is not valid TOML: {error}") from None


def parse_leco_yaml(text: str, source: str) -> Any:
    """p1atdev LECO's YAML: a prompts file is a list of [[prompts]] entries; a mapping is read as it is."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(source, "file", f"is not valid YAML: {error}") from None
    return {"prompts": data} if isinstance(data, list) else data


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(source, "file", f"is not valid JSON: {error}") from None


def prompt_set_from_dict(data: Mapping, base_dir: Union[str, Path] = ".", source_name: str = "prompt spec",
                         policy: ReadPolicy = UNRESTRICTED) -> PromptSet:
    """Build a PromptSet from a parsed prompt file (TOML tables or the same schema in JSON).

    Files it names are relative to `base_dir` and read only where `policy` allows."""
    require(isinstance(data, Mapping) and data, source_name, "prompts",
            "the prompt file is empty; add [[prompts]] (target = ...) or [[targets]] (target_class = ...) entries")
    folder = PromptFolder(Path(base_dir), policy)
    reattach = reattach_entries(data["reattach"], folder) if "reattach" in data else []
    reattach += style_shift_entries(data["style_shift"], folder) if "style_shift" in data else []
    data = {key: value for key, value in data.items() if key not in ("reattach", "style_shift")}
    if "prompts" in data:
        entries = _prompts_format(data, folder, source_name)
    elif reattach and not ENTRY_MARKERS & set(data):
        check_keys(data, frozenset({"anchors"}), source_name, training_option_keys(), TRAINING_NOTE)
        entries = []
    else:
        entries = _targets_format(data, folder, source_name)
    return PromptSet(tuple(entries + reattach), tuple(_anchors(data, source_name)))


def _prompts_format(data: Mapping, folder: PromptFolder, source: str) -> list:
    """Format A: [[prompts]]; top-level prompt keys are every entry's defaults."""
    for key in ("targets", "slider"):
        require(key not in data, source, key,
                "a file with [[prompts]] cannot also have [[targets]] or [slider] (sd-scripts would ignore them); "
                "put slider entries (target_class = ...) into [[prompts]]")
    check_keys(data, PROMPT_KEYS | EXTRA_KEYS | {"prompts", "anchors"}, source, training_option_keys(), TRAINING_NOTE)
    items = data["prompts"]
    require(isinstance(items, list) and items, source, "prompts", "must be a non-empty list of [[prompts]] tables")
    defaults = {key: value for key, value in data.items() if key in PROMPT_KEYS | EXTRA_KEYS}
    shared = shared_neutrals(defaults, source, folder)
    entries: list = []
    for i, item in enumerate(items):
        name = f"prompts[{i}]"
        if isinstance(item, Mapping) and "target_class" in item:
            # sd-scripts gives a slider inside [[prompts]] only its own neutral, never the top-level ones.
            entries.append(slider_target(item, defaults, name, folder, None))
        else:
            entries.extend(plain_pairs(item, defaults, name, folder, shared))
    return entries


def _targets_format(data: Mapping, folder: PromptFolder, source: str) -> list:
    """Format B: [[targets]] at the top level or under [slider], or that table alone as one entry."""
    container, where = _slider_container(data, source)
    tolerated = training_option_keys() if container is data else set()
    targets = container.get("targets")
    if targets is None and "target" not in container and "target_class" not in container:
        require("anchors" in data or "anchors" in container, source, "prompts",
                "no [[prompts]], [[targets]] or [slider] entries found; add e.g. [[prompts]] target = \"van gogh\"")
        check_keys(container, frozenset({"anchors"}), where, tolerated, TRAINING_NOTE if tolerated else "")
        return []
    if targets is None:
        return _single_entry(container, where, folder, tolerated)
    require(isinstance(targets, list) and targets, where, "targets", "must be a non-empty list of [[targets]] tables")
    plain = isinstance(targets[0], Mapping) and "target" in targets[0]
    known = PLAIN_ENTRY_KEYS if plain else SLIDER_ENTRY_KEYS
    check_keys(container, known | {"targets", "anchors"}, where, tolerated, TRAINING_NOTE if tolerated else "")
    defaults = {key: value for key, value in container.items() if key in known}
    shared = shared_neutrals(defaults, where, folder)
    entries: list = []
    for i, item in enumerate(targets):
        if plain:
            entries.extend(plain_pairs(item, defaults, f"targets[{i}]", folder, shared))
        else:
            entries.append(slider_target(item, defaults, f"targets[{i}]", folder, shared))
    return entries


def _slider_container(data: Mapping, source: str) -> tuple[Mapping, str]:
    """sd-scripts reads `data.get("slider", data)`; with [slider], prompt keys outside it would be lost."""
    if "slider" not in data:
        return data, source
    check_keys(data, frozenset({"slider", "anchors"}), source, training_option_keys(),
               "; with a [slider] table, put prompt keys such as guidance_scale inside it" + TRAINING_NOTE)
    return require_table(data["slider"], source, "slider"), "slider"


def _single_entry(table: Mapping, where: str, folder: PromptFolder, tolerated: AbstractSet[str]) -> list:
    """A table without [[targets]] that has target or target_class is itself the one entry."""
    entry = {key: value for key, value in table.items() if key != "anchors" and key not in tolerated}
    if "target" in entry:
        return plain_pairs(entry, {}, where, folder, None)
    return [slider_target(entry, {}, where, folder, None)]


def _anchors(data: Mapping, source: str) -> list:
    anchors = anchor_prompts(data["anchors"], source) if "anchors" in data else []
    slider = data.get("slider")
    if isinstance(slider, Mapping) and "anchors" in slider:
        anchors += anchor_prompts(slider["anchors"], "slider")
    return anchors
