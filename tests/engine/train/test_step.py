"""The step: no gradient through the denoise, one batched teacher pass, v-pred equals eps, masks."""

import pytest
import torch
from support.backends import make_backend

from loba.config import TrainConfig
from loba.diffusion.schedule import NoiseSchedule
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import build_network
from loba.train.step import SliderStep

CONFIG = TrainConfig().replace(max_denoising_steps=6, seed=3)


def erase_set(anchors=(), mask=None) -> PromptSet:
    pair = PromptPair(target="a red circle", positive="red", neutral="a circle", resolutions=((64, 64),), batch_size=2, mask=mask)
    return PromptSet(entries=(pair,), anchors=tuple(anchors))


def make_step(backend, prompts, config=CONFIG):
    network = build_network(backend, config)
    return SliderStep(backend, network, prompts, config, backend.encode_prompts(prompts.all_prompts())), network


def spy_on_predict(backend, network, monkeypatch) -> list:
    calls, original = [], backend.predict

    def spy(x, t, cond, size=None):
        calls.append({"grad": torch.is_grad_enabled(), "batch": x.shape[0], "multiplier": network.multiplier, "t": int(t[0])})
        return original(x, t, cond, size)

    monkeypatch.setattr(backend, "predict", spy)
    return calls


def test_only_the_student_forward_tracks_gradients(sd1_backend, monkeypatch):
    step, network = make_step(sd1_backend, erase_set(anchors=[AnchorPrompt("a blue square")]))
    calls = spy_on_predict(sd1_backend, network, monkeypatch)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(0))
        x_t = step.denoise(plan)
        assert not x_t.requires_grad
        step.run(plan).loss.backward()
    denoise, teacher, student = calls[plan.k:2 * plan.k], calls[2 * plan.k], calls[2 * plan.k + 1]
    assert len(calls) == 2 * plan.k + 2  # our explicit denoise, then run(): denoise + teacher + student
    assert all(not c["grad"] and c["batch"] == 4 and c["multiplier"] == 1.0 for c in denoise)  # CFG: uncond + target
    # One teacher pass, adapter off, for neutral, positive, unconditional and the anchor: 4 prompts x batch 2.
    assert not teacher["grad"] and teacher["batch"] == 8 and teacher["multiplier"] == 0.0
    assert student["grad"] and student["batch"] == 4 and student["multiplier"] == 1.0  # target + anchor
    assert teacher["t"] == student["t"] == plan.timestep == int(step.grid[plan.k])
    assert all(p.grad is None for p in sd1_backend.unet.parameters())
    assert all(p.grad is not None for p in network.parameters() if p.requires_grad)


def test_denoise_without_adapter_option(sd1_backend, monkeypatch):
    config = CONFIG.replace(denoise_with_adapter=False)
    step, network = make_step(sd1_backend, erase_set(), config)
    calls = spy_on_predict(sd1_backend, network, monkeypatch)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(1))
        step.denoise(plan)
    assert len(calls) == plan.k and all(c["multiplier"] == 0.0 for c in calls)


def test_timestep_range_restriction(sd1_backend):
    config = CONFIG.replace(max_denoising_steps=20, min_timestep=300, max_timestep=600)
    step, _ = make_step(sd1_backend, erase_set(), config)
    gen = torch.Generator().manual_seed(0)
    assert all(300 <= step.plan(gen).timestep < 600 for _ in range(30))


def test_preserve_from_timestep_targets_the_frozen_model_for_the_target(sd1_backend, monkeypatch):
    """At t >= preserve_from_timestep the target is the teacher's own prediction for the target prompt
    (no concept offset, only the target and anchors go through the teacher); below it, the pair's objective."""
    config = CONFIG.replace(max_denoising_steps=20, preserve_from_timestep=500)
    step, network = make_step(sd1_backend, erase_set(anchors=[AnchorPrompt("a blue square")]), config)
    gen = torch.Generator().manual_seed(0)
    plans = [step.plan(gen) for _ in range(40)]
    high = next(p for p in plans if p.timestep >= 500)
    low = next(p for p in plans if p.timestep < 500)
    seen = {}
    monkeypatch.setattr("loba.train.step.compute_loss", lambda prediction, target, **kw: seen.setdefault("target", target).sum() * 0)
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        for plan, expected in ((high, ("a red circle", "a blue square")), (low, ("a circle", "red", "", "a blue square"))):
            seen.clear()
            x_t = step.denoise(plan)
            teacher = step.teachers(plan, x_t)
            assert tuple(teacher) == expected
            step.run(plan)
            want = teacher["a red circle"] if plan is high else teacher["a circle"] - (teacher["red"] - teacher[""])
            assert torch.allclose(seen["target"], want, atol=1e-5)


