"""Attention regions: the teacher's cross-attention for a word, read inside its own forward, equals the attention
the UNet computes; micro-batching reads the same maps; the region masks the loss and holds the outside; no hook
outlives the step; bad regions are refused before model work."""

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor
from support.prompt_files import load, load_error

from loba.config import TrainConfig
from loba.errors import SpecError, UnsupportedModelError
from loba.models.clip_text import word_positions
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.prompts.region import AttentionRegion
from loba.train.attention_maps import AttentionCapture, cross_attention_layers, region_mask
from loba.train.loop import build_network
from loba.train.step import SliderStep

CONFIG = TrainConfig().replace(max_denoising_steps=4, seed=3)
PROMPT = "a red circle"


def region_pair(**changes) -> PromptPair:
    fields = dict(target=PROMPT, positive="red", neutral="a circle", resolutions=((64, 64),), batch_size=2,
                  region=AttentionRegion("circle", invert=True), mask_outside="hold")
    return PromptPair(**{**fields, **changes})


def make_step(backend, pair, config=CONFIG):
    prompts = PromptSet(entries=(pair,), anchors=(AnchorPrompt("a blue square"),))
    network = build_network(backend, config)
    return SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts())), network


def test_word_positions_follow_the_chunk_layout(tokenizer):
    # The tiny tokenizer is character-level: "a</w>" is 1 token, "red</w>" 3, "circle</w>" 6, after BOS at 0.
    assert word_positions(tokenizer, PROMPT, "circle", 77) == [5, 6, 7, 8, 9, 10]
    assert word_positions(tokenizer, PROMPT, "square", 77) == []
    long = "x " * 80 + "circle"  # the word lands in the second 75-token chunk: BOS + 75 + EOS per chunk
    assert word_positions(tokenizer, long, "circle", 77)[0] == 77 + 1 + 80 - 75


def test_the_capture_equals_the_attention_the_unet_computes(sd1_backend, monkeypatch):
    unet = sd1_backend.unet
    unet.set_attn_processor(AttnProcessor())  # the classic processor materializes its attention probabilities
    recorded, original = [], Attention.get_attention_scores

    def spy(self, query, key, attention_mask=None):
        probs = original(self, query, key, attention_mask)
        if not self.is_cross_attention:
            return probs
        recorded.append(probs.reshape(-1, self.heads, *probs.shape[1:]))
        return probs

    monkeypatch.setattr(Attention, "get_attention_scores", spy)
    positions = sd1_backend.token_positions(PROMPT, "circle")
    cond = sd1_backend.encode_prompts(["", PROMPT])
    x = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.cat([cond[""].context.repeat(2, 1, 1), cond[PROMPT].context.repeat(2, 1, 1)])
    capture = AttentionCapture(cross_attention_layers(unet), positions, 2, 4)  # the prompt's rows only
    with torch.no_grad(), capture.hooked():
        unet(x, torch.full((4,), 500), encoder_hidden_states=context)
    assert len(capture.maps) == len(recorded) > 0
    for mine, probs in zip(capture.maps, recorded):
        expected = probs[2:4, :, :, positions].sum(-1).mean(1)
        torch.testing.assert_close(mine, expected, atol=1e-5, rtol=1e-4)
    assert all(not layer.to_q._forward_hooks and not layer.to_k._forward_hooks for layer in cross_attention_layers(unet))


def test_micro_batched_teachers_read_the_same_region(sd1_backend):
    masks = []
    for size in (0, 1):
        step, network = make_step(sd1_backend, region_pair(), CONFIG.replace(teacher_batch_size=size))
        with sd1_backend.training_session(), network.attached(sd1_backend.unet):
            plan = step.plan(torch.Generator().manual_seed(0))
            step.teachers(plan, step.denoise(plan))
        masks.append(plan.region_mask)
    assert masks[0].shape == (2, 1, 8, 8)
    torch.testing.assert_close(masks[0], masks[1])


def test_a_region_step_masks_the_loss_holds_the_outside_and_leaves_no_hook(sd1_backend):
    step, network = make_step(sd1_backend, region_pair())
    layers = cross_attention_layers(sd1_backend.unet)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(0))
        result = step.run(plan)
        result.loss.backward()
    mask = plan.region_mask
    assert mask is not None and set(mask.unique().tolist()) <= {0.0, 1.0} and 0 < float(mask.mean()) < 1
    assert torch.isfinite(result.loss) and any(p.grad is not None for p in network.parameters())
    assert all(not layer.to_q._forward_hooks and not layer.to_k._forward_hooks for layer in layers)


def test_region_mask_threshold_invert_grow():
    flat = torch.zeros(1, 16)
    flat[0, 5] = 1.0  # one hot query on a 4x4 layer grid
    hit = region_mask([flat], (4, 4), AttentionRegion("x", threshold=0.5))
    assert hit.shape == (1, 1, 4, 4) and float(hit.sum()) == 1.0 and hit[0, 0, 1, 1] == 1.0
    rest = region_mask([flat], (4, 4), AttentionRegion("x", threshold=0.5, invert=True))
    assert float(rest.sum()) == 15.0
    grown = region_mask([flat], (4, 4), AttentionRegion("x", threshold=0.5, grow=1))
    assert float(grown.sum()) == 9.0
    soft = region_mask([flat + 0.5], (8, 8), AttentionRegion("x", threshold=0.0))  # min-max: an offset does not matter
    assert soft.shape == (1, 1, 8, 8) and float(soft.min()) == 0.0 and float(soft.max()) == 1.0


def test_a_word_missing_from_the_prompt_is_refused_before_model_work():
    with pytest.raises(SpecError, match="not a word of the target prompt") as caught:
        region_pair(region=AttentionRegion("square"))
    assert caught.value.field == "region.word"
    with pytest.raises(SpecError) as caught:
        region_pair(region=AttentionRegion("circ"))  # a part of a word is not a word
    assert caught.value.field == "region.word"


def test_a_mask_and_a_region_together_are_refused():
    with pytest.raises(SpecError, match="not both") as caught:
        region_pair(mask=torch.ones(64, 64))
    assert caught.value.field == "region"


@pytest.mark.parametrize("changes, field", [({"threshold": 1.0}, "region.threshold"), ({"grow": 99}, "region.grow"),
                                            ({"feather": -1.0}, "region.feather"), ({"word": " "}, "region.word"),
                                            ({"invert": "yes"}, "region.invert")])
def test_bad_region_settings_name_the_field(changes, field):
    with pytest.raises(SpecError) as caught:
        AttentionRegion(**{"word": "circle", **changes})
    assert caught.value.field == field


def test_a_model_without_cross_attention_is_refused():
    with pytest.raises(UnsupportedModelError, match="cross-attention"):
        cross_attention_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_run_files_take_a_region_table(tmp_path):
    spec = load(tmp_path, """
        [[targets]]
        target_class = "a circle"
        positive = "a circle on a light background"
        negative = "a circle on a dark background"
        mask_outside = "hold"
        region = { word = "circle", invert = true, grow = 1 }
    """)
    assert {p.region.to_dict()["word"] for p in spec.pairs()} == {"circle"}
    assert all(p.region.invert and p.region.grow == 1 and p.mask_outside == "hold" for p in spec.pairs())
    assert spec.entries[0].to_dict()["region"]["invert"] is True
    load_error(tmp_path, '[[prompts]]\ntarget = "a cat"\nregion = { word = "cat", size = 3 }\n', "prompts[0]", "region.size")
    load_error(tmp_path, '[[prompts]]\ntarget = "a cat"\nregion = { word = "dog" }\n', "prompts[0]", "region.word")
