"""teacher_batch_size: the no-grad forwards (teachers, CFG denoise) in micro-batches, same predictions."""

import torch

from loba.config import TrainConfig
from loba.models.backend import Conditioning
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import build_network
from loba.train.microbatch import in_micro_batches
from loba.train.step import SliderStep

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", neutral="a circle",
                                        resolutions=((64, 64),), batch_size=2),), anchors=(AnchorPrompt("a blue square"),))


def test_micro_batches_cover_every_row_once_in_order():
    calls = []

    def forward(x, cond):
        calls.append(x.shape[0])
        return x * 2 + cond.context.sum(dim=(1, 2)).view(-1, 1) + cond.pooled[:, :1]

    x, cond = torch.randn(7, 3), Conditioning(torch.randn(7, 2, 4), torch.randn(7, 5))
    assert torch.equal(in_micro_batches(forward, x, cond, 3), forward(x, cond))
    assert calls == [3, 3, 1, 7]
    calls.clear()
    in_micro_batches(forward, x, cond, 0), in_micro_batches(forward, x, cond, 9)
    assert calls == [7, 7], "0 or a size >= the batch is one call, as before"


def _step_outputs(backend, size: int, monkeypatch):
    config = TrainConfig().replace(max_denoising_steps=6, seed=3, teacher_batch_size=size)
    network = build_network(backend, config)
    step = SliderStep(backend, network, PROMPTS, config, backend.encode_prompts(PROMPTS.all_prompts()))
    batches, original = [], backend.predict

    def spy(x, t, cond, size=None):
        batches.append((torch.is_grad_enabled(), x.shape[0]))
        return original(x, t, cond, size)

    monkeypatch.setattr(backend, "predict", spy)
    with backend.training_session(), network.attached(backend.unet):
        generator = torch.Generator().manual_seed(5)
        with torch.no_grad():  # a non-zero adapter, so the denoise (adapter on) depends on it
            for p in network.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
        plan = step.plan(torch.Generator().manual_seed(0))
        x_t = step.denoise(plan)
        teachers = step.teachers(plan, x_t)
    monkeypatch.undo()
    return plan, x_t, teachers, batches


def test_teacher_batch_size_splits_the_no_grad_forwards_and_keeps_their_results(sdxl_backend, monkeypatch):
    plan, x_t, teachers, batches = _step_outputs(sdxl_backend, 0, monkeypatch)
    assert batches == [(False, 4)] * plan.k + [(False, 8)]  # CFG pair x batch 2, then 4 prompts x batch 2
    plan1, x_t1, teachers1, batches1 = _step_outputs(sdxl_backend, 3, monkeypatch)
    assert plan1.k == plan.k and batches1 == [(False, 3), (False, 1)] * plan.k + [(False, 3)] * 2 + [(False, 2)]
    # Same rows, same weights; only the GEMMs' blocking over the batch differs, so the values agree to float32
    # rounding (measured: ~1e-6 relative), not to the bit. The default (0) is the one-batch call as before.
    torch.testing.assert_close(x_t1, x_t, rtol=1e-5, atol=1e-5)
    assert teachers1.keys() == teachers.keys()
    for prompt, value in teachers.items():
        torch.testing.assert_close(teachers1[prompt], value, rtol=1e-5, atol=1e-5)
