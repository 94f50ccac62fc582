"""The loop: it learns, it leaves the model exactly as it was, and resume continues exactly."""

import pytest
import torch
from support.backends import assert_bit_identical, snapshot

import loba.train.step as step_module
from loba.config import TrainConfig
from loba.errors import TrainingAborted
from loba.prompts import AnchorPrompt, PromptPair, PromptSet, SliderTarget
from loba.train.callbacks import TrainCallbacks
from loba.train.loop import train

PROMPTS = PromptSet(
    entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),)),
             SliderTarget(target_class="a circle", positive="large", negative="small", resolutions=((64, 64),))),
    anchors=(AnchorPrompt("a blue square"),),
)
FAST = TrainConfig().replace(max_denoising_steps=4, max_train_steps=6, learning_rate=1e-3, seed=11)


STRONG = PromptSet(entries=(
    PromptPair(target="a red circle", positive="red", guidance_scale=8.0, resolutions=((64, 64),)),
    SliderTarget(target_class="a circle", positive="large", negative="small", guidance_scale=8.0, resolutions=((64, 64),)),
))


def fixed_eval_loss(backend, network, config, seed=123, n=8) -> float:
    """Mean loss over a fixed set of draws, x_t produced without the adapter so it is the same before and after."""
    from loba.train.step import SliderStep

    step = SliderStep(backend, network, STRONG, config, backend.encode_prompts(STRONG.all_prompts()))
    gen, total = torch.Generator().manual_seed(seed), 0.0
    with network.attached(backend.unet), torch.no_grad():
        for _ in range(n):
            total += step.run(step.plan(gen)).loss.item()
    return total / n


def test_a_short_run_lowers_the_loss(sd1_backend):
    config = FAST.replace(denoise_with_adapter=False, network_alpha=4.0, learning_rate=2e-3, max_train_steps=40)
    trained = train(sd1_backend, STRONG, config)
    after = fixed_eval_loss(sd1_backend, trained.network, config)
    with torch.no_grad():
        for _, lora in trained.network.items():
            lora.lora_up.weight.zero_()  # up = 0: exactly the base model
    before = fixed_eval_loss(sd1_backend, trained.network, config)
    assert after < 0.75 * before, (before, after)


def test_the_model_is_bit_identical_after_training(sd1_backend):
    before = snapshot(sd1_backend.unet)
    result = train(sd1_backend, PROMPTS, FAST)
    assert result.steps_done == FAST.max_train_steps and len(result.losses) == FAST.max_train_steps
    assert_bit_identical(sd1_backend.unet, before)


class FailingCallbacks(TrainCallbacks):
    def on_step(self, report, network):
        if report.step == 2:
            raise RuntimeError("callback failed")


def test_the_model_is_bit_identical_after_a_callback_exception(sd1_backend):
    before = snapshot(sd1_backend.unet)
    with pytest.raises(RuntimeError, match="callback failed"):
        train(sd1_backend, PROMPTS, FAST, callbacks=FailingCallbacks())
    assert_bit_identical(sd1_backend.unet, before)


def test_a_nan_loss_aborts_and_leaves_the_model_untouched(sd1_backend, monkeypatch):
    real = step_module.compute_loss
    monkeypatch.setattr(step_module, "compute_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    before = snapshot(sd1_backend.unet)
    with pytest.raises(TrainingAborted, match="learning_rate"):
        train(sd1_backend, PROMPTS, FAST)
    assert_bit_identical(sd1_backend.unet, before)


class StopAfter(TrainCallbacks):
    def __init__(self, steps):
        self.steps, self.seen = steps, 0

    def on_step(self, report, network):
        self.seen = report.step

    def should_stop(self):
        return self.seen >= self.steps


def test_stop_request_keeps_the_partial_result(sd1_backend):
    before = snapshot(sd1_backend.unet)
    result = train(sd1_backend, PROMPTS, FAST, callbacks=StopAfter(2))
    assert result.stopped and result.steps_done == 2
    assert_bit_identical(sd1_backend.unet, before)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(sd1_backend, tmp_path):
    config = FAST.replace(save_every_n_steps=3, optimizer="adamw", lr_scheduler="cosine", lr_warmup_steps=2,
                          noise_offset=0.05)
    full = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "full")
    checkpoint = tmp_path / "full" / "checkpoints" / "step-000003.pt"
    assert checkpoint.is_file() and full.checkpoints == [checkpoint]
    torch.manual_seed(999)  # the global RNG must not matter: training draws from its own generator
    resumed = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "resumed", resume=checkpoint)
    assert resumed.steps_done == config.max_train_steps
    assert resumed.losses == full.losses[3:]
    full_state, resumed_state = full.network.module_state(), resumed.network.module_state()
    for name in full_state:
        for key in full_state[name]:
            assert torch.equal(full_state[name][key], resumed_state[name][key]), (name, key)


@pytest.mark.parametrize("change", [{"learning_rate": 5e-4}, {"seed": 12}, {"network_dim": 8}])
def test_resume_refuses_other_training_options(sd1_backend, tmp_path, change):
    from loba.errors import ConfigError

    config = FAST.replace(save_every_n_steps=3)
    train(sd1_backend, PROMPTS, config, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="resume"):
        train(sd1_backend, PROMPTS, config.replace(**change), resume=tmp_path / "checkpoints" / "step-000003.pt")


def test_resume_refuses_other_prompts_but_allows_more_steps(sd1_backend, tmp_path):
    from loba.errors import ConfigError

    config = FAST.replace(save_every_n_steps=3)
    train(sd1_backend, PROMPTS, config, out_dir=tmp_path)
    checkpoint = tmp_path / "checkpoints" / "step-000003.pt"
    with pytest.raises(ConfigError, match="other prompts"):
        train(sd1_backend, STRONG, config, resume=checkpoint)
    assert train(sd1_backend, PROMPTS, config.replace(max_train_steps=8), resume=checkpoint).steps_done == 8
