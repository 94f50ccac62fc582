"""Strength calibration (calibrate_strength): the saved slider is scaled so that w = 1 has the same measured
effect for every concept; the raw effect and the scale are in the metadata; off changes nothing."""

import json

import pytest
import torch
from safetensors import safe_open

from loba.config import TrainConfig
from loba.config.runfile import load_run_file
from loba.errors import ConfigError
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.sliders.trained import save_trained_slider
from loba.toyworld.backend import toy_backend
from loba.toyworld.files import load_toy_components
from loba.train.calibration import EffectMeter, calibrate, target_prompts
from loba.train.loop import build_network, train
from loba.train.run import RunRequest, run_training

ERASE_RED = PromptSet(entries=(PromptPair(target="a red circle", positive="a red circle", unconditional="a circle",
                                          neutral="a circle", resolutions=((64, 64),)),),
                      anchors=(AnchorPrompt(prompt="a blue circle"),))
FAST = TrainConfig().replace(max_denoising_steps=4, max_train_steps=4, network_alpha=4.0, seed=3, canary_every=0,
                             denoise_with_adapter=False, learning_rate=2e-3, preset="cross_attention")


@pytest.fixture(scope="module")
def backend():
    return toy_backend(load_toy_components())  # the shipped toy world


def measured_effect(backend, slider) -> float:
    network = slider.network
    with network.attached(backend.denoiser()):
        return EffectMeter(backend, network, target_prompts(slider.prompts)).effect()


def metadata_of(path) -> dict:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_two_sliders_of_different_strength_end_up_with_the_same_effect(backend, tmp_path):
    weak = run_training(RunRequest(ERASE_RED, FAST.replace(learning_rate=1e-3, calibrate_strength=True), backend=backend))
    strong = run_training(RunRequest(ERASE_RED, FAST.replace(learning_rate=8e-3, calibrate_strength=True), backend=backend))
    raw_weak, raw_strong = weak.calibration["raw_effect"], strong.calibration["raw_effect"]
    assert raw_strong > 2 * raw_weak > 0  # really different strengths before
    for slider in (weak, strong):
        assert measured_effect(backend, slider) == pytest.approx(0.1, rel=2e-3)  # the same after, re-measured
        assert slider.calibration["effect"] == pytest.approx(0.1, rel=2e-3)
    assert weak.calibration["scale"] > strong.calibration["scale"]
    saved = json.loads(metadata_of(strong.save(tmp_path / "strong.safetensors"))["loba_calibration"])
    assert saved["scale"] == strong.calibration["scale"] and saved["raw_effect"] == raw_strong and saved["reference"] == 0.1


def test_the_reference_effect_is_an_option(backend):
    slider = run_training(RunRequest(ERASE_RED, FAST.replace(calibrate_strength=True, calibration_effect=0.03), backend=backend))
    assert measured_effect(backend, slider) == pytest.approx(0.03, rel=2e-3)


@pytest.mark.parametrize("algo", ["loha", "dora"])
def test_lycoris_sliders_calibrate_too(backend, algo):
    slider = run_training(RunRequest(ERASE_RED, FAST.replace(algo=algo, learning_rate=5e-3, calibrate_strength=True),
                                     backend=backend))
    assert measured_effect(backend, slider) == pytest.approx(0.1, rel=2e-3)


def contents(path) -> tuple[dict, dict]:
    """(metadata, tensors) of a file: safetensors writes metadata keys in hash order, so bytes differ between
    two writes of the same slider; every tensor bit and every metadata string must not."""
    with safe_open(str(path), "pt") as handle:
        return handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}


def test_off_by_default_saves_exactly_what_training_produced(backend, tmp_path):
    assert TrainConfig().calibrate_strength is False
    slider = run_training(RunRequest(ERASE_RED, FAST, backend=backend))
    assert slider.calibration is None
    facade_metadata, facade = contents(slider.save(tmp_path / "facade.safetensors"))
    plain = train(backend, ERASE_RED, FAST)  # the loop alone: no calibration code on this path at all
    loop_metadata, loop = contents(save_trained_slider(tmp_path / "loop.safetensors", plain.network, backend, FAST,
                                                       slider.prompts, plain.steps_done))
    assert facade_metadata == loop_metadata and "loba_calibration" not in facade_metadata
    assert facade.keys() == loop.keys()
    assert all(torch.equal(facade[key], loop[key]) and facade[key].dtype == loop[key].dtype for key in facade)


def test_a_slider_that_does_nothing_is_left_alone_with_a_note(backend):
    network = build_network(backend, FAST)  # lora_up starts at zero: exactly off
    record = calibrate(network, backend, ERASE_RED, 0.1)
    assert record.scale == 1.0 and record.raw_effect == 0.0 and record.note


def test_text_encoder_sliders_are_refused_naming_the_field():
    with pytest.raises(ConfigError) as info:
        TrainConfig().replace(calibrate_strength=True, train_text_encoder="alongside")
    assert info.value.field == "calibrate_strength"
    with pytest.raises(ConfigError) as info:
        TrainConfig().replace(calibration_effect=0.0)
    assert info.value.field == "calibration_effect"


def test_run_file_keys(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('pretrained_model_name_or_path = "toyworld"\ncalibrate_strength = true\ncalibration_effect = 0.2\n'
                    '[[prompts]]\ntarget = "a red circle"\n')
    config = load_run_file(path).config
    assert config.calibrate_strength is True and config.calibration_effect == 0.2
