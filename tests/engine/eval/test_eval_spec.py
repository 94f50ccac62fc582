"""The real-model eval spec: bad input refused naming the field, before any model or sampling work."""

from __future__ import annotations

import pytest

from loba.cli.main import main
from loba.errors import ConfigError
from loba.eval.spec import parse_spec

VALID = {"target_prompts": ["a red circle"], "control_prompts": ["a blue square"], "weights": [1, 0, -1], "seeds": [0, 1]}


def test_valid_spec_defaults_and_sorting():
    spec = parse_spec(VALID)
    assert spec.weights == (-1.0, 0.0, 1.0) and spec.evaluators == {"pixel": {}}
    assert spec.roles == ("target", "control") and spec.samples == 2 * 3 * 2
    assert (spec.sampler, spec.scheduler, spec.steps) == ("ddim", "ddim_uniform", 20)


@pytest.mark.parametrize("change, field", [
    ({"target_prompts": []}, "target_prompts"),
    ({"target_prompts": None}, "target_prompts"),
    ({"weights": [-1, 1]}, "weights"),
    ({"evaluators": {"nope": {}}}, "evaluators"),
    ({"evaluators": {"nudenet": {"threshold": 1.5}}}, "evaluators.nudenet.threshold"),
    ({"evaluators": {"nudenet": {"threshold": -0.1}}}, "evaluators.nudenet.threshold"),
    ({"evaluators": {"clip": {"weights": "/no/such/clip"}}}, "evaluators.clip.weights"),
    ({"evaluators": {"clip": {"weights": "nobody-has/this-model-xyz"}}}, "evaluators.clip.weights"),
    ({"evaluators": {"lpips": {}}}, "evaluators.lpips.backbone"),
    ({"evaluators": {"lpips": {"backbone": "/no/such/alexnet.pth"}}}, "evaluators.lpips.backbone"),
    ({"evaluators": {"pixel": {"x": 1}}}, "evaluators.pixel.x"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"control_prompts": ["a red circle"]}, "control_prompts"),
    ({"steps": 0}, "steps"),
    ({"colour": 1}, "colour"),
])
def test_bad_spec_is_refused_naming_the_field(change, field):
    with pytest.raises(ConfigError) as error:
        parse_spec({**VALID, **change})
    assert error.value.field == field


def test_unregistered_evaluator_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="Registered: .*pixel"):
        parse_spec({**VALID, "evaluators": {"nope": {}}})


def test_cli_refuses_a_bad_spec_before_loading_any_model(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('target_prompts = ["a red circle"]\nweights = [1, 2]\nseeds = [0]\n')
    # The model path does not exist: the spec error must come first (nothing loaded, nothing sampled).
    code = main(["eval", "--model", str(tmp_path / "no-model"), "--slider", str(tmp_path / "no.safetensors"),
                 "--spec", str(spec), "--out", str(tmp_path / "out")])
    assert code == 2 and "weights: must include 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_missing_slider_before_loading_the_model(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('target_prompts = ["a red circle"]\nweights = [0, 1]\nseeds = [0]\n')
    code = main(["eval", "--model", str(tmp_path / "no-model"), "--slider", str(tmp_path / "no.safetensors"),
                 "--spec", str(spec), "--out", str(tmp_path / "out")])
    assert code == 2 and "slider: file" in capsys.readouterr().err


def test_shipped_example_spec_is_valid():
    from pathlib import Path

    from loba.eval.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[3] / "examples" / "eval-model.toml")
    assert 0.0 in spec.weights and set(spec.evaluators) == {"pixel", "latent", "nudenet"} and spec.evaluators["nudenet"]["threshold"] == 0.5
