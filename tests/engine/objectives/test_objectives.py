"""The targets against hand computation: erase/enhance signs and slider poles."""

import pytest
import torch

from loba.objectives.actions import OBJECTIVES, TargetContext
from loba.prompts import PromptPair, SliderTarget

PROMPTS = ("target", "pos", "uncond", "neutral", "P", "N", "")


@pytest.fixture
def teacher():
    gen = torch.Generator().manual_seed(0)
    return {p: torch.randn(2, 4, 8, 8, generator=gen) for p in PROMPTS}


def target_of(pair, teacher):
    return OBJECTIVES.get(pair.action).combine(pair, teacher, TargetContext(progress=0.5, timestep=500))


@pytest.mark.parametrize("g", [1.0, 2.5])
def test_erase_is_neutral_minus_guided_offset(teacher, g):
    pair = PromptPair(target="target", positive="pos", unconditional="uncond", neutral="neutral", action="erase", guidance_scale=g)
    expected = teacher["neutral"] - g * (teacher["pos"] - teacher["uncond"])
    assert torch.allclose(target_of(pair, teacher), expected)


@pytest.mark.parametrize("g", [1.0, 4.0])
def test_enhance_is_neutral_plus_guided_offset(teacher, g):
    pair = PromptPair(target="target", positive="pos", unconditional="uncond", neutral="neutral", action="enhance", guidance_scale=g)
    expected = teacher["neutral"] + g * (teacher["pos"] - teacher["uncond"])
    assert torch.allclose(target_of(pair, teacher), expected)


@pytest.mark.parametrize("g", [1.0, 0.5])
def test_repair_pulls_the_target_toward_its_fixed_prompt(teacher, g):
    pair = PromptPair(target="target", positive="pos", action="repair", guidance_scale=g)
    assert OBJECTIVES.get("repair").teacher_prompts(pair) == ("target", "pos")
    expected = teacher["target"] + g * (teacher["pos"] - teacher["target"])
    assert torch.allclose(target_of(pair, teacher), expected)
    assert torch.allclose(target_of(PromptPair(target="target", positive="pos", action="repair"), teacher), teacher["pos"],
                          atol=1e-6)


def test_leco_defaults_make_erase_exactly_esd(teacher):
    # positive = target, uncond = "", neutral = uncond: target -> eps("") - (eps(target) - eps("")).
    pair = PromptPair(target="target")
    assert pair.positive == "target" and pair.neutral == "" and pair.action == "erase"
    expected = teacher[""] - (teacher["target"] - teacher[""])
    assert torch.allclose(target_of(pair, teacher), expected)


def test_teacher_prompts_are_deduplicated():
    pair = PromptPair(target="target")  # positive == target, neutral == unconditional == ""
    assert OBJECTIVES.get("erase").teacher_prompts(pair) == ("", "target")


@pytest.mark.parametrize("poles", [("P", "N"), ("P", ""), ("", "N")])
def test_slider_pairs_push_plus_toward_positive_and_minus_toward_negative(teacher, poles):
    positive, negative = poles
    slider = SliderTarget(target_class="target", positive=positive, negative=negative, neutrals=("neutral",),
                          multiplier=1.5, guidance_scale=2.0)
    pairs = slider.expand()
    assert len(pairs) == (4 if positive and negative else 2)
    # The direction the +m slider moves toward: P - N (a missing pole is the empty prompt).
    direction = teacher[positive] - teacher[negative]
    for pair in pairs:
        assert pair.target == "target" and abs(pair.multiplier) == 1.5
        sign = 1.0 if pair.multiplier > 0 else -1.0
        expected = teacher["neutral"] + sign * 2.0 * direction
        assert torch.allclose(target_of(pair, teacher), expected, atol=1e-6), pair.name
