"""The prompt-switch ceiling (loba/toyworld/prompt_switch.py, benchmarks.prompt_switch): switching never is the base
prompt's own sample, switching from the first step is the pole prompt's, a switch in between is neither, and the
figures count what the reader sees against the same seed's base sample."""

import numpy as np
import pytest

from benchmarks.prompt_switch import main
from loba.toyworld.prompt_switch import FROM_THE_START, NEVER, sample_with_switch, switch_figures
from loba.toyworld.reader import ReadResult
from loba.toyworld.sampling import ToySampler, load_toy_components

SEEDS = [3, 4]
STEPS = 4


@pytest.fixture(scope="module")
def sampler():
    return ToySampler(load_toy_components())


def test_never_and_from_the_start_are_the_two_prompts_own_samples(sampler):
    base = sampler.sample(["a circle"] * 2, SEEDS, steps=STEPS)
    pole = sampler.sample(["a large circle"] * 2, SEEDS, steps=STEPS)
    assert np.array_equal(sample_with_switch(sampler, "a circle", "a large circle", NEVER, SEEDS, STEPS), base)
    assert np.array_equal(sample_with_switch(sampler, "a circle", "a large circle", FROM_THE_START, SEEDS, STEPS), pole)
    grid = sampler.schedule.ddim_grid(STEPS).tolist()
    halfway = sample_with_switch(sampler, "a circle", "a large circle", grid[1] + 1, SEEDS, STEPS)
    assert not np.array_equal(halfway, base) and not np.array_equal(halfway, pole)


def _read(shape, color, size, background) -> ReadResult:
    return ReadResult(shape, color, size, 0.1, background, (32.0, 32.0), True)


def test_kept_counts_samples_whose_other_attributes_all_match_and_effect_the_pole_value():
    base = [_read("circle", "red", "medium", "light"), _read("circle", "blue", "medium", "dark")]
    switched = [_read("circle", "red", "large", "light"), _read("circle", "green", "large", "dark")]
    figures = switch_figures(base, switched, "a circle", "a large circle", 800, "size", "large")
    assert figures.kept == 0.5 and figures.effect == 1.0
    assert figures.per_attribute == {"shape": 1.0, "color": 0.5, "background": 1.0}


def test_the_benchmark_prints_one_row_per_pole_and_switch(capsys, tmp_path):
    assert main(["--samples", "2", "--steps", "3", "--switch", "0,1001", "--cases", "0", "--json",
                 str(tmp_path / "rows.json")]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| size | a circle |")]
    assert len(rows) == 4  # large, small x T = 0, 1001
    assert "| a large circle | 0 | 1.000 |" in printed, "never switching keeps everything"
