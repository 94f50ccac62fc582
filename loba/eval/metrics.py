"""metrics.json from the rendered samples: every evaluator on every prompt x weight (paired with the same-seed
w = 0 images), per-sample values, and means with 95% bootstrap intervals per prompt and pooled per role."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np

from .spec import ROLES, EvalRunSpec
from .stats import summarize

Images = Mapping[tuple[int, float], np.ndarray]  # (prompt index, weight) -> uint8 [seeds, H, W, 3]


def weight_key(weight: float) -> str:
    return f"{weight:g}"


def score_all(spec: EvalRunSpec, evaluators: Mapping, images: Images, latents: Optional[Images] = None) -> dict:
    """{prompt index: {evaluator: {metric: {weight: values [seeds]}}}}; latent evaluators score `latents`."""
    scores: dict = {}
    for index, prompt in enumerate(spec.prompts):
        per_prompt = scores.setdefault(index, {})
        for name, evaluator in evaluators.items():
            source = latents if evaluator.reads == "latents" else images
            if source is None:
                raise ValueError(f"evaluator {name} reads latents and the renderer gave none")
            base = source[(index, 0.0)]
            for weight in spec.weights:
                batch = source[(index, weight)]
                values = evaluator.score(batch, [prompt] * len(batch), None if weight == 0 else base)
                for metric, array in values.items():
                    per_prompt.setdefault(name, {}).setdefault(metric, {})[weight] = np.asarray(array, np.float64)
    return scores


def _figures(by_weight: Mapping[float, np.ndarray], with_values: bool) -> dict:
    return {weight_key(w): {**summarize(v), **({"values": [None if not np.isfinite(x) else float(x) for x in v]} if with_values else {})}
            for w, v in sorted(by_weight.items())}


def build_metrics(spec: EvalRunSpec, scores: Mapping) -> dict:
    """The JSON body: per_prompt (with per-seed values) and summary pooled over each role's prompts."""
    per_prompt, pooled = {}, {}
    for index, (prompt, role) in enumerate(zip(spec.prompts, spec.roles)):
        entry = {"role": role, "evaluators": {}}
        for name, metrics in scores[index].items():
            entry["evaluators"][name] = {metric: _figures(by_weight, True) for metric, by_weight in metrics.items()}
            for metric, by_weight in metrics.items():
                target = pooled.setdefault(role, {}).setdefault(name, {}).setdefault(metric, {})
                for weight, values in by_weight.items():
                    target.setdefault(weight, []).append(values)
        per_prompt[prompt] = entry
    summary = {role: {name: {metric: _figures({w: np.concatenate(v) for w, v in by_weight.items()}, False)
                             for metric, by_weight in metrics.items()} for name, metrics in pooled[role].items()}
               for role in ROLES if role in pooled}
    return {"weights": [weight_key(w) for w in spec.weights], "seeds": list(spec.seeds), "summary": summary,
            "per_prompt": per_prompt}
