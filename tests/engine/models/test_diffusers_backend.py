"""The diffusers backend: loading each family from a folder, parameterization, and training options."""

import pytest
import torch
from support.backends import assert_bit_identical, snapshot
from support.tiny_models import tiny_pipeline

from loba.config import TrainConfig
from loba.errors import UnsupportedModelError
from loba.models.backend import SizeConditioning
from loba.models.diffusers_backend import DiffusersBackend
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import train


@pytest.mark.parametrize("kind, prediction_type", [("sd1", "epsilon"), ("sd2", "v_prediction"), ("sdxl", "epsilon")])
def test_from_pretrained_reads_family_and_parameterization(tmp_path, kind, prediction_type):
    pipe = tiny_pipeline(tmp_path / kind, kind, prediction_type)
    backend = DiffusersBackend.from_pretrained(str(tmp_path / kind))
    assert backend.family == kind and backend.prediction_type == prediction_type
    assert torch.allclose(backend.alphas_cumprod(), pipe.scheduler.alphas_cumprod.double())
    cond = backend.encode_prompts(["a red circle", ""])
    assert set(cond) == {"a red circle", ""}
    assert (cond[""].pooled is not None) == (kind == "sdxl")
    x = torch.randn(1, 4, 8, 8)
    out = backend.predict(x, torch.tensor([500]), cond["a red circle"], SizeConditioning.plain(64, 64))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_v_parameterization_override(tmp_path):
    tiny_pipeline(tmp_path / "p", "sd2", "epsilon")
    backend = DiffusersBackend.from_pretrained(str(tmp_path / "p"), prediction_type="v_prediction")
    assert backend.prediction_type == "v_prediction"


def test_unknown_parameterization_is_refused(sd1_backend):
    with pytest.raises(UnsupportedModelError, match="epsilon, v_prediction"):
        DiffusersBackend(sd1_backend.unet, sd1_backend.text_encoders, sd1_backend.tokenizers, sd1_backend.alphas_cumprod(), "flow")


PAIR = PromptSet(entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),)),))
SHORT = TrainConfig().replace(max_denoising_steps=4, max_train_steps=3, seed=2)


def test_gradient_checkpointing_trains_the_same_and_is_switched_off_after(sd1_backend):
    plain = train(sd1_backend, PAIR, SHORT)
    checkpointed = train(sd1_backend, PAIR, SHORT.replace(gradient_checkpointing=True))
    assert checkpointed.losses == pytest.approx(plain.losses, rel=1e-5)
    assert not sd1_backend.unet.is_gradient_checkpointing


def test_bf16_autocast_and_a_bf16_model_keep_fp32_masters(tokenizer):
    from support.backends import make_backend

    backend = make_backend(tokenizer, "sd1")
    backend.unet.to(torch.bfloat16)
    for encoder in backend.text_encoders:
        encoder.to(torch.bfloat16)
    before = snapshot(backend.unet)
    result = train(backend, PAIR, SHORT.replace(mixed_precision="bf16"))
    assert all(p.dtype == torch.float32 for p in result.network.parameters())
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses)
    assert_bit_identical(backend.unet, before)


def test_the_models_own_settings_are_restored(sd1_backend):
    sd1_backend.unet.enable_gradient_checkpointing()
    sd1_backend.unet.train()
    train(sd1_backend, PAIR, SHORT)  # gradient_checkpointing=False for the run
    assert sd1_backend.unet.is_gradient_checkpointing and sd1_backend.unet.training
    sd1_backend.unet.disable_gradient_checkpointing()
    sd1_backend.unet.eval()


def test_gradient_checkpointing_really_recomputes(sd1_backend):
    probe = sd1_backend.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k
    counts = {}
    for enabled in (False, True):
        calls: list[int] = []
        handle = probe.register_forward_hook(lambda *args, calls=calls: calls.append(1))
        try:
            train(sd1_backend, PAIR, SHORT.replace(gradient_checkpointing=enabled, max_train_steps=1, max_denoising_steps=2))
        finally:
            handle.remove()
        counts[enabled] = len(calls)
    assert counts[True] > counts[False]


def test_fp16_model_trains_with_loss_scaling(tokenizer):
    from support.backends import make_backend

    backend = make_backend(tokenizer, "sd1")
    backend.unet.to(torch.float16)
    for encoder in backend.text_encoders:
        encoder.to(torch.float16)
    result = train(backend, PAIR, SHORT)
    assert all(p.dtype == torch.float32 for p in result.network.parameters())
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses)
