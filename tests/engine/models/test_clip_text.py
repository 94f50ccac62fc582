"""ComfyUI's prompt rules in the engine: 75-token chunks with their own BOS/EOS, clip skip layers, the clip_skip key."""

from __future__ import annotations

import pytest
import torch
from support.tiny_models import sd_alphas_cumprod, tiny_text_encoder, tiny_unet

from loba.config.runfile import load_run_file
from loba.errors import ConfigError
from loba.models.clip_text import equal_lengths, hidden_layer, token_chunks
from loba.models.diffusers_backend import DiffusersBackend

BOS, EOS = 512, 513  # the tiny character tokenizer's specials (support/tiny_models.py)


def _text(tokenizer, n: int) -> str:
    text = "ab" * n  # one token a character
    assert len(tokenizer(text, add_special_tokens=False).input_ids) == 2 * n
    return text[:n]


@pytest.mark.parametrize("n, chunks", [(0, 1), (1, 1), (75, 1), (76, 2), (150, 2), (151, 3)])
def test_prompts_are_cut_into_75_token_chunks_each_with_bos_and_eos(tokenizer, n, chunks):
    ids = token_chunks(tokenizer, _text(tokenizer, n), 77)
    assert ids.shape == (chunks, 77)
    assert (ids[:, 0] == BOS).all()
    body = [row[1:row.tolist().index(EOS)] for row in ids]
    assert [len(b) for b in body[:-1]] == [75] * (chunks - 1) and len(body[-1]) == n - 75 * (chunks - 1)
    assert torch.cat(body).tolist() == tokenizer(_text(tokenizer, n), add_special_tokens=False).input_ids


def test_clip_skip_names_layers_from_the_end_with_the_families_defaults():
    assert hidden_layer("sd1", None, 12) == -1 and hidden_layer("sd1", 2, 12) == -2
    assert hidden_layer("sdxl", None, 12) == -2 and hidden_layer("sdxl", 1, 12) == -1
    # Diffusers' SD2 encoders (23 layers) lost OpenCLIP-H's last one: their last layer is clip skip 2.
    assert hidden_layer("sd2", None, 23) == -1 and hidden_layer("sd2", 3, 23) == -2
    for family, skip, layers in (("sd2", 1, 23), ("sd1", 13, 12), ("sd1", 0, 12)):
        with pytest.raises(ConfigError, match="clip_skip"):
            hidden_layer(family, skip, layers)


def test_a_clip_skip_the_encoder_cannot_honor_fails_when_the_backend_is_built(tokenizer):
    with pytest.raises(ConfigError, match="clip_skip: 3 skips more layers than the text encoder has"):
        DiffusersBackend(tiny_unet("sd1"), [tiny_text_encoder()], [tokenizer], sd_alphas_cumprod(), clip_skip=3)


def test_long_prompts_are_no_longer_truncated_and_batch_to_one_length(tokenizer):
    backend = DiffusersBackend(tiny_unet("sd1"), [tiny_text_encoder()], [tokenizer], sd_alphas_cumprod(), clip_skip=2)
    long, cut = _text(tokenizer, 100), _text(tokenizer, 99)
    cond = backend.encode_prompts([long, cut, "a"])
    assert {c.context.shape for c in cond.values()} == {(1, 154, 32)}
    assert torch.equal(cond["a"].context[:, :77], cond["a"].context[:, 77:])
    assert (cond[long].context[:, :77] - cond[cut].context[:, :77]).abs().max() <= 1e-6  # same first chunk
    assert (cond[long].context[:, 77:] - cond[cut].context[:, 77:]).abs().max() > 1e-4  # the tail is seen


def test_equal_lengths_leaves_equal_contexts_alone():
    a, b = torch.ones(1, 77, 4), torch.zeros(1, 77, 4)
    assert all(x is y for x, y in zip(equal_lengths([a, b]), [a, b]))


def test_the_run_file_takes_clip_skip(tmp_path):
    path = tmp_path / "run.toml"
    body = 'pretrained_model_name_or_path = "toyworld"\n[[prompts]]\ntarget = "a"\npositive = "a b"\n'
    path.write_text(f"clip_skip = 2\n{body}")
    assert load_run_file(path).clip_skip == 2
    path.write_text(body)
    assert load_run_file(path).clip_skip is None
    path.write_text(f"clip_skip = 0\n{body}")
    with pytest.raises(ConfigError, match="clip_skip"):
        load_run_file(path)
