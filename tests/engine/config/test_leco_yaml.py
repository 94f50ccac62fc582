"""p1atdev LECO's YAML files load as they are (its examples/config.yaml and prompts.yaml structure) and give
the same prompts and options as the equivalent sd-scripts TOML."""

from __future__ import annotations

import pytest

from loba.config.runfile import load_run_file
from loba.errors import ConfigError
from loba.prompts.loader import load_prompt_file

# The structure of p1atdev/LECO examples/config.yaml and examples/prompts.yaml (values as shipped).
CONFIG = """prompts_file: "./examples/prompts.yaml"

pretrained_model:
  name_or_path: "stabilityai/stable-diffusion-2-1" # you can also use .ckpt or .safetensors models
  v2: true # true if model is v2.x
  v_pred: true # true if model uses v-prediction

network:
  type: "lierla" # or "c3lier"
  rank: 4
  alpha: 1.0
  training_method: "full" # selfattn, xattn, noxattn, or innoxattn

train:
  precision: "bfloat16"
  noise_scheduler: "ddim" # or "ddpm", "lms", "euler_a"
  iterations: 500
  lr: 1e-4
  optimizer: "AdamW"
  lr_scheduler: "constant"
  max_denoising_steps: 50

save:
  name: "van_gogh"
  path: "./output"
  per_steps: 200
  precision: "bfloat16"

logging:
  use_wandb: false
  verbose: false

other:
  use_xformers: true
"""
PROMPTS_YAML = """- target: "van gogh" # what word for erasing the positive concept from
  positive: "van gogh" # concept to erase
  unconditional: "" # word to take the difference from the positive concept
  neutral: "" # starting point for conditioning the target
  action: "erase" # erase or enhance
  guidance_scale: 1.0
  resolution: 512
  dynamic_resolution: false
  batch_size: 2
- target: "1girl"
  positive: "1girl, cat ears"
  unconditional: ""
  neutral: ""
  action: "enhance"
  guidance_scale: 1.0
  resolution: 512
  batch_size: 2
"""
PROMPTS_TOML = """[[prompts]]
target = "van gogh"
positive = "van gogh"
unconditional = ""
neutral = ""
action = "erase"
guidance_scale = 1.0
resolution = 512
dynamic_resolution = false
batch_size = 2

[[prompts]]
target = "1girl"
positive = "1girl, cat ears"
unconditional = ""
neutral = ""
action = "enhance"
guidance_scale = 1.0
resolution = 512
batch_size = 2
"""


@pytest.fixture
def leco_repo(tmp_path, monkeypatch):
    """LECO's layout: the config in examples/, its prompts_file relative to the repository root it runs from."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "config.yaml").write_text(CONFIG)
    (tmp_path / "examples" / "prompts.yaml").write_text(PROMPTS_YAML)
    (tmp_path / "prompts.toml").write_text(PROMPTS_TOML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_prompts_yaml_gives_the_same_prompt_set_as_the_toml(leco_repo):
    yaml_set = load_prompt_file(leco_repo / "examples" / "prompts.yaml")
    assert yaml_set == load_prompt_file(leco_repo / "prompts.toml")
    assert len(yaml_set.entries) == 2 and yaml_set.entries[1].action == "enhance"


def test_the_train_config_yaml_loads_as_a_run_file(leco_repo):
    run = load_run_file(leco_repo / "examples" / "config.yaml")
    config = run.config
    assert (run.model, run.prediction_type, run.output_name, run.output_dir) == \
        ("stabilityai/stable-diffusion-2-1", "v_prediction", "van_gogh", "./output")
    assert run.prompts == load_prompt_file(leco_repo / "prompts.toml")
    assert (config.network.preset, config.network.network_dim, config.network.network_alpha) == ("all_linear", 4, 1.0)
    assert (config.max_train_steps, config.optimizer.learning_rate, config.optimizer.optimizer) == (500, 1e-4, "adamw")
    assert (config.sampling.max_denoising_steps, config.save_every_n_steps, config.save_precision) == (50, 200, "bf16")
    assert config.mixed_precision == "bf16"


@pytest.mark.parametrize("network, preset, exclude", [
    ('type: "c3lier"\n  rank: 8', "all_linear_conv", ()), ('training_method: "xattn"', "cross_attention", ()),
    ('training_method: "selfattn"', "attention", (r"\.attn2\.",)), ('training_method: "noxattn"', "all_linear", (r"\.attn2\.",)),
])
def test_network_types_and_training_methods(leco_repo, network, preset, exclude):
    head, rest = CONFIG.split("network:\n", 1)
    text = head + "network:\n  " + network + "\n" + rest[rest.index("\ntrain:") + 1:]
    (leco_repo / "examples" / "config.yaml").write_text(text)
    config = load_run_file(leco_repo / "examples" / "config.yaml").config
    assert (config.network.preset, config.network.exclude) == (preset, exclude)
    assert config.network.network_dim == (8 if "rank: 8" in network else 4)


def test_what_loba_cannot_do_is_refused(leco_repo):
    (leco_repo / "examples" / "config.yaml").write_text(CONFIG.replace('"ddim" # or', '"euler_a" # or'))
    with pytest.raises(ConfigError, match="partial denoise is DDIM"):
        load_run_file(leco_repo / "examples" / "config.yaml")
    (leco_repo / "examples" / "config.yaml").write_text(CONFIG + "extra: 1\n")
    with pytest.raises(ConfigError, match="not a section of LECO's config"):
        load_run_file(leco_repo / "examples" / "config.yaml")
