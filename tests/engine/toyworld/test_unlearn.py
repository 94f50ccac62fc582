"""U-LOBA's measurement on the entangled world: the three cases' recipes, the figures, the demo's plumbing."""

import json
import math

import pytest

from loba.cli.main import main
from loba.config.runfile import split_run_table
from loba.toyworld.entangled_captions import parse_entangled
from loba.toyworld.unlearn_cases import (
    UNLEARN_CASES,
    VALUES,
    bias_rate,
    control_preservation,
    diversity,
    explicit_fidelity,
)
from loba.toyworld.unlearn_demo import COLUMNS, recipe_table


@pytest.mark.parametrize("name", list(UNLEARN_CASES))
def test_each_bias_has_a_default_recipe_that_differs_only_in_its_prompts(name):
    case = UNLEARN_CASES[name]
    table, folder = recipe_table(case, "u-loba")
    _, config, prompts = split_run_table(table, folder, case.recipe)
    [entry] = prompts.entries
    assert entry.caption == case.caption and tuple(p for p, _ in entry.redirect) == case.explicit
    # The redirect names every value of the attribute once, with equal shares: no value preferred.
    assert sorted(parse_entangled(p)[case.attribute] for p in case.explicit) == sorted(VALUES[case.attribute])
    assert len({w for _, w in entry.redirect}) == 1 and case.favoured_prompt in case.explicit
    # Held-out controls: no control prompt is trained (neither an anchor nor an explicit prompt nor the caption).
    trained = {a.prompt for a in prompts.training_anchors()} | {case.caption}
    assert not trained & set(case.control)
    reference, _ = recipe_table(UNLEARN_CASES["triangle"], "u-loba")
    options = lambda t: {k: v for k, v in t.items() if k not in ("reattach", "anchors")}  # noqa: E731
    assert options(table) == options(reference)
    assert config.network.preset == "cross_attention_kv"


def test_the_leco_row_is_the_classic_erase_of_the_favoured_value_on_the_caption():
    case = UNLEARN_CASES["triangle"]
    table, folder = recipe_table(case, "leco-erase")
    _, config, prompts = split_run_table(table, folder, "leco")
    [pair] = prompts.pairs()
    assert (pair.target, pair.positive, pair.unconditional, pair.neutral, pair.action) == \
        ("a triangle", "a red triangle", "", "", "erase")
    assert config.sampling.denoise_with_adapter and not prompts.anchors


def reads(*colors, shape="triangle"):
    return [{"shape": shape, "color": c, "size": "small", "background": "light"} for c in colors]


def test_figures_against_hand_computation():
    case = UNLEARN_CASES["triangle"]
    assert bias_rate(reads("red", "red", "blue", "green"), case) == 0.5
    assert diversity(reads("red", "blue", "green", "yellow"), "color") == pytest.approx(1.0)
    assert diversity(reads("red", "red"), "color") == 0.0
    assert diversity(reads("red", "blue"), "color") == pytest.approx(math.log(2) / math.log(4))
    base = {"a red triangle": reads("red", "blue"), "a blue triangle": reads("blue", "blue"),
            "a green triangle": reads("green"), "a yellow triangle": reads("yellow")}
    moved = {"a red triangle": reads("blue", "red"), "a blue triangle": reads("blue", "red"),
             "a green triangle": reads("green"), "a yellow triangle": reads("yellow")}
    # Counted: the 5 base samples that show their named color (not the blue "a red triangle"); kept at the same
    # seed: 3 of them (the red triangle turned blue and the second blue triangle turned red).
    assert explicit_fidelity(base, moved, case) == pytest.approx(3 / 5)
    controls = {p: reads("red", "blue", shape="circle") for p in case.control}
    changed = {p: reads("red", "green", shape="circle") for p in case.control}
    assert control_preservation(controls, controls, case) == 1.0 and control_preservation(controls, changed, case) == 0.5


def test_demo_only_unlearn_writes_every_figure_for_every_method(tmp_path):
    assert main(["demo", "--only", "unlearn", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "unlearn" / "summary.json").read_text())
    methods = summary["cases"]["triangle"]["methods"]
    assert set(methods) == {"u-loba", "leco-erase", "negative-prompt"}
    assert all(set(COLUMNS) <= set(figures) for figures in methods.values())
    assert methods["negative-prompt"]["train_seconds"] == 0.0
    assert set(summary["cases"]["triangle"]["verdict"]["u-loba_beats"]) == {"leco-erase", "negative-prompt"}
    for method in methods:
        assert (tmp_path / "unlearn" / "triangle" / method / "grid.png").is_file()
    assert (tmp_path / "unlearn" / "triangle" / "u-loba" / "slider.safetensors").is_file()
    assert not (tmp_path / "summary.json").exists()  # --only unlearn: the slider part did not run


@pytest.mark.parametrize("name", ["square", "large"])
def test_the_other_biases_train_with_the_same_recipe(tmp_path, name):
    from loba.toyworld.unlearn_demo import run_unlearn

    summary = run_unlearn(tmp_path, cases=(name,), methods=("u-loba",), quick=True, log=lambda _: None)
    assert summary["cases"][name]["caption"] == UNLEARN_CASES[name].caption
    assert (tmp_path / name / "u-loba" / "slider.safetensors").is_file()


def test_unknown_case_is_refused_by_the_cli(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--only", "unlearn", "--unlearn-cases", "hexagon", "--out", "x"])
    assert "hexagon" in capsys.readouterr().err
