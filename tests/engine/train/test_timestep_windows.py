"""Per-entry timestep schedules: a pair trains only inside its window, as often as its curve says; a flat full
window draws exactly as before; bad windows are refused before any model work, naming entry and field."""

from collections import Counter

import pytest
import torch
from support.backends import make_backend
from support.prompt_files import load, load_error

from loba.config import TrainConfig
from loba.errors import SpecError
from loba.objectives.timestep_curves import TIMESTEP_CURVES, schedule_plot
from loba.prompts import PromptPair, PromptSet, SliderTarget
from loba.train.loop import build_network
from loba.train.step import SliderStep
from loba.train.validate import validate_before_model_work

CONFIG = TrainConfig().replace(max_denoising_steps=20, seed=3)


def pair(**schedule) -> PromptPair:
    return PromptPair(target="a red circle", positive="red", neutral="a circle", resolutions=((64, 64),), **schedule)


def step_for(backend, *pairs) -> SliderStep:
    prompts = PromptSet(entries=pairs)
    return SliderStep(backend, build_network(backend, CONFIG), prompts, CONFIG, backend.encode_prompts(prompts.all_prompts()))


def drawn_timesteps(step: SliderStep, n: int = 400) -> list[int]:
    generator = torch.Generator().manual_seed(0)
    return [step.plan(generator).timestep for _ in range(n)]


@pytest.fixture(scope="module")
def backend(tokenizer):
    return make_backend(tokenizer, "sd1")


def test_a_flat_full_window_draws_exactly_as_a_pair_without_one(backend):
    default = drawn_timesteps(step_for(backend, pair()), 50)
    explicit = drawn_timesteps(step_for(backend, pair(timestep_window=(0, 1000), timestep_curve="flat")), 50)
    assert default == explicit and len(set(default)) > 5


def test_a_pair_trains_only_inside_its_window(backend):
    layout = drawn_timesteps(step_for(backend, pair(timestep_window=(600, 1000))))
    detail = drawn_timesteps(step_for(backend, pair(timestep_window=(0, 400))))
    assert min(layout) >= 600 and max(detail) < 400
    assert len(set(layout)) > 3 and len(set(detail)) > 3  # the whole window, not one point


def test_the_curve_is_how_often_each_timestep_trains(backend):
    rising = Counter(t >= 500 for t in drawn_timesteps(step_for(backend, pair(timestep_curve="rising"))))
    falling = Counter(t >= 500 for t in drawn_timesteps(step_for(backend, pair(timestep_curve="falling"))))
    assert rising[True] > 1.5 * rising[False] and falling[False] > 1.5 * falling[True]
    bell = drawn_timesteps(step_for(backend, pair(timestep_window=(200, 800), timestep_curve="bell")))
    middle = sum(350 <= t < 650 for t in bell) / len(bell)
    assert middle > 0.6 and min(bell) >= 200 and max(bell) < 800


def test_each_pair_keeps_its_own_window(backend):
    step = step_for(backend, PromptPair(target="a", timestep_window=(700, 1000), resolutions=((64, 64),), name="layout"),
                    PromptPair(target="b", timestep_window=(0, 300), resolutions=((64, 64),), name="detail"))
    generator = torch.Generator().manual_seed(1)
    plans = [step.plan(generator) for _ in range(200)]
    assert all((p.timestep >= 700) if p.pair.target == "a" else (p.timestep < 300) for p in plans)
    assert {p.pair.target for p in plans} == {"a", "b"}


@pytest.mark.parametrize("window", [(-1, 500), (0, 1001), (500, 500), (600, 400), (0.5, 10), ("a", 3), (1, 2, 3)])
def test_a_window_outside_the_range_is_refused(window):
    with pytest.raises(SpecError) as caught:
        pair(timestep_window=window)
    assert caught.value.field == "timestep_window" and "[0, 1000)" in str(caught.value)


def test_an_unknown_curve_is_refused_listing_the_registered_ones():
    with pytest.raises(SpecError, match="flat, rising, falling, bell") as caught:
        pair(timestep_curve="zigzag")
    assert caught.value.field == "timestep_curve"


def test_a_window_with_no_trained_timestep_is_refused_before_model_work():
    narrow = PromptPair(target="a red circle", timestep_window=(990, 999), name="prompts[0]")
    config = TrainConfig().replace(max_denoising_steps=4)
    with pytest.raises(SpecError) as caught:
        validate_before_model_work(PromptSet(entries=(narrow,)), config)
    assert (caught.value.entry, caught.value.field) == ("prompts[0]", "timestep_window")
    assert "widen the window" in str(caught.value)


def test_run_file_keys_round_trip_and_reach_every_pair(tmp_path):
    spec = load(tmp_path, """
        [[targets]]
        target_class = "a circle"
        positive = "a large circle"
        negative = "a small circle"
        timestep_window = [600, 1000]
        timestep_curve = "rising"
    """)
    assert {(p.timestep_window, p.timestep_curve) for p in spec.pairs()} == {((600, 1000), "rising")}
    [target] = spec.entries
    assert isinstance(target, SliderTarget) and target.to_dict()["timestep_window"] == [600, 1000]
    plain = load(tmp_path, '[[prompts]]\ntarget = "cat"\n')
    assert "timestep_window" not in plain.pairs()[0].to_dict()  # unset: files and fingerprints stay as before


def test_a_bad_window_in_a_file_names_the_entry(tmp_path):
    load_error(tmp_path, '[[prompts]]\ntarget = "cat"\ntimestep_window = [400, 200]\n', "prompts[0]", "timestep_window")


def test_reattach_entries_pass_their_window_to_every_pair(tmp_path):
    spec = load(tmp_path, """
        [[reattach]]
        caption = "a triangle"
        redirect = ["a blue triangle", "a green triangle"]
        timestep_window = [500, 1000]
    """)
    assert [p.timestep_window for p in spec.pairs()] == [(500, 1000), (500, 1000)]


def test_the_schedule_plot_draws_the_window():
    image = schedule_plot((600, 1000), "rising")
    assert image.size == (320, 120)
    pixels = image.load()
    # Blue curve pixels exist only over the window (t >= 600, the left part: t = 1000 is drawn at the left).
    blue = [x for x in range(image.size[0]) for y in range(8, 98) if pixels[x, y] == (30, 80, 200)]
    assert blue and max(blue) < 8 + 0.45 * (320 - 16) and set(TIMESTEP_CURVES) >= {"flat", "rising", "falling", "bell"}
