"""One source for the prompt entries' bounds: prompt files refuse what the prompt nodes' widgets cap."""

import pytest
from support.prompt_files import load_error

from loba.config.prompt_bounds import PromptEntryBounds, entry_limit
from loba.prompts import PromptPair


@pytest.mark.parametrize("line, field, text", [
    ("resolution = 8000000", "resolutions", "8000000: must be in [8, 8192]"),
    ("resolutions = [[512, 512], [512, 9000]]", "resolutions", "9000: must be in [8, 8192]"),
    ("batch_size = 512", "batch_size", "512: must be in [1, 64]"),
    ("guidance_scale = 1e6", "guidance_scale", "must be in [-100, 100]"),
    ("multiplier = 50.0", "multiplier", "must be in [-10, 10]"),
    ("weight = 1e9", "weight", "must be in [0, 100]"),
    ("guidance_scale = nan", "guidance_scale", "must be a finite number"),
    ("weight = inf", "weight", "must be a finite number"),
])
def test_a_prompt_file_is_held_to_the_node_bounds(tmp_path, line, field, text):
    message = load_error(tmp_path, f'[[prompts]]\ntarget = "cat"\n{line}\n', "prompts[0]", field)
    assert text in message


def test_the_bounds_are_the_widgets_and_the_edges_are_accepted():
    assert entry_limit("resolution", "max") == 8192 and entry_limit("batch_size", "max") == 64
    pair = PromptPair("cat", resolutions=((8192, 8)), batch_size=64, guidance_scale=-100.0, multiplier=10.0, weight=100.0)
    assert pair.batch_size == 64 and PromptEntryBounds().weight == 1.0
