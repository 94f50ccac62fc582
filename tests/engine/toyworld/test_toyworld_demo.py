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


def test_quick_demo_writes_every_output(random_weights, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--weights", str(random_weights), "--quick"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(DEMO_RECIPES)
    for name in DEMO_RECIPES:
        folder = tmp_path / name
        for path in ("slider.safetensors", "loss.csv", "eval/metrics.json", "eval/grid.png"):
            assert (folder / path).is_file(), path
    assert "efficacy" in summary["erase-red"]["metrics"] and "spearman" in summary["size-slider"]["metrics"]


def test_toyworld_competence_command_reports_figures(random_weights, tmp_path, monkeypatch):
    import loba.toyworld.competence as competence

    monkeypatch.setattr(competence, "PARTIAL_PROMPTS", ("a circle",))
    out = tmp_path / "competence.json"
    code = main(["toyworld", "competence", "--weights", str(random_weights), "--samples", "1", "--out", str(out)])
    figures = json.loads(out.read_text())
    assert set(figures["accuracy"]) == {"shape", "color", "size", "background"}
    assert code == (0 if figures["competent"] else 1)
