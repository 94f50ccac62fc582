"""The flow toy world: a toy Flux transformer trained by flow matching on the toy world (tiny configs and step
counts here: seconds, not the real recipe), its weight file, its FluxBackend, its sampler, its CLI and demo."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest
import torch

from loba.cli.main import main
from loba.toyworld.files import DEFAULT_WEIGHTS, ToyWeightsMissing, load_toy_components
from loba.toyworld.flow_build import FlowRecipe, build_flow
from loba.toyworld.flow_model import FLOW_CONFIG, FlowComponents, build_flow_transformer, encode_text, flow_velocity

TINY_CONFIG = {**FLOW_CONFIG, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2,
               "axes_dims_rope": (4, 6, 6)}
TINY = FlowRecipe(dataset_size=16, denoiser_steps=4, denoiser_stop_at=4, denoiser_batch=2, save_every=2, warmup=2, threads=1)


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def base():
    return load_toy_components()


@pytest.fixture(scope="module")
def whole(tmp_path_factory, base):
    components, record = build_flow(tmp_path_factory.mktemp("whole"), base, TINY, log=lambda message: None, config=TINY_CONFIG)
    return {k: v.clone() for k, v in components.transformer.state_dict().items()}, record


def _tiny_components(base, seed=0) -> FlowComponents:
    torch.manual_seed(seed)
    return FlowComponents(build_flow_transformer(TINY_CONFIG), base.text_encoder, base.tokenizer, base.vae,
                          base.scaling_factor).eval()


def test_an_interrupted_build_resumes_to_the_same_weights(tmp_path, monkeypatch, base, whole):
    import loba.toyworld.flow_train as flow_train

    state, record = whole
    real = flow_train._save_progress

    def save_then_stop(path, step, *args):
        real(path, step, *args)
        if step == 2:
            raise Interrupted(step)

    monkeypatch.setattr(flow_train, "_save_progress", save_then_stop)
    with pytest.raises(Interrupted):
        build_flow(tmp_path, base, TINY, log=lambda message: None, config=TINY_CONFIG)
    assert (tmp_path / "flow-dataset.pt").is_file() and not (tmp_path / "flow-denoiser.pt").exists()
    monkeypatch.setattr(flow_train, "_save_progress", real)
    seen = []
    resumed, _ = build_flow(tmp_path, base, TINY, log=seen.append, config=TINY_CONFIG)
    assert "reusing flow-dataset.pt" in seen and "flow denoiser resumes at step 2" in seen
    after = resumed.transformer.state_dict()
    assert all(torch.equal(after[k], state[k]) for k in state)  # same draws, same weights as the uninterrupted build
    assert record["recipe"]["denoiser_steps"] == 4
    # ... and it trained: the EMA moved away from the seeded initialization
    assert any(not torch.equal(after[k], v) for k, v in _tiny_components(base).transformer.state_dict().items())


def test_a_finished_build_is_reused_without_training(tmp_path, base, whole):
    build_flow(tmp_path, base, TINY, log=lambda message: None, config=TINY_CONFIG)
    seen = []
    again, _ = build_flow(tmp_path, base, TINY, log=seen.append, config=TINY_CONFIG)
    assert "reusing flow-denoiser.pt" in seen
    assert all(torch.equal(again.transformer.state_dict()[k], v) for k, v in whole[0].items())


def _beside_base(folder):
    target = folder / DEFAULT_WEIGHTS.name
    try:
        os.symlink(DEFAULT_WEIGHTS, target)
    except OSError:
        shutil.copy(DEFAULT_WEIGHTS, target)
    return target


def test_flow_file_round_trip_reuses_the_base_world(tmp_path, base):
    from loba.toyworld.flow_files import read_flow_info, save_flow_checkpoint

    components = _tiny_components(base, seed=3)
    path = save_flow_checkpoint(tmp_path / "flow.safetensors", components, metadata={"competence": {"accuracy": {"color": 0.5}}})
    with pytest.raises(ToyWeightsMissing, match="toyworld.safetensors"):
        load_toy_components(path)  # the VAE and text encoder come from the base file beside it
    _beside_base(tmp_path)
    loaded = load_toy_components(path)
    assert isinstance(loaded, FlowComponents) and loaded.scaling_factor == pytest.approx(base.scaling_factor)
    for key, tensor in components.transformer.state_dict().items():
        assert torch.equal(loaded.transformer.state_dict()[key], tensor.half().float()), key
    info = read_flow_info(path)
    assert info["base_world"] == "toyworld.safetensors" and info["competence"]["accuracy"]["color"] == 0.5
    assert info["configs"]["transformer"]["guidance_embeds"] is False


def test_flow_backend_is_a_flux_backend_on_the_flow_sigmas(base):
    from loba.models.flux_backend import FluxBackend
    from loba.models.flux_schedule import flux_sigmas
    from loba.toyworld.backend import toy_backend

    components = _tiny_components(base)
    backend = toy_backend(components)
    assert isinstance(backend, FluxBackend) and backend.prediction_type == "flow" and backend.family == "flux"
    assert backend.guidance is None and backend.native_resolution == 64 and backend.latent_channels == 4
    assert torch.equal(backend.noise_schedule().sigmas, flux_sigmas(0.0)) and float(backend.sigmas[-1]) == 1.0
    cond = backend.encode_prompts(["a red circle"])["a red circle"]
    context, pooled = encode_text(base.tokenizer, base.text_encoder, ["a red circle"])
    assert torch.equal(cond.context, context) and torch.equal(cond.pooled, pooled) and cond.context.shape == (1, 16, 64)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = backend.predict(x, torch.tensor([999, 250]), cond.repeat(2))
    expected = flow_velocity(components.transformer, x, torch.tensor([1.0, 0.251]), context.repeat(2, 1, 1), pooled.repeat(2, 1))
    assert torch.allclose(out, expected, atol=1e-6)
    assert backend.kohya_name("transformer_blocks.0.attn.to_q").startswith("lora_transformer_")


def test_flow_sampler_walks_flow_euler_from_sigma_one(base, monkeypatch):
    import loba.toyworld.flow_sampling as flow_sampling
    from loba.toyworld.samplers import toy_sampler

    sampler = toy_sampler(_tiny_components(base))
    assert isinstance(sampler, flow_sampling.FlowToySampler)
    seen = []
    real = flow_sampling.flow_velocity
    monkeypatch.setattr(flow_sampling, "flow_velocity", lambda t, x, sigma, c, p: seen.append(float(sigma[0])) or real(t, x, sigma, c, p))
    one = sampler.sample(["a red circle", "a square"], [1, 2], steps=4, cfg=3.0)
    assert one.shape == (2, 64, 64, 3) and one.dtype.name == "uint8"
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])  # trailing grid: 999, 749, 499, 249, then to x0
    alone = sampler.sample(["a square"], [2], steps=4, cfg=3.0)
    # a sample's noise depends on its seed only, not on its batch (batched float sums may round one level apart)
    assert abs(alone[0].astype(int) - one[1].astype(int)).max() <= 1


def test_flow_recipes_target_the_flux_layers(base):
    from loba.adapters.targeting import select_targets
    from loba.config.runfile import split_run_table
    from loba.prompts.loader import read_prompt_table
    from loba.toyworld.demo import DEMO_RECIPES, recipe_path

    transformer = build_flow_transformer()
    for name in DEMO_RECIPES:
        path = recipe_path(name, "train", world="flow")
        _, config, prompts = split_run_table(read_prompt_table(path), path.parent, path.name)
        assert config.sampling.timestep_spacing == "trailing" and prompts.pairs()
        names = [spec.name for spec in select_targets(transformer, config.network)]
        assert names and all(n.startswith(("transformer_blocks.", "single_transformer_blocks.")) for n in names)
        if name == "erase-red":  # joint attention of the double blocks only
            assert all(n.startswith("transformer_blocks.") and ".attn." in n for n in names)
    with pytest.raises(ValueError, match="SD1 recipes"):
        recipe_path("erase-red", "train", "leco-classic", world="flow")


RUN_FILE = """
network_dim = 4
network_alpha = 4.0
preset = "flux_double_attention"
timestep_spacing = "trailing"
learning_rate = 5e-3
max_train_steps = 30
max_denoising_steps = 2
seed = 0

