"""ST-LOBA: the style-shift entry, its over-layered regions (the "over" stack, per-prompt words), the stacked map in a
real step (outside held, no hook left), the file form and its round trip, bad input named before model work."""

import pytest
import torch
from support.prompt_files import load, load_error

from loba.config import TrainConfig
from loba.errors import SpecError
from loba.prompts import AnchorPrompt, PromptSet
from loba.prompts.layers import RegionLayer, layer_latent_mask, stack_layers
from loba.prompts.loader import prompt_set_from_dict
from loba.prompts.region import AttentionRegion
from loba.prompts.style_shift import StyleShiftEntry, StyleShiftPair
from loba.train.attention_maps import cross_attention_layers
from loba.train.loop import build_network
from loba.train.step import SliderStep

CONTENT = ("a red circle", "a blue square")
SHAPE = RegionLayer(weight=1.0, region=AttentionRegion("circle"), words=("circle", "square"))
BASE = RegionLayer(weight=0.25, box=(0.0, 0.0, 1.0, 1.0))


def entry(**changes) -> StyleShiftEntry:
    fields = dict(style="outlined", content=CONTENT, replaces="filled", resolutions=((64, 64),), batch_size=2)
    return StyleShiftEntry(**{**fields, **changes})


def test_each_content_prompt_becomes_a_reattach_pair_to_its_styled_form():
    pairs = entry(content=("a red circle", ("a blue square", "a blue outlined square"))).expand()
    assert [(p.target, p.positive, p.action) for p in pairs] == [
        ("a red circle", "a red circle, outlined", "reattach"), ("a blue square", "a blue outlined square", "reattach")]
    assert all(isinstance(p, StyleShiftPair) and p.weight == 1.0 and p.mask_outside == "ignore" for p in pairs)


def test_templates_fill_only_their_two_fields():
    [pair] = entry(content=("a cat",), template="{style} painting of {content} {seed}").expand()
    assert pair.positive == "outlined painting of a cat {seed}"  # other braces stay as typed, never a format error


def test_explicit_old_style_requests_are_anchors():
    anchors = PromptSet((entry(),), (AnchorPrompt(""),)).training_anchors()
    assert [a.prompt for a in anchors] == ["", "a red circle, filled", "a blue square, filled"]
    assert PromptSet((entry(replaces=""),)).training_anchors() == ()  # no old style named: nothing to hold
    assert [a.prompt for a in PromptSet((entry(explicit=("a red filled circle",)),)).training_anchors()] == \
        ["a red filled circle"]


def test_layers_pick_each_prompts_own_word_and_hold_the_outside():
    pairs = entry(layers=(BASE, SHAPE)).expand()
    assert [p.layers[1].region.word for p in pairs] == ["circle", "square"]
    assert all(p.mask_outside == "hold" and p.layers[0].box == (0.0, 0.0, 1.0, 1.0) for p in pairs)


def test_the_over_stack_lets_later_layers_win_and_stays_in_0_1():
    inside = torch.zeros(1, 1, 4, 4)
    inside[..., :2, :] = 1.0
    everywhere = torch.ones(1, 1, 4, 4)
    stacked = stack_layers([0.25, 1.0], [everywhere, inside])
    assert torch.equal(stacked[0, 0, :2], torch.ones(2, 4)) and torch.equal(stacked[0, 0, 2:], torch.full((2, 4), 0.25))
    soft = stack_layers([1.0, 0.0], [everywhere, torch.full((1, 1, 4, 4), 0.5)])  # a half-covering weight-0 layer
    assert torch.allclose(soft, torch.full((1, 1, 4, 4), 0.5))
    box = layer_latent_mask(RegionLayer(box=(0.0, 0.0, 1.0, 0.5)), (8, 8))
    assert box.shape == (1, 1, 8, 8) and float(box[..., :4].mean()) == 1.0 and float(box[..., 4:].sum()) == 0.0


def make_step(backend, prompts, config):
    network = build_network(backend, config)
    return SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts())), network


def test_a_layered_step_uses_the_stacked_map_holds_the_rest_and_leaves_no_hook(sd1_backend):
    config = TrainConfig().replace(max_denoising_steps=4, seed=3)
    prompts = PromptSet((entry(layers=(BASE, SHAPE)),), (AnchorPrompt(""),))
    step, network = make_step(sd1_backend, prompts, config)
    attention = cross_attention_layers(sd1_backend.unet)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(0))
        result = step.run(plan)
        result.loss.backward()
    weights = plan.region_mask
    assert weights.shape == (2, 1, 8, 8)
    assert float(weights.min()) == pytest.approx(0.25) and float(weights.max()) == pytest.approx(1.0)  # base, shape
    assert set(torch.round(weights * 4).unique().tolist()) <= {1.0, 4.0}  # a hard region over a 0.25 base
    assert torch.isfinite(result.loss) and any(p.grad is not None for p in network.parameters())
    assert all(not layer.to_q._forward_hooks and not layer.to_k._forward_hooks for layer in attention)


