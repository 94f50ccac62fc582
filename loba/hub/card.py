"""The model card (README.md) of a pushed slider: YAML front matter (base model, tags) through huggingface_hub's
own ModelCardData, then the trigger prompts and how to use the slider at weights, its settings, the loss curve,
the preview grid and the evaluation table when the run folder has them."""

from __future__ import annotations

import json
from typing import Optional

from .bundle import RunBundle

TAGS = ("lora", "loba", "slider")
FAMILY_TAGS = {"sd_v1": "stable-diffusion", "sd_v2": "stable-diffusion", "sdxl_base_v1-0": "stable-diffusion-xl"}
LOSS_IMAGE, PREVIEW_IMAGE = "loss.png", "preview.png"
USAGE_WEIGHTS = (-1.0, 0.0, 1.0)


def front_matter(bundle: RunBundle, base_model: Optional[str]) -> str:
    from huggingface_hub import ModelCardData

    family = bundle.metadata.get("ss_base_model_version", "")
    tags = list(TAGS) + [tag for tag in (FAMILY_TAGS.get(family), "text-to-image") if tag]
    data = ModelCardData(base_model=base_model, tags=tags, library_name="diffusers", pipeline_tag="text-to-image")
    return f"---\n{data.to_yaml()}\n---\n"


def trigger_lines(metadata: dict[str, str]) -> list[str]:
    """One line per prompt entry: what the slider moves, and what + and - weights do."""
    prompts = json.loads(metadata.get("loba_prompts", "{}")).get("prompts", [])
    lines = []
    for entry in prompts:
        if "target_class" in entry:
            lines.append(f"- `{entry['target_class']}`: weight + moves toward **{entry.get('positive') or '-'}**, "
                         f"weight - toward **{entry.get('negative') or '-'}**")
        elif "target" in entry:
            action = entry.get("action", "erase")
            lines.append(f"- `{entry['target']}` ({action}, positive `{entry.get('positive') or entry['target']}`, "
                         f"trained at multiplier {entry.get('multiplier', 1.0):+g})")
    return lines or ["- (the slider file names no prompts)"]


def settings_rows(metadata: dict[str, str]) -> list[tuple[str, str]]:
    """The slider's own record of its training: LOBA's config (flattened) and kohya's ss_* summary fields."""
    rows = [(key, metadata[key]) for key in ("loba_version", "ss_base_model_version", "ss_steps", "ss_seed",
                                             "ss_network_dim", "ss_network_alpha") if key in metadata]
    config = json.loads(metadata.get("loba_config", "{}"))
    for key, value in sorted(config.items()):
        if isinstance(value, dict):
            rows += [(f"{key}.{sub}", json.dumps(v)) for sub, v in sorted(value.items())]
        else:
            rows.append((key, json.dumps(value)))
    return rows


def evaluation_table(metrics: dict) -> list[str]:
    from ..eval.report_table import summary_rows

    weights = metrics.get("weights", [])
    lines = ["| role | evaluator | metric | " + " | ".join(f"w={w}" for w in weights) + " |",
             "|---|---|---|" + "---|" * len(weights)]
    lines += [f"| {role} | {name} | {metric} | " + " | ".join(cells) + " |"
              for role, name, metric, cells in summary_rows(metrics)]
    return lines


def usage(repo_id: str, slider_name: str) -> list[str]:
    weights = ", ".join(f"{w:+g}" for w in USAGE_WEIGHTS)
    return [
        f"Load the LoRA at a weight between -1 and 1 (try {weights}); 0 is the base model, the sign picks the direction.",
        "",
        "ComfyUI: put the file in `models/loras` and use *LoraLoader* (strength_model = the weight) or LOBA's slider nodes.",
        "",
        "diffusers:",
        "",
        "```python",
        f'pipe.load_lora_weights("{repo_id}", weight_name="{slider_name}", adapter_name="slider")',
        'pipe.set_adapters(["slider"], adapter_weights=[1.0])  # or -1.0 for the other direction',
        "```",
    ]


def render_card(bundle: RunBundle, repo_id: str, base_model: Optional[str], run_file_name: Optional[str]) -> str:
    """README.md text; images and files it links are the ones upload_plan puts next to it."""
    name = repo_id.split("/")[-1]
    parts = [front_matter(bundle, base_model), f"# {name}", "",
             "A LoRA slider trained from prompts alone with [LOBA](https://github.com/loba-sliders/loba) (LECO-style).", ""]
    parts += [f"Base model: `{base_model}`" if base_model else "Base model: a local model (not on the Hub); family "
              f"{bundle.metadata.get('ss_base_model_version', 'unknown')}", ""]
    parts += ["## Trigger prompts", "", *trigger_lines(bundle.metadata), "", "## Usage", "", *usage(repo_id, bundle.slider.name), ""]
    parts += ["## Settings", "", "| setting | value |", "|---|---|"]
    parts += [f"| {key} | `{value}` |" for key, value in settings_rows(bundle.metadata)]
    if run_file_name:
        parts += ["", f"The run file: [{run_file_name}]({run_file_name}) (`loba train {run_file_name} --out DIR`)."]
    if bundle.losses:
        parts += ["", "## Loss", "", f"![loss curve]({LOSS_IMAGE})", "", "Per step: [loss.csv](loss.csv)."]
    if bundle.preview is not None:
        parts += ["", "## Preview", "", f"![preview grid]({PREVIEW_IMAGE})"]
    if bundle.metrics is not None and bundle.metrics.get("summary"):
        parts += ["", "## Evaluation", "", "Mean [95% interval] per slider weight (`loba eval`; details in eval/).", "",
                  *evaluation_table(bundle.metrics)]
    return "\n".join(parts) + "\n"
