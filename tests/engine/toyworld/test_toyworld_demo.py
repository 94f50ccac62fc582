"""`loba demo` and `loba toyworld` wiring, on untrained toy components (the figures are meaningless here)."""

import json

import pytest
from support.toy_models import random_components

from loba.cli.main import main
from loba.toyworld.captions import parse_caption
from loba.toyworld.demo import DEMO_RECIPES, recipe_path
from loba.toyworld.evaluate import load_spec
from loba.toyworld.files import save_toy_checkpoint


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy.safetensors"
    save_toy_checkpoint(path, random_components(seed=0), {"note": "untrained, for tests"})
    return path


@pytest.mark.parametrize("name", DEMO_RECIPES)
def test_shipped_recipes_load_and_speak_the_toy_grammar(name):
    from loba.config.runfile import split_run_table
    from loba.prompts.loader import read_prompt_table

    path = recipe_path(name, "train")
    _, config, prompts = split_run_table(read_prompt_table(path), path.parent, path.name)
    assert prompts.pairs() and config.max_train_steps > 0
    for prompt in prompts.all_prompts():
        parse_caption(prompt)  # raises on a word the toy model never saw
    assert load_spec(recipe_path(name, "eval")).samples > 0


def test_quick_demo_writes_every_output(random_weights, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--weights", str(random_weights), "--quick", "--only", "sliders"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(DEMO_RECIPES)
    for name in DEMO_RECIPES:
        folder = tmp_path / name
        for path in ("slider.safetensors", "loss.csv", "eval/metrics.json", "eval/grid.png"):
            assert (folder / path).is_file(), path
    assert "efficacy" in summary["erase-red"]["metrics"] and "spearman" in summary["size-slider"]["metrics"]
    assert {entry["threads"] for entry in summary.values()} == {1}  # the default, reported
    assert "torch threads: 1; seeds: the recipes' own" in capsys.readouterr().out


def test_toyworld_competence_command_reports_figures(random_weights, tmp_path, monkeypatch):
    import loba.toyworld.competence as competence

    monkeypatch.setattr(competence, "PARTIAL_PROMPTS", ("a circle",))
    out = tmp_path / "competence.json"
    code = main(["toyworld", "competence", "--weights", str(random_weights), "--samples", "1", "--out", str(out)])
    figures = json.loads(out.read_text())
    assert set(figures["accuracy"]) == {"shape", "color", "size", "background"}
    assert code == (0 if figures["competent"] else 1)


def _slider_seed(path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()["ss_seed"]


def test_demo_cli_passes_threads_and_seeds(tmp_path, monkeypatch):
    import loba.toyworld.demo as demo
    import loba.toyworld.unlearn_demo as unlearn

    calls, unlearned = [], []
    monkeypatch.setattr(demo, "run_demo", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(unlearn, "run_unlearn", lambda *args, **kwargs: unlearned.append(kwargs))
    assert main(["demo", "--out", str(tmp_path), "--threads", "2", "--seeds", "3, 5"]) == 0
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert [(c["threads"], c["seeds"]) for c in calls] == [(2, (3, 5)), (1, None)]  # default: one thread, the recipes' seed
    # The unlearn part runs once per seed with the same threads (seed 0 by default).
    assert [(u["threads"], u["seed"]) for u in unlearned] == [(2, 3), (2, 5), (1, 0)]


def test_demo_threads_and_seeds_are_applied_and_reported(random_weights, tmp_path, monkeypatch, capsys):
    import torch

    import loba.toyworld.demo as demo

    seen, original = [], demo.run_recipe
    monkeypatch.setattr(demo, "run_recipe", lambda *a, **k: (seen.append((torch.get_num_threads(), k["seed"])), original(*a, **k))[1])
    # The caller's count differs from the demo's, and the demo trains on one thread: two would crawl on a
    # busy two-core machine (the CLI test above shows --threads 2 arriving here).
    torch.set_num_threads(2)
    summary = demo.run_demo(tmp_path, random_weights, recipes=("size-slider",), quick=True, threads=1, seeds=(3, 5))
    assert seen == [(1, 3), (1, 5)]  # the thread count is set before each training
    assert torch.get_num_threads() == 2  # and the caller's given back afterwards
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    entry = summary["size-slider"]
    assert entry["threads"] == 1 and entry["seeds"] == [3, 5] and [run["seed"] for run in entry["runs"]] == [3, 5]
    for seed in (3, 5):  # the seed reached the training config: the slider's metadata records it
        assert _slider_seed(tmp_path / "size-slider" / f"seed-{seed}" / "slider.safetensors") == str(seed)
    seconds = entry["stats"]["train_seconds"]
    assert seconds["min"] <= seconds["median"] <= seconds["max"] and seconds["n"] == 2
    assert set(entry["stats"]) == {"train_seconds", "efficacy", "spearman", "monotonic", "preservation", "drift"}
    out = capsys.readouterr().out
    table = out[out.index("torch threads: 1; seeds: 3,5 (min / median / max over them)"):].splitlines()
    assert [line.split()[:2] for line in table[2:5]] == [["size-slider", "min"], ["median", seconds_cell(seconds["median"])],
                                                         ["max", seconds_cell(seconds["max"])]]


def seconds_cell(value: float) -> str:
    return f"{value:.1f}"


def test_seed_stats_spread_skips_undefined_figures_and_counts_monotonic():
    from loba.toyworld.demo import seed_stats

    runs = [{"train_seconds": t, "metrics": {"spearman": s, "monotonic": m, "drift": 0.1}}
            for t, s, m in ((3.0, 0.5, True), (1.0, None, False), (2.0, 0.9, True))]
    stats = seed_stats(runs)
    assert stats["train_seconds"] == {"min": 1.0, "median": 2.0, "max": 3.0, "n": 3}
    assert stats["spearman"] == {"min": 0.5, "median": 0.7, "max": 0.9, "n": 2}
    assert stats["monotonic"] == {"yes": 2, "runs": 3} and stats["efficacy"] is None


@pytest.mark.parametrize("value", ["a,b", "1,1", ""])
def test_a_bad_seeds_value_is_a_cli_error_naming_seeds(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path), "--seeds", value])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err
