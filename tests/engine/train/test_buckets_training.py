"""Non-square buckets in training: SDXL size conditioning of the drawn bucket, and sizes SDXL cannot train at
refused before any prompt is encoded."""

import pytest
import torch

from loba.config import TrainConfig
from loba.errors import ConfigError, SpecError
from loba.models.backend import SizeConditioning
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import build_network
from loba.train.run import RunRequest, run_training
from loba.train.step import SliderStep
from loba.train.validate import validate_before_model_work

CONFIG = TrainConfig().replace(max_train_steps=1, max_denoising_steps=3, network_dim=2, seed=3)


def pair_at(*sizes, **extra) -> PromptSet:
    return PromptSet((PromptPair(target="a red circle", positive="red", resolutions=sizes, **extra),))


def test_sdxl_predict_gets_the_size_conditioning_of_each_drawn_bucket(sdxl_backend, monkeypatch):
    prompts = pair_at((64, 128), (128, 64))
    network = build_network(sdxl_backend, CONFIG)
    step = SliderStep(sdxl_backend, network, prompts, CONFIG, sdxl_backend.encode_prompts(prompts.all_prompts()))
    seen, original = [], sdxl_backend.predict

    def spy(x, t, cond, size=None):
        seen.append((tuple(x.shape[-2:]), size))
        return original(x, t, cond, size)

    monkeypatch.setattr(sdxl_backend, "predict", spy)
    plans = [step.plan(torch.Generator().manual_seed(s)) for s in range(8)]
    assert {(p.height, p.width) for p in plans} == {(64, 128), (128, 64)}
    with sdxl_backend.training_session(), network.attached(sdxl_backend.unet):
        for plan in plans[:2]:
            assert plan.size == SizeConditioning((plan.height, plan.width), (0, 0), (plan.height, plan.width))
            assert torch.isfinite(step.run(plan).loss)
    for latent_hw, size in seen:  # every model call of the step: latents of the bucket and its own sizes
        assert size.original == size.target == (latent_hw[0] * 8, latent_hw[1] * 8)


def test_sizes_sdxl_was_not_trained_at_are_refused_before_encoding(sdxl_backend, monkeypatch):
    def no_model_work(prompts):
        raise AssertionError("prompts were encoded before the bad size was refused")

    monkeypatch.setattr(sdxl_backend, "encode_prompts", no_model_work)
    with pytest.raises(SpecError, match=r"field 'resolution': 64x72 .*multiple of 64.*use e.g. 64x64"):
        run_training(RunRequest(pair_at((72, 64)), CONFIG, backend=sdxl_backend))
    with pytest.raises(ConfigError, match=r"resolution: the run's default 96x96 .*multiple of 64"):
        run_training(RunRequest(pair_at(), CONFIG, backend=sdxl_backend, resolution=96))


def test_sd1_takes_any_multiple_of_8():
    validate_before_model_work(pair_at((72, 64)), CONFIG, "sd1", 96)
    with pytest.raises(SpecError, match="multiple of 64"):
        validate_before_model_work(pair_at((72, 64)), CONFIG, "sdxl")


def test_a_run_file_that_says_sdxl_is_refused_before_its_model_loads(tmp_path):
    from loba.models.sources import ModelSource

    missing = ModelSource(str(tmp_path / "no-such-model.safetensors"), sdxl=True)  # loading it would fail differently
    with pytest.raises(SpecError, match="multiple of 64"):
        run_training(RunRequest(pair_at((72, 64)), CONFIG, model=missing))