def test_the_held_outside_is_the_frozen_prediction(sd1_backend):
    """Where every layer weighs 0, the target is the teacher's own prediction for the content prompt."""
    config = TrainConfig().replace(max_denoising_steps=4, seed=3)
    zero_then_one = (RegionLayer(weight=0.0, box=(0.0, 0.0, 1.0, 1.0)), RegionLayer(weight=1.0, box=(0.0, 0.0, 1.0, 0.5)))
    prompts = PromptSet((entry(layers=zero_then_one, content=("a red circle",)),))
    step, network = make_step(sd1_backend, prompts, config)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(0))
        x_t = step.denoise(plan)
        teacher = step.teachers(plan, x_t)
    assert torch.equal(plan.region_mask[..., 4:], torch.zeros(1, 1, 8, 4))
    target = step.target(plan, teacher)
    held = plan.region_mask * target + (1 - plan.region_mask) * teacher["a red circle"]
    assert torch.equal(held[..., 4:], teacher["a red circle"][..., 4:])


def test_file_form_and_round_trip(tmp_path):
    spec = load(tmp_path, """
        [[style_shift]]
        style = "outlined"
        replaces = "filled"
        content = ["a red circle", { prompt = "a blue square", styled = "a blue outlined square" }]
        layers = [{ box = [0, 0, 1, 1], weight = 0.2 }, { region = { word = ["circle", "square"], grow = 1 }, weight = 1.0 }]
        resolution = 64
        batch_size = 2
    """)
    pairs = spec.pairs()
    assert [p.positive for p in pairs] == ["a red circle, outlined", "a blue outlined square"]
    assert [p.layers[1].region.word for p in pairs] == ["circle", "square"] and pairs[0].layers[1].region.grow == 1
    again = prompt_set_from_dict(spec.to_dict())
    assert [(p.target, p.positive, [layer.to_dict() for layer in p.layers]) for p in again.pairs()] == \
        [(p.target, p.positive, [layer.to_dict() for layer in p.layers]) for p in pairs]
    assert [a.prompt for a in again.training_anchors()] == ["a red circle, filled", "a blue square, filled"]


@pytest.mark.parametrize("changes, field, words", [
    ({"content": ()}, "content", "needs the content prompts"),
    ({"style": " "}, "style", "is empty"),
    ({"content": ("a circle", "a circle")}, "content", "listed twice"),
    ({"content": (("a circle", "a circle"),)}, "content[0].styled", "nothing would shift"),
    ({"template": "{content} art"}, "template", "{style}"),
    ({"layers": (RegionLayer(weight=0.0, box=(0, 0, 1, 1)),)}, "layers", "weight 0"),
    ({"layers": (SHAPE, BASE)}, "layers[1].box", "hides every layer under it"),
    ({"layers": (SHAPE, SHAPE)}, "layers[1]", "same region"),
    ({"layers": (RegionLayer(region=AttentionRegion("triangle")),)}, "region.word", "none of ['triangle']"),
])
def test_bad_style_shifts_name_the_field(changes, field, words):
    with pytest.raises(SpecError, match=words.replace("[", r"\[").replace("{", r"\{")) as caught:
        entry(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize("layer, field", [({"weight": 1.5, "box": [0, 0, 1, 1]}, "weight"),
                                          ({"weight": 1.0}, "region"),
                                          ({"box": [0, 0, 1, 1], "region": {"word": "circle"}}, "region"),
                                          ({"box": [0.5, 0, 0.2, 1]}, "box"),
                                          ({"region": {"word": []}}, "region.word"),
                                          ({"size": 2, "box": [0, 0, 1, 1]}, "size")])
def test_bad_layers_name_the_field(tmp_path, layer, field):
    import json

    text = f'[[style_shift]]\nstyle = "outlined"\ncontent = ["a circle"]\nlayers = [{json.dumps(layer)}]\n'
    text = text.replace('": ', '" = ').replace('{"', '{ "').replace(', "', ', "')
    for key in ("weight", "box", "region", "word", "size"):
        text = text.replace(f'"{key}" =', f"{key} =")
    load_error(tmp_path, text, "style_shift[0] layers[0]", field)
