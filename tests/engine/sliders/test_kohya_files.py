"""kohya slider files: exact round trip, atomic writes, clear errors, and loading in diffusers."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file
from support.backends import randomize_up, unet_inputs
from support.sliders import save_slider
from support.tiny_models import tiny_pipeline, tiny_unet
from torch import nn

from loba.adapters import AdapterNetwork
from loba.adapters.targeting import select_targets
from loba.config import NetworkConfig
from loba.errors import AdapterFileError
from loba.models.naming import KohyaNames
from loba.sliders.atomic import atomic_write, atomic_write_text
from loba.sliders.kohya import load_slider, network_from_file


@pytest.fixture(scope="module")
def unet():
    return tiny_unet("sd1")


def make_network(root, preset="all_linear_conv", **options) -> AdapterNetwork:
    cfg = NetworkConfig(preset=preset, network_dim=4, network_alpha=2.0, conv_dim=2, conv_alpha=3.0, **options)
    network = AdapterNetwork(select_targets(root, cfg), root)
    randomize_up(network)
    return network


def test_save_load_round_trip_is_exact(unet, tmp_path):
    network = make_network(unet)
    names = KohyaNames(unet, "sd1")
    path = save_slider(tmp_path / "slider.safetensors", network, names.kohya_name, metadata={"loba_config": '{"a": 1}', "n": 3})
    loaded = load_slider(path)
    stems = {names.kohya_name(n) for n in network.names}
    assert loaded.module_stems() == stems
    for name, state in network.module_state().items():
        stem = names.kohya_name(name)
        for key, tensor in state.items():
            assert torch.equal(loaded.tensors[f"{stem}.{key}"], tensor)
            assert loaded.tensors[f"{stem}.{key}"].dtype == torch.float32
        assert loaded.tensors[f"{stem}.alpha"].ndim == 0
    meta = loaded.metadata
    assert meta["ss_network_module"] == "networks.lora"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2.0")
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "3.0"}
    assert meta["loba_config"] == '{"a": 1}' and meta["n"] == "3"


def test_linear_only_files_have_no_network_args(unet, tmp_path):
    network = make_network(unet, "attention")
    path = save_slider(tmp_path / "s.safetensors", network, KohyaNames(unet, "sd1").kohya_name)
    assert "ss_network_args" not in load_slider(path).metadata


def test_fp16_save_dtype(unet, tmp_path):
    network = make_network(unet)
    path = save_slider(tmp_path / "s.safetensors", network, KohyaNames(unet, "sd1").kohya_name, dtype=torch.float16)
    tensors = load_slider(path).tensors
    assert all(t.dtype == torch.float16 for t in tensors.values())
    some = next(k for k in tensors if k.endswith("lora_up.weight"))
    name = KohyaNames(unet, "sd1").module_name_from_kohya(some.split(".")[0])
    assert torch.equal(tensors[some], network.lora(name).lora_up.weight.detach().half())


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "slider.safetensors"
    target.write_bytes(b"old content")

    def half_then_fail(handle):
        handle.write(b"new partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["slider.safetensors"]


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    target = tmp_path / "sub" / "notes.txt"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"
    os.chmod(target, 0o640)
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and (target.stat().st_mode & 0o777) == 0o640
    assert os.listdir(target.parent) == ["notes.txt"]


def test_save_failure_keeps_the_previous_slider(unet, tmp_path, monkeypatch):
    path = tmp_path / "s.safetensors"
    network = make_network(unet, "attention")
    save_slider(path, network, KohyaNames(unet, "sd1").kohya_name)
    before = path.read_bytes()

    def broken_name(name):
        raise RuntimeError("naming failed")

    with pytest.raises(RuntimeError):
        save_slider(path, network, broken_name)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["s.safetensors"]


def test_unreadable_and_malformed_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(AdapterFileError, match="cannot read"):
        load_slider(garbage)
    with pytest.raises(AdapterFileError, match="cannot read"):
        load_slider(tmp_path / "missing.safetensors")
    loha = tmp_path / "loha.safetensors"  # LoHa files load (tests/engine/sliders/test_lycoris_files.py): not half of one
    save_file({"lora_unet_conv_in.hada_w1_a": torch.zeros(2, 2)}, str(loha))
    with pytest.raises(AdapterFileError, match=r"'lora_unet_conv_in' \(loha\) has no hada_w1_b"):
        load_slider(loha)
    peft = tmp_path / "peft.safetensors"
    save_file({"unet.conv_in.lora_A.weight": torch.zeros(2, 2)}, str(peft))
    with pytest.raises(AdapterFileError, match="'unet.conv_in.lora_A.weight' is not in kohya LoRA form"):
        load_slider(peft)
    lonely = tmp_path / "lonely.safetensors"
    save_file({"lora_unet_conv_in.lora_down.weight": torch.zeros(2, 4, 3, 3), "lora_unet_conv_in.alpha": torch.tensor(1.0)}, str(lonely))
    with pytest.raises(AdapterFileError, match="'lora_unet_conv_in' has no lora_up.weight partner"):
        load_slider(lonely)


def test_foreign_modules_are_listed(unet, tmp_path):
    network = make_network(unet, "attention")
    path = save_slider(tmp_path / "s.safetensors", network, KohyaNames(unet, "sd1").kohya_name)
    sdxl = tiny_unet("sdxl")
    with pytest.raises(AdapterFileError, match=r"do not match this model, e\.g\. lora_unet_down_blocks_0"):
        network_from_file(load_slider(path), sdxl, KohyaNames(sdxl, "sdxl").module_name_from_kohya)
    tensors = dict(load_slider(path).tensors)
    tensors.update({f"lora_te_text_model_encoder_layers_{i}_mlp_fc1.{k}": torch.zeros(2, 2) for i in range(7)
                    for k in ("lora_down.weight", "lora_up.weight")})
    mixed = tmp_path / "mixed.safetensors"
    save_file(tensors, str(mixed))
    with pytest.raises(AdapterFileError, match="7 of") as info:
        network_from_file(load_slider(mixed), unet, KohyaNames(unet, "sd1").module_name_from_kohya)
    assert str(info.value).count("lora_te_") == 5


def test_shape_mismatch_names_the_module(unet, tmp_path):
    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    path = tmp_path / "bad.safetensors"
    save_file({f"{stem}.lora_down.weight": torch.zeros(4, 99), f"{stem}.lora_up.weight": torch.zeros(32, 4),
               f"{stem}.alpha": torch.tensor(4.0)}, str(path))
    with pytest.raises(AdapterFileError, match=r"down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn2\.to_k"):
        network_from_file(load_slider(path), unet, KohyaNames(unet, "sd1").module_name_from_kohya)


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
def test_network_from_file_reproduces_the_outputs(kind, tmp_path):
    root = tiny_unet(kind)
    names = KohyaNames(root, kind)
    network = make_network(root)
    path = save_slider(tmp_path / "s.safetensors", network, names.kohya_name)
    rebuilt = network_from_file(load_slider(path), root, names.module_name_from_kohya)
    assert sorted(rebuilt.names) == sorted(network.names)
    x, t, ctx = unet_inputs(root)
    kwargs = sdxl_kwargs(2) if kind == "sdxl" else {}
    with torch.no_grad():
        with network.attached(root):
            first = root(x, t, ctx, **kwargs).sample
        with rebuilt.attached(root):
            second = root(x, t, ctx, **kwargs).sample
    assert torch.equal(first, second)


def test_linear_adapter_stored_as_1x1_conv_loads(tmp_path):
    root = nn.Sequential(nn.Linear(6, 5))
    path = tmp_path / "s.safetensors"
    save_file({"lora_unet_0.lora_down.weight": torch.randn(2, 6, 1, 1), "lora_unet_0.lora_up.weight": torch.randn(5, 2, 1, 1)},
              str(path))
    network = network_from_file(load_slider(path), root, lambda stem: "0" if stem == "lora_unet_0" else None)
    assert network.lora("0").lora_down.weight.shape == (2, 6) and float(network.lora("0").alpha) == 2.0


def sdxl_kwargs(batch: int) -> dict:
    gen = torch.Generator().manual_seed(5)
    return {"added_cond_kwargs": {"text_embeds": torch.randn(batch, 32, generator=gen), "time_ids": torch.randn(batch, 6, generator=gen)}}


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
def test_diffusers_load_lora_weights_matches_our_hooks(kind, tmp_path):
    """The saved file is what diffusers (via peft) loads: SD1 with diffusers names, SDXL with LDM names.

    all_linear_conv covers every family LOBA targets (attention, ff, proj_in/out, resnet convs,
    time_emb_proj, conv_shortcut, down/up samplers); diffusers converts all of them for these layouts.
    (diffusers cannot place the LDM upsampler of an up block *without* attention, output_blocks.N.1.conv,
    but no SDXL UNet has one: its last up block has no upsampler.)
    """
    pipe = tiny_pipeline(tmp_path / "pipe", kind=kind)
    root = pipe.unet
    network = make_network(root)
    path = save_slider(tmp_path / "slider.safetensors", network, KohyaNames(root, kind).kohya_name)
    x, t, ctx = unet_inputs(root)
    kwargs = sdxl_kwargs(2) if kind == "sdxl" else {}
    with torch.no_grad():
        base = root(x, t, ctx, **kwargs).sample
        with network.attached(root):
            ours = root(x, t, ctx, **kwargs).sample
        pipe.load_lora_weights(str(path))
        theirs = root(x, t, ctx, **kwargs).sample
    assert (ours - base).abs().max() > 1e-3
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
