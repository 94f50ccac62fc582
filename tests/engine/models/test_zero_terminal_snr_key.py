"""The zero_terminal_snr run-file key: the diffusers backend rescales its schedule as diffusers does, and refuses
epsilon models before their weights are read."""

import pytest
import torch
from support.tiny_models import tiny_pipeline

from loba.config.runfile import load_run_file
from loba.errors import ConfigError
from loba.models.diffusers_backend import DiffusersBackend
from loba.models.sources import ModelSource, load_backend

RUN = """pretrained_model_name_or_path = "{model}"
{key}
timestep_spacing = "trailing"
[[prompts]]
target = "a cat"
positive = "a cat"
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("zsnr")
    tiny_pipeline(root / "v", "sd2", "v_prediction")
    tiny_pipeline(root / "eps", "sd1", "epsilon")
    return root


def test_v_prediction_model_gets_diffusers_rescaled_schedule(folders):
    from diffusers import DDPMScheduler

    backend = load_backend(ModelSource(str(folders / "v"), zero_terminal_snr=True))
    expected = DDPMScheduler.from_pretrained(str(folders / "v"), subfolder="scheduler", rescale_betas_zero_snr=True)
    assert backend.prediction_type == "v_prediction" and float(backend.alphas_cumprod()[-1]) == 0.0
    assert torch.equal(backend.alphas_cumprod(), expected.alphas_cumprod.double())
    plain = DiffusersBackend.from_pretrained(str(folders / "v"))
    assert float(plain.alphas_cumprod()[-1]) > 1e-3  # off by default: the schedule as it was


def test_epsilon_model_with_zero_terminal_snr_is_refused_before_its_weights_load(folders, monkeypatch):
    import diffusers

    def no_model_work(*args, **kwargs):
        raise AssertionError("the UNet was loaded before the refusal")

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "from_pretrained", no_model_work)
    with pytest.raises(ConfigError, match="zero_terminal_snr: an epsilon-prediction model .*v_parameterization"):
        load_backend(ModelSource(str(folders / "eps"), zero_terminal_snr=True))
    with pytest.raises(ConfigError, match="zero_terminal_snr: the toy world predicts epsilon"):
        load_backend(ModelSource("toyworld", zero_terminal_snr=True))


def test_run_file_key(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(RUN.format(model="some/model", key="zero_terminal_snr = true"))
    run = load_run_file(path)
    assert run.zero_terminal_snr and run.config.sampling.timestep_spacing == "trailing"
    path.write_text(RUN.format(model="some/model", key=""))
    assert not load_run_file(path).zero_terminal_snr
    path.write_text(RUN.format(model="some/model", key='zero_terminal_snr = "yes"'))
    with pytest.raises(ConfigError, match="zero_terminal_snr: expected true or false"):
        load_run_file(path)
