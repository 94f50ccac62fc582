"""Load / Apply / Merge / Bake accept LyCORIS sliders (LoHa, LoKr, DoRA) on the toy world's ComfyUI MODEL:
Apply is the stock LoRA path bit for bit, Merge converts LoHa/LoKr to a LoRA that applies the same, Bake
writes what Apply samples, and a wrong-shaped LyCORIS file is refused on the node."""

from __future__ import annotations

import pytest
import torch
from support.comfy import COMFY_MARKS, comfy_eps, require_comfyui
from support.nodes import assert_untouched, pair, snapshot, train_inputs
from support.pack import run_node

from loba.adapters.lokr import factorization

require_comfyui()
pytestmark = COMFY_MARKS


@pytest.fixture(scope="module")
def lora_slider(pack, toy):
    return run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                    **train_inputs(resolution=0, max_train_steps=1, filename_prefix="loba/lyc_base")).args[0]


def _lycoris(pack, lora, algo: str, rank: int = 2):
    """A random LyCORIS file with the layers (and shapes) of a LoRA slider."""
    gen = torch.Generator().manual_seed(4)
    tensors = {}
    for stem in sorted(lora.module_stems()):
        down, up = lora.tensors[f"{stem}.lora_down.weight"], lora.tensors[f"{stem}.lora_up.weight"]
        out, cols = up.shape[0], down[0].numel()
        new = {"alpha": torch.tensor(1.0)}
        if algo == "loha":
            for i in (1, 2):
                new[f"hada_w{i}_a"] = torch.randn(out, rank, generator=gen) * 0.3
                new[f"hada_w{i}_b"] = torch.randn(rank, cols, generator=gen) * 0.3
        elif algo == "lokr":
            (out_l, out_k), (in_m, _) = factorization(out), factorization(down.shape[1])
            new["lokr_w1"] = torch.randn(out_l, in_m, generator=gen) * 0.3
            new["lokr_w2_a"] = torch.randn(out_k, rank, generator=gen) * 0.3
            new["lokr_w2_b"] = torch.randn(rank, cols // in_m, generator=gen) * 0.3
        else:
            new.update({"lora_down.weight": down, "lora_up.weight": torch.randn(up.shape, generator=gen) * 0.1,
                        "alpha": lora.tensors[f"{stem}.alpha"],
                        "dora_scale": torch.rand((1, down.shape[1]) + (1, 1) * (down.ndim == 4), generator=gen) + 0.5})
        tensors.update({f"{stem}.{key}": value for key, value in new.items()})
    return pack.module.loba.sliders.kohya.SliderFile(tensors, {"ss_network_module": "lycoris.kohya"}, f"{algo}.safetensors")


@pytest.mark.parametrize("algo", ["loha", "lokr", "dora"])
def test_apply_bake_and_load_accept_lycoris(pack, comfy, toy, lora_slider, algo):
    slider = _lycoris(pack, lora_slider, algo)
    before = snapshot(comfy, toy.model)
    x, context, y = before[2]
    t = torch.tensor([500.0])
    ours = run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=slider, strength=0.7).args[0]
    stock, _ = comfy.sd.load_lora_for_models(toy.model, None, slider.tensors, 0.7, 0)
    out = comfy_eps(comfy, ours, x, t, context, y)
    assert torch.equal(out, comfy_eps(comfy, stock, x, t, context, y))
    assert (out - before[1]).abs().max() > 1e-4
    baked = run_node(pack.nodes["LOBA_BakeSlider"], model=toy.model, slider=slider, strength=0.7, strength_2=1.0).args[0]
    assert torch.equal(comfy_eps(comfy, baked, x, t, context, y), out)
    path = run_node(pack.nodes["LOBA_SaveSlider"], slider=slider, filename_prefix=f"loba/{algo}", precision="float").args[0]
    import folder_paths

    name = next(n for n in folder_paths.get_filename_list("loras") if n.endswith(path.rsplit("/", 1)[-1]))
    loaded = run_node(pack.nodes["LOBA_LoadSlider"], lora_name=name).args[0]
    assert set(loaded.tensors) == set(slider.tensors)
    assert_untouched(comfy, toy.model, before, flags_too=False)


