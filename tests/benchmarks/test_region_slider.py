"""benchmarks.region_slider: both recipes train and score through the demo's path (a --quick smoke run: the
figures are meaningless, the plumbing is not), the region recipe gives every pair its shape word's inverted
attention with the outside held, and the table reads the summary."""

from pathlib import Path

from benchmarks.region_slider import main, table
from loba.config.runfile import split_run_table
from loba.prompts.loader import read_prompt_table
from loba.toyworld.demo import recipe_path


def test_the_region_recipe_holds_every_object_by_its_own_shape_word():
    path = recipe_path("background-slider", "train", "region")
    _, _, prompts = split_run_table(read_prompt_table(path), path.parent, path.name)
    pairs = prompts.pairs()
    assert len(pairs) == 60 and all(p.mask_outside == "hold" and p.region.invert for p in pairs)
    assert all(p.region.word in p.target.split() for p in pairs)
    plain = recipe_path("background-slider", "train", "loba")
    _, _, whole = split_run_table(read_prompt_table(plain), plain.parent, plain.name)
    assert [p.target for p in whole.pairs()] == [p.target for p in pairs] and all(p.region is None for p in whole.pairs())


def test_a_quick_run_prints_both_methods_side_by_side(tmp_path: Path, capsys):
    assert main(["--out", str(tmp_path), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "| whole image |" in printed and "| attention region |" in printed
    assert (tmp_path / "summary.json").is_file()
    two = {"a": [{"light_at_plus1": 0.5, "dark_at_minus1": 0.5, "kept_at_plus1": 1.0, "kept_at_minus1": 1.0,
                  "spearman": None, "train_seconds": 3.0}] * 2}
    assert "0.500 / 0.500 / 0.500" in table(two) and "| - |" in table(two)
