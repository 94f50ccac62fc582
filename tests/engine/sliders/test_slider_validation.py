"""Slider tensors are checked on read, write and merge: shapes, rank, dtype, finite values, scalar alpha, and
(on merge) that all sources were made for one model family."""

import pytest
import torch
from safetensors.torch import save_file

from loba.errors import AdapterFileError, ConfigError
from loba.sliders.family import family_traits
from loba.sliders.kohya import SliderFile, load_slider, write_slider_file
from loba.sliders.merge import merge_sliders

STEM = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"


def module(down=(2, 8), up=(4, 2), alpha=2.0, dtype=torch.float32, stem=STEM) -> dict[str, torch.Tensor]:
    tensors = {f"{stem}.lora_down.weight": torch.randn(*down).to(dtype), f"{stem}.lora_up.weight": torch.randn(*up).to(dtype)}
    if alpha is not None:
        tensors[f"{stem}.alpha"] = alpha if isinstance(alpha, torch.Tensor) else torch.tensor(alpha)
    return tensors


def poisoned(key: str, value: float) -> dict[str, torch.Tensor]:
    tensors = module()
    tensors[f"{STEM}.{key}"] = tensors[f"{STEM}.{key}"].clone().fill_(value) if key != "alpha" else torch.tensor(value)
    return tensors


BAD = {
    "up and down disagree on the rank": (module(up=(4, 3)), "inconsistent shapes"),
    "a 3-D down": (module(down=(2, 8, 1), up=(4, 2, 1)), "inconsistent shapes"),
    "a conv up with a kernel": (module(down=(2, 8, 3, 3), up=(4, 2, 3, 3)), "inconsistent shapes"),
    "rank 0": (module(down=(0, 8), up=(4, 0)), "rank or size 0"),
    "NaN in down": (poisoned("lora_down.weight", float("nan")), "NaN or infinite"),
    "inf in up": (poisoned("lora_up.weight", float("inf")), "NaN or infinite"),
    "NaN alpha": (poisoned("alpha", float("nan")), "alpha holds NaN"),
    "alpha a vector": (module(alpha=torch.ones(3)), "alpha must be a single number"),
    "integer tensors": (module(dtype=torch.int32), "dtype int32"),
    "integer alpha": (module(alpha=torch.tensor(2)), "alpha has dtype int64"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_refused_on_load_naming_module_and_problem(tmp_path, case):
    tensors, problem = BAD[case]
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(AdapterFileError, match=problem) as caught:
        load_slider(path)
    assert STEM in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_slider_is_neither_written_nor_merged(tmp_path, case):
    tensors, problem = BAD[case]
    with pytest.raises(AdapterFileError, match=problem):
        write_slider_file(tmp_path / "out.safetensors", tensors, {})
    assert not list(tmp_path.iterdir())
    with pytest.raises(AdapterFileError, match=problem):
        merge_sliders([SliderFile(module()), SliderFile(tensors, path="b.safetensors")], [1.0, 1.0])


def test_a_good_module_loads_with_a_one_element_alpha(tmp_path):
    save_file(module(alpha=torch.ones(1)), str(tmp_path / "ok.safetensors"))
    assert load_slider(tmp_path / "ok.safetensors").module_stems() == {STEM}


def test_merge_refuses_sliders_of_different_families():
    sd1 = SliderFile(module(down=(2, 768)), {"ss_base_model_version": "sd_v1"}, "sd1.safetensors")
    sdxl = SliderFile(module(down=(2, 768)), {"ss_base_model_version": "sdxl_base_v1-0"}, "xl.safetensors")
    with pytest.raises(AdapterFileError, match="sd1.safetensors and xl.safetensors were made for different model families"):
        merge_sliders([sd1, sdxl], [1.0, 1.0])


def test_merge_tells_families_apart_without_metadata():
    sd1 = SliderFile(module(down=(2, 768)), path="a")
    ldm_stem = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
    sdxl = SliderFile(module(down=(2, 2048), stem=ldm_stem), path="b")
    sd2 = SliderFile(module(down=(2, 1024)), path="c")
    assert family_traits(sdxl) == {"layer names": "LDM (SDXL)", "text context width": "2048"}
    with pytest.raises(AdapterFileError, match="layer names"):
        merge_sliders([sd1, sdxl], [1.0, 1.0])
    with pytest.raises(AdapterFileError, match="text context width: 768 vs 1024"):
        merge_sliders([sd1, sd2], [1.0, 1.0])
    merged, _ = merge_sliders([sd1, SliderFile(module(down=(2, 768)), path="d")], [1.0, 0.5])
    assert merged.module_stems() == {STEM}


def test_merge_refuses_non_finite_weights():
    with pytest.raises(ConfigError, match="weights: the weight of slider 2 is nan"):
        merge_sliders([SliderFile(module()), SliderFile(module())], [1.0, float("nan")])
