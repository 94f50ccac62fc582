"""The diffusers Flux backend on a tiny random FluxTransformer2DModel: packing, the pipeline's timestep and guidance
conventions, a run through the facade, the base bit-identical afterwards, and the kohya Flux file loading in
diffusers (reproducing the student) and in ComfyUI's LoraLoader key map (every key consumed, the same weights)."""

from __future__ import annotations

import pytest
import torch
from support.backends import assert_bit_identical, snapshot
from support.flux_models import stub_encode, tiny_transformer

from loba.config import TrainConfig
from loba.errors import ConfigError, SpecError
from loba.models.backend import Conditioning
from loba.models.flux_backend import FluxBackend, image_ids, pack_latents, unpack_latents
from loba.models.flux_schedule import flux_sigmas
from loba.prompts import PromptPair, PromptSet
from loba.sliders.kohya import load_slider, network_from_file
from loba.train.run import RunRequest, run_training

CONFIG = TrainConfig().replace(max_train_steps=16, max_denoising_steps=3, network_dim=2, network_alpha=1.0,
                               learning_rate=2e-2, seed=3, timestep_spacing="trailing")
# diffusers 0.42's kohya Flux loader hard-codes Flux.1's single-block linear1 split (3072 x 3 + 12288), and gives the
# layers outside the blocks (final_layer, img_in, txt_in, ...) no `transformer.` prefix, so FluxPipeline drops them:
# the diffusers check trains the default blocks without linear1; ComfyUI's and LOBA's read every layer, EXTRA too.
NOT_LINEAR1 = (r"^single_transformer_blocks\.\d+\.(attn\.to_[qkv]|proj_mlp)$",)
EXTRA = (r"^norm_out\.linear$", r"^x_embedder$", r"^context_embedder$", r"^time_text_embed\.guidance_embedder\.linear_1$",
         r"^transformer_blocks\.\d+\.norm1(_context)?\.linear$", r"^single_transformer_blocks\.\d+\.norm\.linear$")
