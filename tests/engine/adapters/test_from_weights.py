"""Starting a slider from LoRA files (network_weights): exact with dim_from_weights, SVD to the training rank, a
lower rank padded with fresh columns, weighted merges, foreign and untargeted keys refused by name, SD1 and SDXL
(text-encoder keys included), and a resumed run from such a start is exact."""

import pytest
import torch

from loba.adapters.from_weights import initialize_from_weights, network_from_weights, read_start_weights
from loba.adapters.text_encoder import split_name
from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider, write_slider_file
from loba.sliders.trained import save_trained_slider
from loba.train.loop import build_network
from loba.train.run import RunRequest, run_training

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", guidance_scale=6.0, resolutions=((64, 64),)),))
BASE = TrainConfig().replace(preset="attention", network_dim=8, network_alpha=4.0, max_denoising_steps=3, max_train_steps=4,
                             learning_rate=1e-3)


def delta(lora) -> torch.Tensor:
    return lora.scale * lora.lora_up.weight.reshape(lora.lora_up.weight.shape[0], lora.rank) @ lora.lora_down.weight.reshape(lora.rank, -1)


def saved(backend, config, path, seed=0, scale=0.05):
    network = build_network(backend, config)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for param in network.parameters():
            param.copy_(torch.randn_like(param) * scale)
    save_trained_slider(path, network, backend, config, PROMPTS, 1)
    return network


def test_dim_from_weights_loads_a_file_bit_for_bit(sd1_backend, tmp_path):
    source = saved(sd1_backend, BASE, tmp_path / "a.safetensors")
    config = BASE.replace(network_dim=2, network_alpha=1.0, dim_from_weights=True)
    network, errors = network_from_weights(sd1_backend, config, read_start_weights([tmp_path / "a.safetensors"]))
    assert not errors and network.names == source.names
    for (name, a), (_, b) in zip(network.items(), source.items()):
        assert (a.rank, float(a.alpha)) == (8, 4.0)
        assert torch.equal(a.lora_up.weight, b.lora_up.weight) and torch.equal(a.lora_down.weight, b.lora_down.weight), name


def test_a_higher_rank_is_svd_truncated_to_the_training_rank(sd1_backend, tmp_path):
    source = saved(sd1_backend, BASE, tmp_path / "a.safetensors")
    network, errors = network_from_weights(sd1_backend, BASE.replace(network_dim=2), read_start_weights([tmp_path / "a.safetensors"]))
    assert set(errors) == {sd1_backend.kohya_name(n) for n in network.names} and all(0 < e < 1 for e in errors.values())
    for name, lora in network.items():
        assert lora.rank == 2
        u, s, vh = torch.linalg.svd(delta(source.lora(name)).double())
        best = (u[:, :2] * s[:2]) @ vh[:2]
        torch.testing.assert_close(delta(lora).double(), best, rtol=0, atol=1e-5)


def test_a_lower_rank_fills_the_first_columns_and_the_rest_starts_fresh(sd1_backend, tmp_path):
    source = saved(sd1_backend, BASE.replace(network_dim=2), tmp_path / "a.safetensors")
    fresh = build_network(sd1_backend, BASE)
    network, errors = network_from_weights(sd1_backend, BASE, read_start_weights([tmp_path / "a.safetensors"]))
    assert not errors
    for name, lora in network.items():
        torch.testing.assert_close(delta(lora), delta(source.lora(name)), rtol=0, atol=1e-6)
        assert torch.equal(lora.lora_down.weight[2:], fresh.lora(name).lora_down.weight[2:])
        assert not lora.lora_up.weight[:, 2:].any()


def test_a_weighted_merge_of_several_files(sdxl_backend, tmp_path):
    config = BASE.replace(train_text_encoder="alongside", network_dim=2)
    a = saved(sdxl_backend, config, tmp_path / "a.safetensors", seed=1)
    b = saved(sdxl_backend, config, tmp_path / "b.safetensors", seed=2)
    for mode in ("sum", "concat", "svd"):
        start = read_start_weights([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], [1.0, -0.5], mode)
        network, errors = network_from_weights(sdxl_backend, config.replace(network_dim=4), start)
        assert {name.split(":")[0] for name in network.names if split_name(name)} == {"te1", "te2"}
        for name, lora in network.items():
            torch.testing.assert_close(delta(lora), delta(a.lora(name)) - 0.5 * delta(b.lora(name)), rtol=0, atol=1e-5)


