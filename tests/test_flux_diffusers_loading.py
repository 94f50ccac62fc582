"""The diffusers Flux backend loaded as a run loads it: a tiny diffusers Flux folder through the model sources (dev and
schnell), `loba train` on it with a resume, and a run at one size on that size's sigma shift."""

from __future__ import annotations

import pytest
import torch
from support.flux_models import stub_encode, tiny_flux_folder, tiny_transformer

from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.models.flux_backend import FluxBackend
from loba.models.flux_schedule import flux_sigmas
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider
from loba.train.run import RunRequest, run_training

CONFIG = TrainConfig().replace(max_train_steps=16, max_denoising_steps=3, network_dim=2, network_alpha=1.0,
                               learning_rate=2e-2, seed=3, timestep_spacing="trailing")


def erase_prompts() -> PromptSet:
    pair = PromptPair(target="a red circle", positive="red", neutral="a circle", action="erase", guidance_scale=2.0,
                      resolutions=((32, 32),), batch_size=1)
    return PromptSet((pair,), ())


# -- loading ----------------------------------------------------------------------------------------------------------
def test_a_diffusers_flux_folder_loads_through_the_model_sources(tmp_path):
    from loba.models.flux_schedule import flux_shift, image_seq_len
    from loba.models.sources import ModelSource, load_backend

    folder = tiny_flux_folder(tmp_path / "flux")
    backend = load_backend(ModelSource(str(folder), with_vae=True))
    assert isinstance(backend, FluxBackend) and backend.guidance == 3.5 and backend.prediction_type == "flow"
    assert torch.allclose(backend.sigmas, flux_sigmas(flux_shift(image_seq_len(1024, 1024))))  # dev: shift at 1024
    backend._encode.max_sequence_length = 12  # FluxPipeline's 512 T5 tokens: shorter for the test
    encoded = backend.encode_prompts(["a red circle", ""])
    assert encoded["a red circle"].context.shape == (1, 12, 32) and encoded[""].pooled.shape == (1, 16)
    assert all(p.device.type == "cpu" for m in backend._encode.modules() for p in m.parameters())
    out = backend.predict(torch.randn(1, 16, 4, 4), torch.tensor([500]), encoded["a red circle"])
    assert out.shape == (1, 16, 4, 4) and torch.isfinite(out).all()
    pixels = backend.decode(torch.zeros(1, 16, 4, 4))
    assert pixels.shape == (1, 32, 32, 3)
    with pytest.raises(ConfigError, match="v_parameterization"):
        load_backend(ModelSource(str(folder), prediction_type="v_prediction"))
    assert load_backend(ModelSource(str(folder), guidance=2.0)).guidance == 2.0


def test_a_schnell_folder_has_no_guidance_and_no_shift(tmp_path):
    folder = tiny_flux_folder(tmp_path / "schnell", guidance=False)
    backend = FluxBackend.from_pretrained(str(folder), torch_dtype=torch.float32, guidance=3.5)  # a run file's default
    assert backend.guidance is None
    assert torch.allclose(backend.sigmas, 3.0 * flux_sigmas(0.0) / (1 + 2.0 * flux_sigmas(0.0)))  # the static shift 3



RUN = """
pretrained_model_name_or_path = "{model}"
network_dim = 2
network_alpha = 1.0
learning_rate = 1e-3
max_train_steps = 2
save_every_n_steps = 1
max_denoising_steps = 3
seed = 1

[[targets]]
target_class = "a circle"
positive = "large"
negative = "small"
resolution = 32
"""


def test_loba_train_runs_a_flux_folder_and_resumes(tmp_path):
    from loba.cli.main import main

    folder = tiny_flux_folder(tmp_path / "flux")
    run = tmp_path / "run.toml"
    run.write_text(RUN.format(model=folder.as_posix()))
    out = tmp_path / "out"
    assert main(["train", str(run), "--out", str(out), "--quiet"]) == 0
    slider = load_slider(out / "slider.safetensors")
    assert slider.metadata["ss_base_model_version"] == "flux1"
    assert "lora_unet_double_blocks_0_img_attn_qkv" in slider.module_stems()
    assert all(stem.startswith(("lora_unet_double_blocks_", "lora_unet_single_blocks_")) for stem in slider.module_stems())
    assert main(["train", str(run), "--out", str(out), "--resume", "auto", "--set", "max_train_steps=3", "--quiet"]) == 0
    assert load_slider(out / "slider.safetensors").metadata["ss_steps"] == "3"


def test_a_run_at_one_size_trains_on_that_sizes_shift():
    from loba.models.flux_schedule import resolution_sigmas

    backend = FluxBackend(tiny_transformer(), stub_encode, flux_sigmas(1.15), native_resolution=32,
                          size_sigmas=lambda h, w: resolution_sigmas(h, w))
    seen, predict = [], backend.predict

    def spy(x, t, cond, size=None):
        seen.append(backend.noise_schedule().sigmas.clone())
        return predict(x, t, cond, size)

    backend.predict = spy
    run_training(RunRequest(erase_prompts(), CONFIG.replace(max_train_steps=1), backend=backend))
    assert seen and all(torch.equal(s, resolution_sigmas(32, 32)) for s in seen)  # 4 tokens: mu 0.457, not 1.15
    assert not torch.equal(resolution_sigmas(32, 32), flux_sigmas(1.15))
    assert torch.equal(backend.sigmas, flux_sigmas(1.15))  # restored after the run
    seen.clear()
    two = PromptSet((PromptPair(target="a red circle", positive="red", resolutions=((32, 32), (48, 32))),), ())
    run_training(RunRequest(two, CONFIG.replace(max_train_steps=1), backend=backend))
    assert seen and all(torch.equal(s, flux_sigmas(1.15)) for s in seen)  # several sizes: the backend's own table
