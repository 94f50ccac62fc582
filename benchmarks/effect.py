"""Time to effect: training wall time until the toy-world erase eval first reaches efficacy >= 0.9 with
preservation >= 0.95, from slider snapshots saved at fixed step intervals, for every way LOBA can start and
make x_t, and for LECO, side by side in one run.

LOBA trains its shipped erase-red recipe (loba/toyworld/recipes/erase-red.toml: three "a red <shape>"
pairs, preservation prompts, cross-attention, x_t from the base model, the trajectory cache):
- closed form alone: init = closed_form, the start saved before any step (the instant slider);
- closed form + N steps: the same run, its snapshots after N steps;
- from zero: kohya's init, with the trajectory cache, without it, and in single-step mode (iLECO: x_t = noise).
LECO (with --peer) trains the same three pairs twice: "with LOBA's prompts" (the recipe's prompt triple, rank 4,
alpha 4, lr 2e-3, 25 denoise steps, batch 2; its denoise CFG is fixed at 3; its "full" layer set, its
cross-attention option being broken, see RECIPE) and "as its users run it" (its defaults: positive = target,
unconditional = neutral = "", rank 4 / alpha 1, lr 1e-4, 50 denoise steps). Evaluation time is not counted;
the closed form's own seconds are (it is the whole "training" of the instant slider).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from .common import loba_command, peer_command, run_json

EFFICACY, PRESERVATION = 0.9, 0.95
EVERY, MAX_STEPS = 25, 300
# Snapshots are saved every EVERY steps; from-zero runs are evaluated at these (an evaluation costs about a minute of
# CPU, far more than the training it scores), finely where the recipe gets there.
LOBA_EVAL_STEPS = (25, 50, 75, 100, 150, 200, 300)
CLOSED_FORM_STEPS = (25, 100)  # "closed form + N steps" rows
# LECO gets twice the step budget, evaluated every 25 steps up to MAX_STEPS and every 100 after (evaluations are
# slow): a peer that never gets there is credited with its whole budget, so a longer one makes the bound fairer.
PEER_MAX_STEPS = 600
PEER_STEPS = list(range(EVERY, MAX_STEPS + 1, EVERY)) + list(range(MAX_STEPS + 100, PEER_MAX_STEPS + 1, 100))
SHAPES = ("circle", "square", "triangle")
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
""" for shape in SHAPES)
# LECO's own defaults (its README's prompt file): the target is also the positive, unconditional and neutral empty.
PEER_PROMPTS_AS_USERS = "".join(f"""- target: "a red {shape}"
  positive: "a red {shape}"
  unconditional: ""
  neutral: ""
  action: "erase"
  guidance_scale: 1.0
  resolution: 64
  dynamic_resolution: false
  batch_size: 2
""" for shape in SHAPES)
RECIPE = {"rank": 4, "alpha": 4.0, "lr": 2e-3, "denoise_steps": 25, "preset": "cross_attention", "peer_method": "full"}
PEER_AS_USERS = {"rank": 4, "alpha": 1.0, "lr": 1e-4, "denoise_steps": 50, "peer_method": "full"}
FROM_ZERO = {"from zero (cache)": ("cache", {}), "from zero (no cache)": ("no_cache", {"trajectory_cache": 0}),
             "from zero (single step)": ("single_step", {"single_step": True})}
ROWS = ("closed_form", "cache", "no_cache", "single_step", "leco")  # --effect-rows picks among these


def evaluate_snapshot(components, step: int, seconds: float, path: Path, work: Path, name: str) -> dict:
    from loba.toyworld.demo import recipe_path
    from loba.toyworld.evaluate import evaluate, load_spec

    metrics = evaluate(components, path, load_spec(recipe_path("erase-red", "eval")), work / f"eval-{name}-{step}")
    row = {"step": step, "seconds": seconds, "efficacy": metrics["efficacy"], "preservation": metrics["preservation"]}
    print(f"{name} step {step} ({seconds:.2f} s): efficacy {row['efficacy']:.3f}, preservation {row['preservation']:.3f}",
          flush=True)
    return row


def reached(row: dict) -> bool:
    return row["efficacy"] >= EFFICACY and row["preservation"] >= PRESERVATION


def first_effect(components, snapshots: list[tuple[int, float, Path]], work: Path, name: str) -> dict:
    history = []
    for step, seconds, path in snapshots:
        history.append(evaluate_snapshot(components, step, seconds, path, work, name))
        if reached(history[-1]):
            return {"seconds": seconds, "step": step, "history": history}
    return {"seconds": None, "step": None, "history": history}


def loba_run(s, model: Path, work: Path, env: dict, name: str, override: dict, steps: int) -> tuple[dict, Path]:
    import json

    r = argparse.Namespace(**{**vars(s), **RECIPE})
    folder, out = work / f"effect-{name}", work / f"effect-{name}.json"
    data = run_json(loba_command(r, model, out, steps, 0, ["--save-every", str(EVERY), "--save-dir", str(folder),
                                                          "--recipe", "erase-red", "--override", json.dumps(override)]),
                    out, env)
    data["s_per_step"] = statistics.fmean(data["step_seconds"][2:])
    return data, folder


def closed_form_rows(s, model: Path, work: Path, env: dict, components) -> list[dict]:
    data, folder = loba_run(s, model, work, env, "closed-form", {"init": "closed_form"}, max(CLOSED_FORM_STEPS))
    alone = evaluate_snapshot(components, 0, data["init_seconds"], folder / "step-00000.safetensors", work, "closed-form")
    rows = [{"name": "closed form alone (instant slider)", **alone, "time_to_effect_s": alone["seconds"] if reached(alone)
             else None, "init": data["init"]}]
    for steps in CLOSED_FORM_STEPS:
        row = evaluate_snapshot(components, steps, data["stamps"][steps - 1], folder / f"step-{steps:05d}.safetensors",
                                work, "closed-form")
        rows.append({"name": f"closed form + {steps} steps", **row, "s_per_step": data["s_per_step"],
                     "time_to_effect_s": alone["seconds"] if reached(alone) else (row["seconds"] if reached(row) else None)})
    return rows