@pytest.mark.parametrize("algo", ["loha", "lokr"])
def test_merge_converts_lycoris_to_a_lora_that_applies_the_same(pack, comfy, toy, lora_slider, algo):
    slider = _lycoris(pack, lora_slider, algo)
    merged = run_node(pack.nodes["LOBA_MergeSliders"], slider_1=slider, weight_1=1.0, slider_2=lora_slider, weight_2=0.5,
                      mode="sum", rank=8, weight_3=1.0, weight_4=1.0).args[0]
    assert all(key.endswith(("lora_down.weight", "lora_up.weight", "alpha")) for key in merged.tensors)
    x, context, y = snapshot(comfy, toy.model)[2]
    t = torch.tensor([500.0])
    both = run_node(pack.nodes["LOBA_BakeSlider"], model=toy.model, slider=slider, strength=1.0, slider_2=lora_slider,
                    strength_2=0.5).args[0]
    applied = run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=merged, strength=1.0).args[0]
    assert (comfy_eps(comfy, both, x, t, context, y) - comfy_eps(comfy, applied, x, t, context, y)).abs().max() < 1e-5


def test_a_lycoris_file_of_another_model_is_refused_on_the_node(pack, toy, lora_slider):
    slider = _lycoris(pack, lora_slider, "loha")
    stem = sorted(slider.module_stems())[0]
    tensors = dict(slider.tensors)
    for key in ("hada_w1_b", "hada_w2_b"):
        tensors[f"{stem}.{key}"] = torch.randn(2, tensors[f"{stem}.{key}"].shape[1] + 3)
    with pytest.raises(ValueError, match="LOBA Apply Slider, input 'slider'.*in this MODEL"):
        run_node(pack.nodes["LOBA_ApplySlider"], model=toy.model, slider=pack.module.loba.sliders.kohya.SliderFile(tensors), strength=1.0)


def test_targeting_and_optimizer_widgets_train_a_dora_slider_with_dropout_and_its_ema(pack, toy):
    targeting = run_node(pack.nodes["LOBA_Targeting"], preset="all_linear", network_dim=2, network_alpha=1.0, conv_dim=2,
                         conv_alpha=1.0, include="", exclude="", rank_pattern="", lr_pattern="", algo="dora", dropout=0.1,
                         rank_dropout=0.1, module_dropout=0.1).args[0]
    optimizer = run_node(pack.nodes["LOBA_Optimizer"], optimizer="adamw", weight_decay=0.0, lr_scheduler="constant",
                         lr_warmup_steps=0, lr_scheduler_num_cycles=1, max_grad_norm=1.0, ema_decay=0.5).args[0]
    out = run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack), targeting=targeting,
                   optimizer=optimizer, **train_inputs(resolution=0, max_train_steps=2, filename_prefix="loba/dora_ema"))
    slider, path = out.args[0], out.args[2]
    assert any(key.endswith(".dora_scale") for key in slider.tensors)
    ema = path.replace(".safetensors", "-ema.safetensors")
    loaded = pack.module.loba.sliders.kohya.load_slider(ema)
    assert set(loaded.tensors) == set(slider.tensors) and loaded.metadata["loba_ema_decay"] == "0.5"
    stem = sorted(slider.module_stems())[0]
    assert not torch.equal(loaded.tensors[f"{stem}.lora_up.weight"], slider.tensors[f"{stem}.lora_up.weight"])
    # an older workflow without the new widgets still validates and trains plain LoRA
    old = run_node(pack.nodes["LOBA_Targeting"], preset="all_linear", network_dim=2, network_alpha=1.0, conv_dim=2,
                   conv_alpha=1.0, include="", exclude="", rank_pattern="", lr_pattern="").args[0]
    assert "algo" not in old.values