class VFromEps:
    """Turns an epsilon model into the equivalent v-prediction model: v = (eps - s*x_t) / a."""

    def __init__(self, backend):
        self.original = backend.predict
        self.schedule = NoiseSchedule(backend.alphas_cumprod(), "v_prediction")

    def __call__(self, x, t, cond, size=None):
        return self.schedule.from_epsilon(self.original(x, t, cond, size), x, t)


def _loss_and_grads(backend, config, seed=5):
    torch.manual_seed(0)
    step, network = make_step(backend, erase_set(anchors=[AnchorPrompt("a blue square", 0.5)]), config)
    with backend.training_session(), network.attached(backend.unet):
        with torch.no_grad():  # give the adapter non-zero up weights so the student differs from the teacher
            for p in network.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        plan = step.plan(torch.Generator().manual_seed(seed))
        x_t = step.denoise(plan)
        result = step.run(plan)
        result.loss.backward()
    grads = [p.grad.clone() for p in network.parameters() if p.grad is not None]
    return x_t, result, grads, plan


@pytest.mark.parametrize("gamma", [5.0, 0.0])
def test_v_prediction_trains_like_the_equivalent_eps_model(tokenizer, monkeypatch, gamma):
    config = CONFIG.replace(min_snr_gamma=gamma)
    eps_backend = make_backend(tokenizer, "sd1")
    v_backend = make_backend(tokenizer, "sd1")
    v_backend.prediction_type = "v_prediction"
    monkeypatch.setattr(v_backend, "predict", VFromEps(v_backend))
    x_eps, r_eps, g_eps, plan = _loss_and_grads(eps_backend, config)
    x_v, r_v, g_v, _ = _loss_and_grads(v_backend, config)
    assert torch.allclose(x_eps, x_v, atol=1e-4), "the partial denoise must land on the same x_t"
    if gamma:
        # Min-SNR weights eps by min(snr,g)/snr and v by min(snr,g)/(snr+1): identical objectives.
        assert r_v.loss.item() == pytest.approx(r_eps.loss.item(), rel=1e-3)
        for a, b in zip(g_eps, g_v):
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-7)
    else:
        # Plain MSE in v-space is the eps-space MSE divided by alpha_bar_t.
        alpha_bar = float(eps_backend.alphas_cumprod()[plan.timestep])
        assert r_v.loss.item() * alpha_bar == pytest.approx(r_eps.loss.item(), rel=1e-3)


def test_full_mask_equals_no_mask_and_half_mask_differs(sd1_backend):
    losses = {}
    for label, mask in {"none": None, "ones": torch.ones(64, 64), "half": torch.cat([torch.ones(64, 32), torch.zeros(64, 32)], 1)}.items():
        torch.manual_seed(0)
        step, network = make_step(sd1_backend, erase_set(mask=mask))
        with sd1_backend.training_session(), network.attached(sd1_backend.unet), torch.no_grad():
            for p in network.parameters():
                p.add_(torch.randn_like(p) * 0.05)
            losses[label] = step.run(step.plan(torch.Generator().manual_seed(2))).main_loss
    assert losses["ones"] == pytest.approx(losses["none"], rel=1e-6)
    assert losses["half"] != pytest.approx(losses["none"], rel=1e-3)


def test_sdxl_step_runs_with_pooled_and_size_conditioning(sdxl_backend):
    prompts = PromptSet(entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),), dynamic_crops=True),))
    step, network = make_step(sdxl_backend, prompts)
    with sdxl_backend.training_session(), network.attached(sdxl_backend.unet):
        plan = step.plan(torch.Generator().manual_seed(0))
        assert plan.size is not None and plan.size.target == (64, 64)
        result = step.run(plan)
        result.loss.backward()
    assert torch.isfinite(result.loss)
