"""iLECO-style single-step mode: x_t is the step's noise itself, read at the drawn timestep; one frozen and one
student pass, no denoise; the plan's draws are those of the partial-denoise mode (so only x_t differs)."""

import torch

from loba.config import TrainConfig
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import build_network, train
from loba.train.step import SliderStep

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", neutral="a circle", resolutions=((64, 64),),
                                        batch_size=2),), anchors=(AnchorPrompt("a blue square"),))
CONFIG = TrainConfig().replace(max_denoising_steps=6, seed=3, single_step=True)


def test_a_single_step_is_one_teacher_and_one_student_pass_on_the_noise(sd1_backend, monkeypatch):
    network = build_network(sd1_backend, CONFIG)
    step = SliderStep(sd1_backend, network, PROMPTS, CONFIG, sd1_backend.encode_prompts(PROMPTS.all_prompts()))
    calls, original = [], sd1_backend.predict

    def spy(x, t, cond, size=None):
        calls.append({"grad": torch.is_grad_enabled(), "t": int(t[0]), "x": x[:2].clone()})
        return original(x, t, cond, size)

    monkeypatch.setattr(sd1_backend, "predict", spy)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(0))
        assert torch.equal(step.denoise(plan), plan.noise)
        step.run(plan).loss.backward()
    assert len(calls) == 2 and not calls[0]["grad"] and calls[1]["grad"]
    assert calls[0]["t"] == calls[1]["t"] == plan.timestep == int(step.grid[plan.k])
    assert torch.equal(calls[0]["x"], plan.noise) and torch.equal(calls[1]["x"], plan.noise)
    # The same draws as the partial-denoise mode: pair, size, depth and noise.
    other = SliderStep(sd1_backend, network, PROMPTS, CONFIG.replace(single_step=False), step.embeddings)
    twin = other.plan(torch.Generator().manual_seed(0))
    assert (twin.k, twin.timestep, twin.pair_index) == (plan.k, plan.timestep, plan.pair_index)
    assert torch.equal(twin.noise, plan.noise)


def test_single_step_trains_and_ignores_the_trajectory_cache(sd1_backend):
    result = train(sd1_backend, PROMPTS, CONFIG.replace(max_train_steps=3, trajectory_cache=2))
    assert result.steps_done == 3 and all(torch.isfinite(torch.tensor(result.losses)))
