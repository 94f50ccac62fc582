"""The entangled world's three caption biases as unlearning cases, and how a re-attached model is scored.

Each case names the under-specified caption, the attribute its bias lives in and the favoured value, the
explicit prompts of that attribute (the redirect of U-LOBA's recipe, and the prompts whose output must keep
their named value), held-out control prompts (never seen in training), and the user's workaround: the
favoured value as a negative prompt.

Figures (styled reader, same seeds at every weight):
- bias_rate: fraction of caption samples with the favoured value (uniform: 1 / number of values);
- explicit_fidelity: of the explicit samples that show their named value at w = 0, the fraction that still
  do at the same seed (the world's own misses are not counted against a method);
- control_preservation: control samples whose shape, color, size and background all match w = 0;
- diversity: normalized entropy of the attribute among the caption samples (1 = every value equally often);
- drift: mean absolute pixel change of the control samples, in [0, 1].
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .attributes import BACKGROUNDS, COLORS, SHAPES
from .entangled_captions import parse_entangled

CONTENT = ("shape", "color", "size", "background")
VALUES = {"color": COLORS, "background": BACKGROUNDS, "shape": SHAPES}


@dataclass(frozen=True)
class UnlearnCase:
    name: str
    caption: str
    attribute: str
    favoured: str
    explicit: tuple[str, ...]
    control: tuple[str, ...]
    negative: str  # the workaround's negative prompt

    @property
    def recipe(self) -> str:
        return f"unlearn-{self.name}"

    @property
    def favoured_prompt(self) -> str:
        """The explicit prompt of the favoured value (what LECO's erase is given as its positive)."""
        return next(p for p in self.explicit if parse_entangled(p).get(self.attribute) == self.favoured)

    def prompts(self) -> list[str]:
        return list(dict.fromkeys((self.caption, *self.explicit, *self.control)))


UNLEARN_CASES = {case.name: case for case in (
    UnlearnCase("triangle", "a triangle", "color", "red",
                ("a red triangle", "a blue triangle", "a green triangle", "a yellow triangle"),
                ("a small circle", "a large square", "a red circle", "a blue square", "a large circle on a light background",
                 "a small green square", "a yellow circle on a dark background"), "red"),
    UnlearnCase("square", "a square", "background", "dark",
                ("a square on a light background", "a square on a dark background"),
                ("a small circle", "a large triangle", "a blue circle on a light background", "a small red triangle",
                 "a large green circle", "a yellow triangle on a dark background"), "dark background"),
    UnlearnCase("large", "a large shape", "shape", "circle",
                ("a large circle", "a large square", "a large triangle"),
                ("a red circle", "a blue triangle", "a small blue square", "a red circle on a light background",
                 "a small red shape", "a green triangle on a dark background"), "circle"),
)}


def bias_rate(reads: list[dict], case: UnlearnCase) -> float:
    return float(np.mean([r[case.attribute] == case.favoured for r in reads]))


def diversity(reads: list[dict], attribute: str) -> float:
    """Normalized entropy of the attribute's values among `reads` (unreadable samples are left out)."""
    values = VALUES[attribute]
    counts = Counter(r[attribute] for r in reads if r[attribute] in values)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    entropy = -sum(c / total * math.log(c / total) for c in counts.values())
    return entropy / math.log(len(values))


def explicit_fidelity(base: dict[str, list[dict]], moved: dict[str, list[dict]], case: UnlearnCase) -> float:
    kept, counted = 0, 0
    for prompt in case.explicit:
        named = parse_entangled(prompt)
        for before, after in zip(base[prompt], moved[prompt]):
            if all(before[k] == v for k, v in named.items() if k in CONTENT):
                counted += 1
                kept += all(after[k] == v for k, v in named.items() if k in CONTENT)
    return kept / counted if counted else 0.0


def control_preservation(base: dict[str, list[dict]], moved: dict[str, list[dict]], case: UnlearnCase) -> float:
    same = [all(a[k] == b[k] for k in CONTENT) for p in case.control for a, b in zip(base[p], moved[p])]
    return float(np.mean(same))


def control_drift(base_images: dict[str, np.ndarray], moved_images: dict[str, np.ndarray], case: UnlearnCase) -> float:
    changes = [np.abs(base_images[p].astype(np.float32) - moved_images[p].astype(np.float32)).mean() / 255.0
               for p in case.control]
    return float(np.mean(changes))


def case_figures(case: UnlearnCase, base: dict, moved: dict, base_images: dict, moved_images: dict) -> dict:
    """The figures of one method on one case (`base` / `moved`: prompt -> the reads at w = 0 / after)."""
    return {"bias_rate_base": bias_rate(base[case.caption], case),
            "bias_rate_w1": bias_rate(moved[case.caption], case),
            "uniform_rate": 1.0 / len(VALUES[case.attribute]),
            "explicit_fidelity": explicit_fidelity(base, moved, case),
            "control_preservation": control_preservation(base, moved, case),
            "diversity_base": diversity(base[case.caption], case.attribute),
            "diversity": diversity(moved[case.caption], case.attribute),
            "drift": control_drift(base_images, moved_images, case)}