[[prompts]]
target = "a red circle"
positive = "a red circle"
unconditional = "a circle"
neutral = "a circle"
action = "erase"
resolution = 64
batch_size = 2
"""


def test_short_slider_run_on_the_flow_world_lowers_the_loss(tmp_path):
    """The shipped flow world (or a skip where it is not built): one erase pair, a 2-step grid, 30 steps."""
    from loba.config.runfile import split_run_table
    from loba.prompts.loader import read_prompt_table
    from loba.toyworld.backend import toy_backend
    from loba.toyworld.worlds import world_weights
    from loba.train.run import RunRequest, run_training

    if not world_weights("flow").is_file():
        pytest.skip("the flow world is not built (loba toyworld build --world flow)")
    path = tmp_path / "run.toml"
    path.write_text(RUN_FILE)
    _, config, prompts = split_run_table(read_prompt_table(path), path.parent, path.name)
    backend = toy_backend(load_toy_components(world_weights("flow")))
    before = {k: v.clone() for k, v in backend.transformer.state_dict().items()}
    slider = run_training(RunRequest(prompts, config, backend=backend, out_dir=tmp_path / "out"))
    with open(tmp_path / "out" / "loss.csv") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert slider.steps_done == 30 and len(losses) == 30
    assert sum(losses[-8:]) < 0.8 * sum(losses[:8])
    assert all(torch.equal(backend.transformer.state_dict()[k], v) for k, v in before.items())  # base untouched


def test_cli_builds_the_flow_world(tmp_path, monkeypatch, capsys):
    import loba.toyworld.flow_package as package

    calls = []
    monkeypatch.setattr(package, "build_and_package_flow", lambda work, out, recipe, **kw: calls.append((work, out, recipe, kw)))
    out = tmp_path / "flow.safetensors"
    assert main(["toyworld", "build", "--world", "flow", "--out", str(out), "--work", str(tmp_path), "--denoiser-steps", "7",
                 "--no-competence"]) == 0
    [(work, written, recipe, kw)] = calls
    assert work == tmp_path and written == out and recipe.denoiser_steps == 7 and kw == {"competence": False}
    assert main(["toyworld", "build", "--world", "flow", "--out", str(out), "--autoencoder-steps", "3"]) != 0
    assert "reuses the shipped autoencoder" in capsys.readouterr().err


def test_demo_cli_takes_worlds(tmp_path, monkeypatch, capsys):
    import loba.toyworld.demo as demo

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda *args, **kwargs: calls.append(kwargs))
    assert main(["demo", "--out", str(tmp_path), "--only", "sliders", "--world", "toyworld,flow"]) == 0
    assert main(["demo", "--out", str(tmp_path), "--only", "sliders"]) == 0
    assert [c["worlds"] for c in calls] == [("toyworld", "flow"), ("toyworld",)]
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--world", "entangled"])
    assert "unknown world 'entangled'" in capsys.readouterr().err


def test_quick_demo_runs_both_worlds_side_by_side(tmp_path, base, capsys, monkeypatch):
    """Untrained tiny flow weights beside the shipped base: the flow rows run the flow recipes on the FluxBackend."""
    import loba.toyworld.worlds as worlds
    from loba.toyworld.flow_files import save_flow_checkpoint

    _beside_base(tmp_path)
    flow = save_flow_checkpoint(tmp_path / "flow.safetensors", _tiny_components(base))
    monkeypatch.setitem(worlds.WORLDS, "flow", flow)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quick", "--only", "sliders", "--world", "toyworld,flow"]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert list(summary) == ["erase-red", "erase-red [flow]", "size-slider", "size-slider [flow]"]
    assert summary["erase-red [flow]"]["world"] == "flow"
    metrics = json.loads((tmp_path / "demo" / "flow" / "erase-red" / "eval" / "metrics.json").read_text())
    assert metrics["sampling"]["sampler"] == "flow_euler"
    table = capsys.readouterr().out
    assert "size-slider [flow]" in table and "erase-red " in table
    from safetensors import safe_open

    with safe_open(str(tmp_path / "demo" / "flow" / "erase-red" / "slider.safetensors"), framework="pt") as handle:
        assert all(key.startswith("lora_unet_double_blocks_") for key in handle.keys())
        assert handle.metadata()["ss_base_model_version"] == "flux1"


def test_shipped_flow_world_is_small_loadable_and_measured():
    from loba.models.flux_backend import FluxBackend
    from loba.models.sources import ModelSource, load_backend
    from loba.toyworld.flow_files import read_flow_info
    from loba.toyworld.worlds import world_names, world_weights

    assert "flow" in world_names()
    path = world_weights("flow")
    if not path.is_file():
        pytest.skip("the flow world is not built (loba toyworld build --world flow)")
    assert path.stat().st_size <= 20_000_000
    info = read_flow_info(path)
    assert set(info["competence"]["accuracy"]) == {"shape", "color", "size", "background"}
    backend = load_backend(ModelSource("toyworld-flow"))
    assert isinstance(backend, FluxBackend) and backend.prediction_type == "flow"
