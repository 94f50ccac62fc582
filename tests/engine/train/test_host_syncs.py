"""No host-device syncs on the hot path of a step: reading a device tensor's value on the host (.item(),
float(), bool(), int(), .tolist()) waits for every queued kernel, so inside the step it stalls the GPU.

The step's CPU draws (the plan: pair, size, depth, from CPU generators) read CPU tensors and cost nothing;
everything from the denoise to the optimizer step may read device values only ONCE, after backward (the
finite checks of loss and gradient norm and the logged loss values, all in one read)."""

import inspect
from pathlib import Path

import torch

from loba.config import TrainConfig
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import build_network
from loba.train.phases import PhaseClock
from loba.train.trainer import Trainer

LOBA = str(Path(__file__).resolve().parents[3] / "loba")
READS = ("item", "tolist", "__float__", "__bool__", "__int__", "__index__")
# CPU-generator draws of the plan (never device tensors).
CPU_DRAWS = {"plan", "draw_index", "_size_conditioning", "sample_resolution", "x_t"}
PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", neutral="a circle", resolutions=((64, 64),)),),
                    anchors=(AnchorPrompt("a blue square"),))


def count_reads(monkeypatch) -> list[str]:
    """The loba function of every host read of a tensor's value from now on."""
    calls = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, **kwargs):
            caller = inspect.currentframe().f_back
            if caller.f_code.co_filename.startswith(LOBA):
                calls.append(caller.f_code.co_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


def test_a_step_reads_device_values_once_after_backward(sd1_backend, monkeypatch):
    config = TrainConfig().replace(max_denoising_steps=4, max_train_steps=4, trajectory_cache=2, seed=1)
    network = build_network(sd1_backend, config)
    trainer = Trainer.build(sd1_backend, network, PROMPTS, config)
    with torch.enable_grad(), sd1_backend.training_session(), network.attached(sd1_backend.unet):
        trainer.one_step(PhaseClock(sd1_backend.device))  # warm-up: the cache's first trajectories
        calls = count_reads(monkeypatch)
        for _ in range(3):
            _, result = trainer.one_step(PhaseClock(sd1_backend.device))
    device_reads = [name for name in calls if name not in CPU_DRAWS]
    assert device_reads == ["read"] * 3, device_reads  # StepResult.read, called once by Trainer.one_step
    assert isinstance(result.main_loss, float) and isinstance(result.preservation_loss, float)
