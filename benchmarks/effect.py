"""Time to effect: training wall time until the toy-world erase eval first reaches efficacy >= 0.9 with
preservation >= 0.95, for LOBA and LECO, from slider snapshots saved at fixed step intervals.

LOBA trains its shipped erase-red recipe (loba/toyworld/recipes/erase-red.toml: three "a red <shape>"
pairs, preservation prompts, cross-attention, x_t from the base model, the trajectory cache). LECO trains
the same three pairs with the recipe's rank 4, alpha 4, lr 2e-3, 25 denoise steps and batch 2 (its denoise
CFG is fixed at 3) on its "full" layer set (its cross-attention option is broken, see RECIPE).
Evaluation time is not counted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import loba_command, peer_command, run_json

EFFICACY, PRESERVATION = 0.9, 0.95
EVERY, MAX_STEPS = 25, 300
# LECO gets twice the step budget, evaluated every 25 steps up to MAX_STEPS and every 100 after (evaluations are
# slow): a peer that never gets there is credited with its whole budget, so a longer one makes the bound fairer.
PEER_MAX_STEPS = 600
PEER_STEPS = list(range(EVERY, MAX_STEPS + 1, EVERY)) + list(range(MAX_STEPS + 100, PEER_MAX_STEPS + 1, 100))
# LECO's "xattn"/"selfattn" methods train nothing (they test the Transformer2DModel's own name for "attn2",
# which never matches: the optimizer gets an empty parameter list), so LECO trains "full", its default.
PEER_PROMPTS = "".join(f"""- target: "a red {shape}"
  positive: "a red {shape}"
  unconditional: "a {shape}"
  neutral: "a {shape}"
  action: "erase"
  guidance_scale: 1.0
  resolution: 64
  dynamic_resolution: false
  batch_size: 2
""" for shape in ("circle", "square", "triangle"))
RECIPE = {"rank": 4, "alpha": 4.0, "lr": 2e-3, "denoise_steps": 25, "preset": "cross_attention", "peer_method": "full"}


def first_effect(components, snapshots: list[tuple[int, float, Path]], work: Path, name: str) -> dict:
    from loba.toyworld.demo import recipe_path
    from loba.toyworld.evaluate import evaluate, load_spec

    spec = load_spec(recipe_path("erase-red", "eval"))
    history = []
    for step, seconds, path in snapshots:
        metrics = evaluate(components, path, spec, work / f"eval-{name}-{step}")
        history.append({"step": step, "seconds": seconds, "efficacy": metrics["efficacy"], "preservation": metrics["preservation"]})
        print(f"{name} step {step} ({seconds:.1f} s): efficacy {metrics['efficacy']:.3f}, preservation {metrics['preservation']:.3f}",
              flush=True)
        if metrics["efficacy"] >= EFFICACY and metrics["preservation"] >= PRESERVATION:
            return {"seconds": seconds, "step": step, "history": history}
    return {"seconds": None, "step": None, "history": history}


def time_to_effect(s, model: Path, work: Path, env: dict) -> dict:
    from loba.toyworld.sampling import load_toy_components

    r = argparse.Namespace(**{**vars(s), **RECIPE})
    loba_dir, peer_dir = work / "effect-loba", work / "effect-peer"
    loba = run_json(loba_command(r, model, work / "effect-loba.json", MAX_STEPS, 0,
                                 ["--save-every", str(EVERY), "--save-dir", str(loba_dir), "--recipe", "erase-red"]),
                    work / "effect-loba.json", env)
    prompts = work / "effect-prompts.yaml"
    prompts.write_text(PEER_PROMPTS)
    peer = run_json(peer_command(r, model, work / "effect-peer.json", PEER_MAX_STEPS, prompts,
                                 ["--save-every", str(EVERY), "--save-dir", str(peer_dir)]), work / "effect-peer.json", env)
    components = load_toy_components(model)
    loba_snaps = [(step, loba["stamps"][step - 1], loba_dir / f"step-{step:05d}.safetensors")
                  for step in range(EVERY, MAX_STEPS + 1, EVERY)]
    # LECO saves after loop index i (i + 1 steps done) when i % per_steps == 0, and its last file as *_last.
    peer_snaps = [(step + 1, peer["stamps"][step], peer_dir / f"leco_{step}steps.safetensors")
                  for step in PEER_STEPS if step < PEER_MAX_STEPS - 1]
    peer_snaps.append((PEER_MAX_STEPS, peer["stamps"][-1], peer_dir / "leco_last.safetensors"))
    ours, theirs = first_effect(components, loba_snaps, work, "loba"), first_effect(components, peer_snaps, work, "leco")
    speedup = None
    if ours["seconds"] is not None:
        # A peer that never gets there is credited with its whole budget: the speedup is then a lower bound.
        speedup = (theirs["seconds"] if theirs["seconds"] is not None else peer["stamps"][-1]) / ours["seconds"]
    return {"loba_time_to_effect_s": ours["seconds"], "peer_time_to_effect_s": theirs["seconds"],
            "time_to_effect_speedup": speedup, "time_to_effect_is_lower_bound": theirs["seconds"] is None,
            "time_to_effect_budget_steps": {"loba": MAX_STEPS, "peer": PEER_MAX_STEPS},
            "effect_history": {"loba": ours["history"], "peer": theirs["history"]}}