def test_foreign_and_untargeted_keys_are_refused_by_name(sd1_backend, tmp_path):
    saved(sd1_backend, BASE.replace(train_text_encoder="alongside"), tmp_path / "te.safetensors")
    file = load_slider(tmp_path / "te.safetensors")
    with pytest.raises(ConfigError, match="lora_te_text_model_encoder_layers_0_"):
        network_from_weights(sd1_backend, BASE, read_start_weights([tmp_path / "te.safetensors"]))
    tensors = {**file.tensors, "lora_unet_not_a_layer.lora_down.weight": torch.zeros(2, 4),
               "lora_unet_not_a_layer.lora_up.weight": torch.zeros(4, 2)}
    write_slider_file(tmp_path / "foreign.safetensors", tensors, {})
    with pytest.raises(ConfigError, match="network_weights: 1 of .* not in this model: lora_unet_not_a_layer"):
        network_from_weights(sd1_backend, BASE.replace(train_text_encoder="alongside"),
                             read_start_weights([tmp_path / "foreign.safetensors"]))
    with pytest.raises(ConfigError, match="network_weights_multipliers"):
        read_start_weights([tmp_path / "te.safetensors"], [1.0, 2.0])
    with pytest.raises(ConfigError, match="dim_from_weights"):
        run_training(RunRequest(PROMPTS, BASE.replace(dim_from_weights=True), backend=sd1_backend))


def test_initializer_form_on_a_built_network(sd1_backend, tmp_path):
    source = saved(sd1_backend, BASE, tmp_path / "a.safetensors")
    network = build_network(sd1_backend, BASE)
    assert not initialize_from_weights(network, sd1_backend, read_start_weights([tmp_path / "a.safetensors"]))
    assert all(torch.equal(a.lora_up.weight, b.lora_up.weight) for (_, a), (_, b) in zip(network.items(), source.items()))


def test_train_from_weights_and_resume_exactly(sd1_backend, tmp_path):
    saved(sd1_backend, BASE, tmp_path / "a.safetensors")
    start = read_start_weights([tmp_path / "a.safetensors"])
    config = BASE.replace(save_every_n_steps=2)
    full = run_training(RunRequest(PROMPTS, config, backend=sd1_backend, out_dir=tmp_path / "full", network_weights=start))
    resumed = run_training(RunRequest(PROMPTS, config, backend=sd1_backend, out_dir=tmp_path / "again", network_weights=start,
                                      resume=tmp_path / "full" / "checkpoints" / "step-000002.pt"))
    assert full.steps_done == resumed.steps_done == 4
    first = load_slider(tmp_path / "a.safetensors")
    moved = False
    for (name, a), (_, b) in zip(full.network.items(), resumed.network.items()):
        assert torch.equal(a.lora_up.weight, b.lora_up.weight), name
        moved |= not torch.equal(a.lora_up.weight.detach(), first.module_state(sd1_backend.kohya_name(name))["lora_up.weight"])
    assert moved


def test_run_file_keys(tmp_path):
    from loba.config.runfile import load_run_file

    body = 'pretrained_model_name_or_path = "m"\n[[prompts]]\ntarget = "a cat"\npositive = "cat"\n'
    (tmp_path / "run.toml").write_text('network_weights = ["a.safetensors", "b.safetensors"]\nnetwork_weights_multipliers = [1, -0.5]\n'
                                       'network_weights_merge = "svd"\ndim_from_weights = true\n' + body)
    run = load_run_file(tmp_path / "run.toml")
    assert run.network_weights == (tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert run.network_weights_multipliers == (1.0, -0.5) and run.network_weights_merge == "svd"
    assert run.config.network.dim_from_weights
    assert load_run_file(tmp_path / "run.toml").config.network.train_text_encoder == "off"
    (tmp_path / "bad.toml").write_text("network_weights = 3\n" + body)
    with pytest.raises(ConfigError, match="network_weights"):
        load_run_file(tmp_path / "bad.toml")
