"""fp8_base: the frozen denoiser stored as float8 e4m3 and computed in the model dtype (diffusers' layerwise casting)."""

from __future__ import annotations

import textwrap

import pytest
import torch

from loba.config import TrainConfig
from loba.config.runfile import load_run_file
from loba.errors import ConfigError
from loba.models.backend import SizeConditioning
from loba.models.fp8_base import _store_layer, check_fp8_base, store_base_in_fp8
from loba.models.sources import ModelSource, load_backend
from loba.prompts import PromptPair, PromptSet
from loba.train.run import RunRequest, run_training

FP8 = torch.float8_e4m3fn
CONFIG = TrainConfig().replace(max_train_steps=3, max_denoising_steps=4, network_dim=2, learning_rate=1e-3, seed=3)


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def erase_red() -> PromptSet:
    return PromptSet((PromptPair(target="a red circle", positive="a red circle", unconditional="a circle",
                                 neutral="a circle", action="erase", guidance_scale=1.0, batch_size=1),), ())


def prediction(backend, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 8, 8, generator=generator)
    cond = backend.encode_prompts(["a red circle"])["a red circle"]
    with torch.no_grad():
        return backend.predict(x, torch.tensor([500]), cond, SizeConditioning.plain(64, 64)).float()


def test_the_base_is_stored_in_fp8_and_still_computes_in_its_own_dtype():
    backend = load_backend(ModelSource("toyworld"))
    before, full = prediction(backend), weight_bytes(backend.denoiser())
    stored = store_base_in_fp8(backend)
    linears = [m for m in backend.denoiser().modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == FP8 for m in linears)
    assert backend.dtype == torch.float32, "the engine's dtype is the compute dtype, not the storage's"
    assert stored == weight_bytes(backend.denoiser()) < 0.35 * full, "float32 weights to one byte each (norms kept)"
    after = prediction(backend)
    assert torch.isfinite(after).all() and not torch.equal(after, before)
    # e4m3 keeps 3 mantissa bits: the prediction moves by its rounding (2-3% here), not by a broken layer.
    assert float((after - before).norm() / before.norm()) < 0.06


@pytest.mark.parametrize("layer", [torch.nn.Linear(6, 5), torch.nn.Conv2d(3, 4, 3, padding=1, stride=2)])
def test_an_fp8_layer_is_the_layer_with_its_weight_rounded_and_its_input_gradient_is_exact(layer):
    torch.manual_seed(0)
    x = torch.randn(2, 6) if isinstance(layer, torch.nn.Linear) else torch.randn(2, 3, 8, 8)
    rounded = layer.weight.detach().to(FP8).float()
    reference = torch.nn.functional.linear if isinstance(layer, torch.nn.Linear) else (
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride=2, padding=1))
    x_ref = x.clone().requires_grad_(True)
    expected = reference(x_ref, rounded, layer.bias.detach())
    expected.square().sum().backward()
    _store_layer(layer, torch.float32)
    assert layer.weight.dtype == FP8 and not layer.weight.requires_grad
    x_fp8 = x.clone().requires_grad_(True)
    out = layer(x_fp8)
    out.square().sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x_fp8.grad, x_ref.grad)


def test_a_run_trains_on_the_fp8_base_through_the_one_facade():
    source = ModelSource("toyworld", fp8_base=True)
    slider = run_training(RunRequest(erase_red(), CONFIG, model=source))
    assert slider.steps_done == 3 and all(torch.isfinite(torch.tensor(v)) for v in slider.losses)
    assert any(float(p.detach().abs().sum()) > 0 for n, p in slider.network.named_parameters() if "lora_up" in n)


@pytest.mark.parametrize(("config", "sharded", "message"), [
    (CONFIG.replace(algo="dora"), False, "DoRA"),
    (CONFIG.replace(offload="blocks"), False, "offload = blocks"),
    (CONFIG, True, "FSDP"),
])
def test_what_fp8_storage_cannot_serve_is_refused_naming_fp8_base(config, sharded, message):
    with pytest.raises(ConfigError, match=f"fp8_base.*{message}"):
        check_fp8_base(config, sharded=sharded)


def test_the_facade_refuses_before_the_model_loads(monkeypatch):
    def no_loading(source):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr("loba.train.run.load_backend", no_loading)
    with pytest.raises(ConfigError, match="fp8_base.*DoRA"):
        run_training(RunRequest(erase_red(), CONFIG.replace(algo="dora"), model=ModelSource("toyworld", fp8_base=True)))


def test_a_denoiser_that_is_not_a_diffusers_model_is_refused():
    class Plain:
        dtype = torch.float32

        def denoiser(self):
            return torch.nn.Linear(2, 2)

    with pytest.raises(ConfigError, match="fp8_base.*not a diffusers model"):
        store_base_in_fp8(Plain())


def test_the_run_file_key(tmp_path):
    run = tmp_path / "run.toml"
    body = textwrap.dedent("""
        pretrained_model_name_or_path = "toyworld"
        fp8_base = {value}
        [[prompts]]
        target = "a red circle"
        action = "erase"
        """)
    run.write_text(body.format(value="true"))
    assert load_run_file(run).fp8_base is True
    run.write_text(body.format(value='"yes"'))
    with pytest.raises(ConfigError, match="fp8_base"):
        load_run_file(run)
