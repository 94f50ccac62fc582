"""LyCORIS slider files (LoHa, LoKr, DoRA): exact save/load round trip on SD1 and SDXL, metadata as LyCORIS
writes it, broken files refused, and merging converts LoHa/LoKr to LoRA (DoRA refused: it needs the model)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from support.backends import unet_inputs
from support.sliders import save_slider
from support.tiny_models import tiny_unet

from loba.adapters import AdapterNetwork
from loba.adapters.targeting import select_targets
from loba.config import NetworkConfig
from loba.errors import AdapterFileError
from loba.models.naming import KohyaNames
from loba.sliders.kohya import SliderFile, load_slider, network_from_file
from loba.sliders.lycoris_keys import lycoris_update
from loba.sliders.lycoris_merge import kernel_of
from loba.sliders.merge import merge_sliders

ALGOS = ("loha", "lokr", "dora")


def _network(unet, algo: str) -> AdapterNetwork:
    cfg = NetworkConfig(preset="all_linear_conv", algo=algo, network_dim=4, network_alpha=2.0, conv_dim=2, conv_alpha=1.0)
    network = AdapterNetwork(select_targets(unet, cfg), unet)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(2)
        for name, param in network.named_parameters():
            param.copy_(param * 1.05 if name.endswith("dora_scale") else torch.randn_like(param) * 0.1)
    return network


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("algo", ALGOS)
def test_round_trip_is_exact_and_rebuilds_the_same_network(family, algo, tmp_path):
    unet = tiny_unet(family)
    names = KohyaNames(unet, family)
    network = _network(unet, algo)
    path = save_slider(tmp_path / "s.safetensors", network, names.kohya_name)
    loaded = load_slider(path)
    meta = loaded.metadata
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"])["algo"] == ("lora" if algo == "dora" else algo)
    rebuilt = network_from_file(loaded, unet, names.module_name_from_kohya)
    assert {lora.algo for _, lora in rebuilt.items()} == {algo}
    x, t, context = unet_inputs(unet)
    kwargs = {}
    if family == "sdxl":
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.zeros(2, 32), "time_ids": torch.zeros(2, 6)}
    with torch.no_grad():
        with network.attached(unet):
            expected = unet(x, t, context, **kwargs).sample
        with rebuilt.attached(unet):
            assert torch.equal(unet(x, t, context, **kwargs).sample, expected)


def test_broken_lycoris_files_are_refused(tmp_path):
    stem = "lora_unet_a"
    bad = {f"{stem}.hada_w1_a": torch.randn(4, 2), f"{stem}.hada_w1_b": torch.randn(2, 6),
           f"{stem}.hada_w2_a": torch.randn(4, 2), f"{stem}.hada_w2_b": torch.randn(3, 6)}
    save_file(bad, str(tmp_path / "shapes.safetensors"))
    with pytest.raises(AdapterFileError, match="'lora_unet_a' has inconsistent shapes"):
        load_slider(tmp_path / "shapes.safetensors")
    save_file({f"{stem}.lokr_w1": torch.randn(2, 2)}, str(tmp_path / "half.safetensors"))
    with pytest.raises(AdapterFileError, match=r"\(lokr\) has no lokr_w2 or lokr_w2_a"):
        load_slider(tmp_path / "half.safetensors")
    nan = {f"{stem}.lokr_w1": torch.full((2, 2), float("nan")), f"{stem}.lokr_w2": torch.randn(2, 3)}
    save_file(nan, str(tmp_path / "nan.safetensors"))
    with pytest.raises(AdapterFileError, match="not finite"):
        load_slider(tmp_path / "nan.safetensors")
    dora = {f"{stem}.lora_down.weight": torch.randn(2, 6), f"{stem}.lora_up.weight": torch.randn(4, 2),
            f"{stem}.dora_scale": torch.randn(3, 3)}
    save_file(dora, str(tmp_path / "dora.safetensors"))
    with pytest.raises(AdapterFileError, match="dora_scale has shape"):
        load_slider(tmp_path / "dora.safetensors")


@pytest.mark.parametrize("algo", ["loha", "lokr"])
def test_merge_converts_loha_and_lokr_to_lora(algo, tmp_path):
    unet = tiny_unet("sd1")
    names = KohyaNames(unet, "sd1")
    source = load_slider(save_slider(tmp_path / "s.safetensors", _network(unet, algo), names.kohya_name))
    for mode, rank in (("sum", None), ("concat", None), ("svd", 2)):
        merged, report = merge_sliders([source], [0.5], mode, rank)
        assert merged.metadata["ss_network_module"] == "networks.lora"
        assert not any(".hada_" in key or ".lokr_" in key for key in merged.tensors)
        for stem in source.module_stems():
            want = 0.5 * lycoris_update(source.module_state(stem))
            state = merged.module_state(stem)
            got = state["lora_up.weight"].flatten(1) @ state["lora_down.weight"].flatten(1) * (
                float(state["alpha"]) / state["lora_down.weight"].shape[0])
            if mode != "svd":
                assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item()), (mode, stem)
            if stem.endswith("resnets_0_conv1"):
                assert state["lora_down.weight"].ndim == 4  # 3x3 kernel restored for hosts that build a Conv2d
        assert report.relative_error == 0.0 or mode == "svd"


def test_dora_merge_is_refused_with_the_fix(tmp_path):
    unet = tiny_unet("sd1")
    source = load_slider(save_slider(tmp_path / "d.safetensors", _network(unet, "dora"), KohyaNames(unet, "sd1").kohya_name))
    with pytest.raises(AdapterFileError, match="DoRA.*Bake Slider"):
        merge_sliders([source], [1.0], "sum")


def test_conv_kernel_is_read_from_the_layer_name():
    assert kernel_of("lora_unet_down_blocks_0_resnets_0_conv1", 288) == (32, 3, 3)
    assert kernel_of("lora_unet_input_blocks_1_0_in_layers_2", 288) == (32, 3, 3)
    assert kernel_of("lora_unet_down_blocks_0_attentions_0_proj_in", 288) == (288,)
    assert SliderFile({}).module_stems() == set()


def test_other_trainers_lycoris_forms_load_and_merge(tmp_path):
    """LoHa with tucker cores (3x3 conv) and LoKr with a factored w1 and a full w2, as LyCORIS writes them."""
    gen = torch.Generator().manual_seed(7)
    conv, linear = "lora_unet_down_blocks_0_resnets_0_conv1", "lora_unet_down_blocks_0_attentions_0_proj_out"
    r, out, inp = 2, 6, 4
    tensors = {f"{conv}.hada_t1": torch.randn(r, r, 3, 3, generator=gen), f"{conv}.hada_w1_a": torch.randn(r, out, generator=gen),
               f"{conv}.hada_w1_b": torch.randn(r, inp, generator=gen), f"{conv}.hada_t2": torch.randn(r, r, 3, 3, generator=gen),
               f"{conv}.hada_w2_a": torch.randn(r, out, generator=gen), f"{conv}.hada_w2_b": torch.randn(r, inp, generator=gen),
               f"{conv}.alpha": torch.tensor(1.0),
               f"{linear}.lokr_w1_a": torch.randn(2, r, generator=gen), f"{linear}.lokr_w1_b": torch.randn(r, 2, generator=gen),
               f"{linear}.lokr_w2": torch.randn(3, 4, generator=gen), f"{linear}.alpha": torch.tensor(4.0)}
    save_file(tensors, str(tmp_path / "other.safetensors"))
    source = load_slider(tmp_path / "other.safetensors")
    state = source.module_state(conv)

    def tucker(t, b, a):
        return torch.einsum("i j k l, j r, i p -> p r k l", t, b, a)

    loha = tucker(state["hada_t1"], state["hada_w1_b"], state["hada_w1_a"]) * tucker(state["hada_t2"], state["hada_w2_b"],
                                                                                     state["hada_w2_a"]) * (1.0 / r)
    assert torch.allclose(lycoris_update(state), loha.reshape(out, -1))
    lokr_state = source.module_state(linear)
    lokr = torch.kron(lokr_state["lokr_w1_a"] @ lokr_state["lokr_w1_b"], lokr_state["lokr_w2"]) * (4.0 / r)
    assert torch.allclose(lycoris_update(lokr_state), lokr)
    merged, _ = merge_sliders([source], [1.0], "sum")
    for stem, want in ((conv, loha.reshape(out, -1)), (linear, lokr)):
        got = merged.module_state(stem)
        assert (got["lora_up.weight"].flatten(1) @ got["lora_down.weight"].flatten(1) - want).abs().max() < 1e-4
    assert merged.module_state(conv)["lora_down.weight"].shape[1:] == (inp, 3, 3)
