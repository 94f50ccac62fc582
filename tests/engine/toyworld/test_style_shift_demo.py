"""ST-LOBA's measurement on the entangled world: the recipes, the figures by hand, the demo's plumbing."""

import json

import pytest

from loba.cli.main import main
from loba.config.runfile import split_run_table
from loba.toyworld.entangled_captions import parse_entangled
from loba.toyworld.style_shift_demo import COLUMNS, STYLE_CASES, recipe_prompts, style_figures


@pytest.mark.parametrize("name", list(STYLE_CASES))
def test_each_style_recipe_styles_every_content_prompt_and_only_adds_the_style(name):
    case = STYLE_CASES[name]
    table, folder, content = recipe_prompts(case, "layered")
    _, config, prompts = split_run_table(table, folder, case.recipe("layered"))
    [entry] = prompts.entries
    for prompt, styled in entry.content:
        # The styled form names everything the content prompt names, plus the new style: nothing else may move.
        assert parse_entangled(styled) == {**parse_entangled(prompt), case.attribute: case.new}
        assert styled == case.styled(prompt)
    assert not set(case.held_out) & set(content)  # held-out content prompts are never trained
    assert all(parse_entangled(p)[case.attribute] == case.old for p in entry.explicit_prompts())
    assert entry.layers and all(p.mask_outside == "hold" for p in prompts.pairs())
    whole, _, _ = recipe_prompts(case, "whole")
    _, _, unlayered = split_run_table(whole, folder, "whole")
    assert all(not p.layers and p.mask_outside == "ignore" for p in unlayered.pairs())


def test_figures_against_hand_computation():
    case = STYLE_CASES["pastel"]
    read = lambda palette, color="red": {"shape": "circle", "color": color, "size": "small", "background": "dark",  # noqa: E731
                                         "palette": palette, "linework": "filled"}
    base = {"a red circle": [read("vivid"), read("vivid"), read("pastel"), read("vivid")],
            "a pastel red circle": [read("pastel"), read("pastel"), read("pastel", "blue"), read("vivid", "blue")],
            **{p: [read("vivid")] * 4 for p in case.explicit_old}}
    moved = {"a red circle": [read("pastel"), read("pastel", "blue"), read("pastel"), read("vivid")],
             **{p: [read("vivid"), read("vivid"), read("pastel"), read("vivid")] for p in case.explicit_old}}
    figures = style_figures(case, ["a red circle"], base, moved)
    assert figures["took_style"] == 0.75 and figures["base_style"] == 0.25 and figures["ceiling"] == 0.75
    assert figures["prompted_kept"] == 0.5  # the styled prompt at the same seeds draws two of the circles blue
    assert figures["kept"] == 0.75 and figures["kept_each"]["color"] == 0.75 and figures["kept_each"]["shape"] == 1.0
    assert figures["explicit_old_w0"] == 1.0 and figures["explicit_old_w1"] == 0.75


def test_demo_only_style_writes_every_figure_for_both_variants(tmp_path):
    assert main(["demo", "--only", "style", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "style" / "summary.json").read_text())
    variants = summary["cases"]["pastel"]["variants"]
    assert set(variants) == {"layered", "whole"}
    assert all(set(COLUMNS) <= set(figures) and "held_out" in figures for figures in variants.values())
    for variant in variants:
        assert (tmp_path / "style" / "pastel" / variant / "grid.png").is_file()
        assert (tmp_path / "style" / "pastel" / variant / "slider.safetensors").is_file()


def test_unknown_style_is_refused_by_the_cli(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--only", "style", "--style-cases", "cubist", "--out", "x"])
    assert "cubist" in capsys.readouterr().err