# all_linear on Flux: kohya's scope, the attention and MLP layers of both block kinds (no modulation)
ALL_LINEAR = {f"transformer_blocks.0.{leaf}" for leaf in (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj",
    "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2")} | {
    f"single_transformer_blocks.0.{leaf}" for leaf in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out")}


def make_backend(guidance: bool = True) -> FluxBackend:
    return FluxBackend(tiny_transformer(guidance), stub_encode, flux_sigmas(1.15), guidance=3.5 if guidance else None,
                       native_resolution=32)


def erase_prompts() -> PromptSet:
    pair = PromptPair(target="a red circle", positive="red", neutral="a circle", action="erase", guidance_scale=2.0,
                      resolutions=((32, 32),), batch_size=1)
    return PromptSet((pair,), ())


# -- packing and the pipeline's conventions ----------------------------------------------------------------------
def test_pack_and_unpack_are_the_pipelines_and_inverse():
    from diffusers import FluxPipeline

    x = torch.randn(2, 16, 6, 4)
    packed = pack_latents(x)
    assert packed.shape == (2, 6, 64) and torch.equal(packed, FluxPipeline._pack_latents(x, 2, 16, 6, 4))
    assert torch.equal(unpack_latents(packed, 6, 4), x)
    assert torch.equal(FluxPipeline._unpack_latents(packed, 48, 32, 8), x)
    assert torch.equal(image_ids(6, 4, "cpu", torch.float32), FluxPipeline._prepare_latent_image_ids(2, 3, 2, "cpu", torch.float32))


def test_predict_is_the_transformer_called_as_fluxpipeline_calls_it():
    backend = make_backend()
    x = torch.randn(2, 16, 4, 6, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([100, 999])
    cond = Conditioning.cat([stub_encode(["a"])["a"], stub_encode(["b"])["b"]])
    out = backend.predict(x, t, cond)
    assert out.shape == x.shape
    sigmas = flux_sigmas(1.15)[t].float()
    with torch.no_grad():  # FluxPipeline: timestep = (sigmas * 1000) / 1000, guidance = full([B], scale)
        expected = backend.transformer(hidden_states=pack_latents(x), timestep=(sigmas * 1000) / 1000,
                                       guidance=torch.full((2,), 3.5), pooled_projections=cond.pooled,
                                       encoder_hidden_states=cond.context, txt_ids=torch.zeros(5, 3),
                                       img_ids=image_ids(4, 6, "cpu", torch.float32), return_dict=False)[0]
    assert torch.allclose(out, unpack_latents(expected, 4, 6), atol=1e-6)
    assert not torch.allclose(out[0], backend.predict(x, torch.tensor([500, 999]), cond)[0])  # the timestep matters


def test_bad_input_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="guidance"):  # schnell (no guidance embedding) given a guidance
        FluxBackend(tiny_transformer(guidance=False), stub_encode, flux_sigmas(0.0), guidance=3.5)
    with pytest.raises(ConfigError, match="guidance"):  # dev without one
        FluxBackend(tiny_transformer(), stub_encode, flux_sigmas(1.15), guidance=None)
    with pytest.raises(ConfigError, match="resolution"):
        make_backend().predict(torch.randn(1, 16, 3, 4), torch.tensor([5]), stub_encode(["a"])["a"])
    with pytest.raises(ConfigError, match="algo"):  # a LyCORIS adapter cannot be fused into kohya's qkv
        run_training(RunRequest(erase_prompts(), CONFIG.replace(algo="loha"), backend=make_backend()))
    prompts = PromptSet((PromptPair(target="x", resolutions=((40, 40),)),), ())
    with pytest.raises(SpecError, match="resolution.*multiple of 16 .Flux packs"):  # 40 px: not a multiple of 16, refused before model work
        run_training(RunRequest(prompts, CONFIG, backend=make_backend()))


# -- training and files ---------------------------------------------------------------------------------------------
def _train(tmp_path_factory, **network):
    backend = make_backend()
    backend.set_gradient_checkpointing(True)
    before = snapshot(backend.transformer)
    slider = run_training(RunRequest(erase_prompts(), CONFIG.replace(**network), backend=backend))
    path = slider.save(tmp_path_factory.mktemp("flux") / "flux-slider.safetensors")
    return backend, before, slider, path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every layer kohya's Flux files name: the blocks (all_linear) and the layers outside them."""
    return _train(tmp_path_factory, include=EXTRA)


@pytest.fixture(scope="module")
def trained_for_diffusers(tmp_path_factory):
    return _train(tmp_path_factory, exclude=NOT_LINEAR1)


def test_a_run_lowers_the_loss_and_leaves_the_base_bit_identical(trained):
    backend, before, slider, _ = trained
    losses = slider.losses
    assert slider.steps_done == 16 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4, losses
    assert_bit_identical(backend.transformer, before)
    assert backend.gradient_checkpointing()


def test_the_file_holds_kohya_flux_keys(trained):
    _, _, _, path = trained
    stems = load_slider(path).module_stems()
    assert {"lora_unet_double_blocks_0_img_attn_qkv", "lora_unet_double_blocks_0_txt_attn_qkv",
            "lora_unet_double_blocks_0_img_mod_lin", "lora_unet_single_blocks_0_linear2",
            "lora_unet_final_layer_adaLN_modulation_1", "lora_unet_img_in", "lora_unet_txt_in",
            "lora_unet_single_blocks_0_linear1", "lora_unet_guidance_in_in_layer"} <= stems
    assert not any("transformer" in stem for stem in stems)
    tensors = load_slider(path).tensors
    assert tensors["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"].shape == (6, 32)  # 3 parts x rank 2
    assert tensors["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"].shape == (96, 6)


def test_all_linear_is_kohyas_flux_scope():
    from loba.adapters.targeting import select_targets

    names = {t.name for t in select_targets(tiny_transformer(), TrainConfig().network)}
    assert names == ALL_LINEAR


def _student(backend, slider, x, t, cond):
    network = slider.network
    with torch.no_grad(), network.attached(backend.transformer):
        network.multiplier = 1.0
        return backend.predict(x, t, cond)


def test_the_file_reads_back_into_loba_as_the_same_student(trained):
    backend, _, slider, path = trained
    file = load_slider(path)
    network = network_from_file(type(file)(backend.model_tensors(file.tensors), file.metadata, file.path),
                                backend.transformer, backend.module_name_from_kohya)
    x, t, cond = torch.randn(1, 16, 4, 4), torch.tensor([600]), stub_encode(["a red circle"])["a red circle"]
    with torch.no_grad(), network.attached(backend.transformer):
        network.multiplier = 1.0
        read_back = backend.predict(x, t, cond)
    assert torch.allclose(read_back, _student(backend, slider, x, t, cond), atol=1e-5)


def test_diffusers_loads_the_file_and_reproduces_the_student(trained_for_diffusers):
    from diffusers import FluxPipeline

    backend, _, slider, path = trained_for_diffusers
    x, t, cond = torch.randn(1, 16, 4, 4), torch.tensor([600]), stub_encode(["a red circle"])["a red circle"]
    with torch.no_grad():
        base = backend.predict(x, t, cond)
    student = _student(backend, slider, x, t, cond)
    state = FluxPipeline.lora_state_dict(str(path))
    transformer = tiny_transformer()
    transformer.load_lora_adapter(state, prefix="transformer", adapter_name="loba")
    loaded = FluxBackend(transformer, stub_encode, flux_sigmas(1.15), native_resolution=32)
    with torch.no_grad():
        with_lora = loaded.predict(x, t, cond)
    assert not torch.allclose(with_lora, base, atol=1e-4)  # its output changes
    assert torch.allclose(with_lora, student, atol=1e-5)


def _comfy_flux(comfy):
    """ComfyUI's Flux model shaped like TINY (hidden 32, 2 heads, 1 double + 1 single block)."""
    unet_config = {"image_model": "flux", "in_channels": 16, "patch_size": 2, "out_channels": 16, "vec_in_dim": 16,
                   "context_in_dim": 32, "hidden_size": 32, "mlp_ratio": 4.0, "num_heads": 2, "depth": 1,
                   "depth_single_blocks": 1, "axes_dim": [4, 6, 6], "theta": 10000, "qkv_bias": True,
                   "guidance_embed": True}
    config = comfy.supported_models.Flux(unet_config)
    config.set_inference_dtype(torch.float32, None)
    return config.get_model({}), unet_config


def _comfy_weights(comfy, unet_config, transformer) -> dict[str, torch.Tensor]:
    """The diffusers weights in ComfyUI's layout, through ComfyUI's own flux_to_diffusers table."""
    table = comfy.utils.flux_to_diffusers(unet_config, output_prefix="diffusion_model.")
    out: dict[str, torch.Tensor] = {}
    for key, value in transformer.state_dict().items():
        target = table.get(key)
        if target is None:
            continue
        if isinstance(target, str):
            out[target] = value.clone()
            continue
        if target[1] is None:  # (name, None, function): the final layer's scale/shift swap
            out[target[0]] = target[2](value)
            continue
        _, offset, size = target[1]
        out.setdefault(target[0], []).append((offset, size, value))
    for name, parts in list(out.items()):
        if isinstance(parts, list):
            rows = max(offset + size for offset, size, _ in parts)
            full = torch.zeros(rows, *parts[0][2].shape[1:])
            for offset, size, value in parts:
                full[offset:offset + size] = value
            out[name] = full
    return out


def test_comfyui_consumes_every_key_and_patches_the_students_weights(trained, comfy):
    backend, _, slider, path = trained
    model, unet_config = _comfy_flux(comfy)
    key_map = comfy.lora.model_lora_keys_unet(model, {})
    tensors = load_slider(path).tensors
    patches = comfy.lora.load_lora(tensors, key_map)
    consumed = set()
    for stem in load_slider(path).module_stems():
        if key_map.get(stem) in patches:
            consumed |= {k for k in tensors if k.startswith(stem + ".")}
    assert consumed == set(tensors), sorted(set(tensors) - consumed)[:5]
    weights = _comfy_weights(comfy, unet_config, backend.transformer)
    lora_of = dict(slider.network.items())
    compared = 0
    for name, part in backend._flux_names()._parts.items():
        if name not in lora_of:
            continue
        compared += 1
        key = f"diffusion_model.{part.bfl}.weight"
        patched = comfy.lora.calculate_weight([(1.0, patches[key], 1.0, None, None)], weights[key].clone(), key)
        members = backend._flux_names()._groups[part.bfl]
        row = sum(p.rows for n, p in members if p.index < part.index)
        rows = slice(row, row + part.rows)
        lora = lora_of[name]
        delta = (lora.lora_up.weight @ lora.lora_down.weight) * float(lora.alpha) / lora.rank
        if part.bfl.endswith("adaLN_modulation.1"):  # ComfyUI's layout swaps diffusers' (scale, shift)
            delta = torch.cat(delta.detach().chunk(2)[::-1])
        assert torch.allclose(patched[rows] - weights[key][rows], delta.detach(), atol=1e-5), name
    assert compared == len(lora_of) == 24  # 14 double-block, 6 single-block and 4 outer layers


def test_a_run_can_start_from_a_flux_file(trained):
    from loba.adapters.from_weights import StartWeights, network_from_weights

    backend, _, slider, path = trained
    network, errors = network_from_weights(backend, CONFIG.replace(include=EXTRA), StartWeights((load_slider(path),), (1.0,)))
    trained_loras = dict(slider.network.items())
    assert set(dict(network.items())) == set(trained_loras)
    for name, lora in network.items():  # the fused file's parts are rank 2 again (svd of the split shared-down form)
        mine, theirs = (m.lora_up.weight @ m.lora_down.weight * float(m.alpha) / m.rank for m in (lora, trained_loras[name]))
        assert torch.allclose(mine, theirs, atol=1e-5), name
