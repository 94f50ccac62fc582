"""`loba train --instant` on the toy world: the closed-form start saved alone (no step, no loss.csv), the same
tensors the engine's instant slider computes, and the flags it cannot combine with refused before the model loads."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from loba.cli.main import main
from loba.config.runfile import load_run_file
from loba.models.sources import ModelSource, load_backend
from loba.toyworld.demo import recipe_path
from loba.train.instant import instant_slider

RECIPE = recipe_path("erase-red", "train")
INSTANT = ["train", str(RECIPE), "--model", "toyworld", "--quiet", "--instant"]


def read(path):
    with safe_open(str(path), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()


def test_instant_saves_the_closed_form_start_alone(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*INSTANT, "--out", str(out), "--set", "init=closed_form"]) == 0
    assert "instant slider" in capsys.readouterr().out
    tensors, metadata = read(out / "slider.safetensors")
    assert metadata["ss_steps"] == "0" and '"init": "closed_form"' in metadata["loba_config"]
    assert not (out / "loss.csv").exists() and not (out / "checkpoints").exists()
    ups = {key: value for key, value in tensors.items() if key.endswith("lora_up.weight")}
    set_layers = {key for key, value in ups.items() if value.abs().sum() > 0}
    assert set_layers and all(key.split(".")[0].endswith(("attn2_to_k", "attn2_to_v")) for key in set_layers)
    # The engine's instant slider on the same run file: the CLI adds nothing and drops nothing.
    run = load_run_file(RECIPE, {"init": "closed_form", "pretrained_model_name_or_path": "toyworld"})
    backend = load_backend(ModelSource("toyworld"))
    expected, _ = instant_slider(backend, run.prompts.with_default_resolution((64, 64)), run.config)
    for key, value in expected.slider_file().tensors.items():
        torch.testing.assert_close(tensors[key], value.float(), rtol=0, atol=0)


@pytest.mark.parametrize("extra, field", [([], "init"), (["--set", "init=closed_form", "--resume", "auto"], "resume")])
def test_instant_refuses_what_it_cannot_do_naming_the_field(tmp_path, capsys, extra, field):
    out = tmp_path / "out"
    assert main([*INSTANT, "--out", str(out), *extra]) == 2
    assert field in capsys.readouterr().err
    assert not (out / "slider.safetensors").exists()
