"""The Evaluate node's spec: a TOML file from ComfyUI's input folder, or its fields, as the engine's spec mapping."""

from __future__ import annotations

from pathlib import Path

from ..loba.errors import ConfigError
from ..loba.images import parse_weights

SPEC_FIELD_INPUTS = ("target_prompts", "control_prompts", "canary_prompts", "negative_prompt", "weights", "seeds",
                     "sampler_name", "scheduler", "steps", "cfg", "width", "height", "evaluators", "evaluator_settings")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def _seeds(text: str) -> list[int]:
    items = [item.strip() for item in str(text).replace(";", ",").split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items):
        raise ConfigError("seeds", f"'{text}': give comma-separated whole numbers such as 0, 1, 2, 3")
    return [int(item) for item in items]


def spec_from_fields(values: dict) -> dict:
    """The spec mapping of the node's fields (parse_spec validates it)."""
    from ..loba.config.toml_compat import TOMLDecodeError, loads

    names = [name.strip() for name in str(values["evaluators"]).split(",") if name.strip()]
    try:
        settings = loads(values["evaluator_settings"] or "")
    except TOMLDecodeError as exc:
        raise ConfigError("evaluator_settings", f"is not TOML ({exc}); write e.g. [nudenet] then threshold = 0.5") from None
    extra = sorted(set(settings) - set(names))
    if extra:
        raise ConfigError("evaluator_settings", f"has settings for '{extra[0]}', which is not in 'evaluators'")
    return {"target_prompts": _lines(values["target_prompts"]), "control_prompts": _lines(values["control_prompts"]),
            "canary_prompts": _lines(values["canary_prompts"]), "negative_prompt": values["negative_prompt"],
            "weights": parse_weights(values["weights"]), "seeds": _seeds(values["seeds"]),
            "sampler": values["sampler_name"], "scheduler": values["scheduler"], "steps": values["steps"],
            "cfg": values["cfg"], "width": values["width"], "height": values["height"],
            "evaluators": {name: settings.get(name, {}) for name in names}}


def spec_from_file(name: str, input_folder: Path) -> dict:
    """A spec file inside ComfyUI's input folder (never outside it)."""
    from ..loba.config.toml_compat import TOMLDecodeError, loads

    folder = input_folder.resolve()
    path = (folder / name).resolve()
    if folder not in path.parents or path.suffix != ".toml":
        raise ConfigError("spec_file", f"'{name}' must be a .toml file inside ComfyUI's input folder ({folder})")
    try:
        return loads(path.read_text(encoding="utf-8"))
    except (OSError, TOMLDecodeError) as exc:
        raise ConfigError("spec_file", f"cannot read {path}: {exc}") from None


def with_clip_vision_folder(data: dict, clip_vision_folders: list[str]) -> dict:
    """[evaluators.clip] weights may name a transformers CLIP/SigLIP folder inside ComfyUI's clip_vision folder."""
    clip = (data.get("evaluators") or {}).get("clip")
    name = clip.get("weights") if isinstance(clip, dict) else None
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        return data
    for folder in clip_vision_folders:
        if (Path(folder) / name / "config.json").is_file():
            evaluators = {**data["evaluators"], "clip": {**clip, "weights": str(Path(folder) / name)}}
            return {**data, "evaluators": evaluators}
    return data
