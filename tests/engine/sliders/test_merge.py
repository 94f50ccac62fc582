"""Merging sliders: every mode stores the exact weighted sum of the updates (svd: its best rank-r approximation)."""

from __future__ import annotations

import pytest
import torch
from support.sliders import module_delta

from loba.errors import AdapterFileError, ConfigError
from loba.sliders.kohya import SliderFile, load_slider, write_slider_file
from loba.sliders.merge import MERGE_MODES, merge_sliders


def _lora(seed: int, rank: int, alpha: float, conv: bool = False, stems=("lora_unet_a", "lora_unet_b")) -> SliderFile:
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for stem in stems:
        if conv:
            tensors[f"{stem}.lora_down.weight"] = torch.randn(rank, 6, 3, 3, generator=gen)
            tensors[f"{stem}.lora_up.weight"] = torch.randn(5, rank, 1, 1, generator=gen)
        else:
            tensors[f"{stem}.lora_down.weight"] = torch.randn(rank, 12, generator=gen)
            tensors[f"{stem}.lora_up.weight"] = torch.randn(10, rank, generator=gen)
        tensors[f"{stem}.alpha"] = torch.tensor(alpha)
    return SliderFile(tensors, {}, f"lora{seed}")


def _expected(sources, weights, stem):
    return sum(w * module_delta(s, stem) for s, w in zip(sources, weights) if stem in s.module_stems())


def test_the_registry_lists_the_three_modes():
    assert set(MERGE_MODES.names()) == {"concat", "sum", "svd"}


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("mode", ["concat", "sum"])
def test_exact_modes_give_the_weighted_sum_of_updates(mode, conv):
    sources = [_lora(1, 2, 1.0, conv), _lora(2, 3, 3.0, conv), _lora(3, 2, 2.0, conv, stems=("lora_unet_a",))]
    weights = [1.0, -0.5, 2.0]
    merged, report = merge_sliders(sources, weights, mode)
    for stem in ("lora_unet_a", "lora_unet_b"):
        assert torch.allclose(module_delta(merged, stem), _expected(sources, weights, stem), atol=1e-4)
    assert report.relative_error < 1e-6
    if mode == "concat":
        assert report.ranks == {"lora_unet_a": 7, "lora_unet_b": 5}
    else:  # the true rank of a sum of rank-2 + rank-3 (+ rank-2) updates of a 10 x 12 (or 5 x 54) matrix
        assert report.ranks["lora_unet_b"] == 5 and report.ranks["lora_unet_a"] == (5 if conv else 7)


def test_svd_truncates_to_the_rank_and_reports_what_it_dropped():
    sources = [_lora(1, 4, 4.0), _lora(2, 4, 4.0)]
    merged, report = merge_sliders(sources, [1.0, 1.0], "svd", rank=2)
    assert set(report.ranks.values()) == {2}
    delta, approx = _expected(sources, [1.0, 1.0], "lora_unet_a"), module_delta(merged, "lora_unet_a")
    s = torch.linalg.svdvals(delta.double())
    best = float(s[2:].square().sum().sqrt() / s.square().sum().sqrt())  # Eckart-Young: nothing rank-2 does better
    assert abs(float((delta - approx).norm() / delta.norm()) - best) < 1e-4
    assert report.relative_error >= best - 1e-4  # the worst module's error is reported


def test_merged_file_round_trips_and_records_the_merge(tmp_path):
    merged, _ = merge_sliders([_lora(1, 2, 1.0), _lora(2, 2, 1.0)], [1.0, 0.5], "concat")
    path = write_slider_file(tmp_path / "m.safetensors", merged.tensors, merged.metadata)
    loaded = load_slider(path)
    assert all(torch.equal(loaded.tensors[k], merged.tensors[k]) for k in merged.tensors)
    assert '"mode": "concat"' in loaded.metadata["loba_merge"] and loaded.metadata["ss_network_dim"] == "4"


def test_bad_merges_name_the_problem():
    with pytest.raises(ConfigError, match="weights"):
        merge_sliders([_lora(1, 2, 1.0)], [1.0, 2.0])
    with pytest.raises(ConfigError, match="rank"):
        merge_sliders([_lora(1, 2, 1.0)], [1.0], "svd", rank=0)
    with pytest.raises(ConfigError, match="unknown merge mode 'avg'"):
        merge_sliders([_lora(1, 2, 1.0)], [1.0], "avg")
    with pytest.raises(AdapterFileError, match="different layer shapes"):
        merge_sliders([_lora(1, 2, 1.0), _lora(2, 2, 1.0, conv=True)], [1.0, 1.0])