def from_zero_rows(s, model: Path, work: Path, env: dict, components, wanted: set) -> list[dict]:
    rows = []
    for name, (key, override) in FROM_ZERO.items():
        if key not in wanted:
            continue
        data, folder = loba_run(s, model, work, env, name.replace(" ", "-").replace("(", "").replace(")", ""), override,
                                MAX_STEPS)
        snaps = [(step, data["stamps"][step - 1], folder / f"step-{step:05d}.safetensors") for step in LOBA_EVAL_STEPS]
        found = first_effect(components, snaps, work, name)
        last = found["history"][-1]
        rows.append({"name": f"LOBA {name}", **last, "s_per_step": data["s_per_step"], "time_to_effect_s": found["seconds"],
                     "history": found["history"]})
    return rows


def peer_row(s, model: Path, work: Path, env: dict, components, name: str, prompts_text: str, settings: dict) -> dict:
    key = name.replace(" ", "-").replace("'", "")
    r = argparse.Namespace(**{**vars(s), **settings})
    folder, out, prompts = work / f"effect-{key}", work / f"effect-{key}.json", work / f"effect-{key}.yaml"
    prompts.write_text(prompts_text)
    peer = run_json(peer_command(r, model, out, PEER_MAX_STEPS, prompts, ["--save-every", str(EVERY), "--save-dir",
                                                                          str(folder)]), out, env)
    # LECO saves after loop index i (i + 1 steps done) when i % per_steps == 0, and its last file as *_last.
    snaps = [(step + 1, peer["stamps"][step], folder / f"leco_{step}steps.safetensors")
             for step in PEER_STEPS if step < PEER_MAX_STEPS - 1]
    snaps.append((PEER_MAX_STEPS, peer["stamps"][-1], folder / "leco_last.safetensors"))
    found = first_effect(components, snaps, work, key)
    return {"name": name, **found["history"][-1], "s_per_step": statistics.fmean(peer["step_seconds"][2:]),
            "time_to_effect_s": found["seconds"], "budget_s": peer["stamps"][-1], "history": found["history"]}


def time_to_effect(s, model: Path, work: Path, env: dict) -> dict:
    import torch

    from loba.toyworld.sampling import load_toy_components

    torch.set_num_threads(s.threads)  # the evaluations run here: as many threads as the trainers get
    components = load_toy_components(model)
    wanted = set((getattr(s, "effect_rows", "") or ",".join(ROWS)).split(","))
    rows = closed_form_rows(s, model, work, env, components) if "closed_form" in wanted else []
    rows += from_zero_rows(s, model, work, env, components, wanted)
    if getattr(s, "peer", None) is not None and "leco" in wanted:
        rows.append(peer_row(s, model, work, env, components, "LECO with LOBA's prompts", PEER_PROMPTS, RECIPE))
        rows.append(peer_row(s, model, work, env, components, "LECO as its users run it", PEER_PROMPTS_AS_USERS,
                             PEER_AS_USERS))
    result = {"effect_rows": rows, "time_to_effect_budget_steps": {"loba": MAX_STEPS, "peer": PEER_MAX_STEPS}}
    ours = [r["time_to_effect_s"] for r in rows if not r["name"].startswith("LECO") and r["time_to_effect_s"] is not None]
    best = min(ours, default=None)
    result["loba_time_to_effect_s"] = best
    for row in rows:
        if row["name"].startswith("LECO") and best is not None:
            # A peer that never gets there is credited with its whole budget: the speedup is then a lower bound.
            theirs = row["time_to_effect_s"] if row["time_to_effect_s"] is not None else row["budget_s"]
            row["speedup_of_best_loba"] = theirs / best
            row["speedup_is_lower_bound"] = row["time_to_effect_s"] is None
    return result


def effect_table(result: dict) -> str:
    lines = [f"time to efficacy >= {EFFICACY} & preservation >= {PRESERVATION} (toy world, erase red; eval time not counted)",
             f"{'':40}{'steps':>6}{'seconds':>9}{'efficacy':>10}{'preserv.':>10}{'s/step':>8}{'to effect s':>13}"]
    for row in result["effect_rows"]:
        to_effect = "never" if row["time_to_effect_s"] is None else f"{row['time_to_effect_s']:.2f}"
        per_step = f"{row['s_per_step']:.3f}" if "s_per_step" in row else "-"
        lines.append(f"{row['name']:40}{row['step']:>6}{row['seconds']:>9.2f}{row['efficacy']:>10.3f}"
                     f"{row['preservation']:>10.3f}{per_step:>8}{to_effect:>13}")
        if "speedup_of_best_loba" in row:
            bound = " (lower bound: LECO never got there)" if row["speedup_is_lower_bound"] else ""
            lines.append(f"{'  best LOBA row is faster by':40}{row['speedup_of_best_loba']:.1f}x{bound}")
    init = next((row["init"] for row in result["effect_rows"] if row.get("init")), {})
    if init:
        lines.append(f"closed form: {init['modules']} key/value layers in {init['seconds']:.3f} s, rank truncation error "
                     f"max {init['max_truncation_error']:.3f} / mean {init['mean_truncation_error']:.3f} (relative Frobenius)")
    return "\n".join(lines)
