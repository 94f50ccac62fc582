"""The Toy World Loader's `world = flow`: ComfyUI's own Flux model at toy size, predicting what the diffusers
transformer predicts; the toy CLIP gives the 16-token context and the pooled vector the model was trained on."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import run_node

from loba.toyworld.files import DEFAULT_WEIGHTS, load_toy_components
from loba.toyworld.flow_model import FLOW_CONFIG, FlowComponents, build_flow_transformer, encode_text, flow_velocity

require_comfyui()
pytestmark = COMFY_MARKS


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory):
    """Random toy Flux weights in a flow-world file beside the shipped base world."""
    from loba.toyworld.flow_files import save_flow_checkpoint

    folder = tmp_path_factory.mktemp("flow")
    try:
        os.symlink(DEFAULT_WEIGHTS, folder / DEFAULT_WEIGHTS.name)
    except OSError:
        shutil.copy(DEFAULT_WEIGHTS, folder / DEFAULT_WEIGHTS.name)
    base = load_toy_components()
    torch.manual_seed(5)
    transformer = build_flow_transformer({**FLOW_CONFIG, "num_layers": 1, "num_single_layers": 2})
    with torch.no_grad():  # diffusers zero-initializes some output layers: randomize so a wrong mapping shows
        for parameter in transformer.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    components = FlowComponents(transformer, base.text_encoder, base.tokenizer, base.vae, base.scaling_factor).eval()
    return save_flow_checkpoint(folder / "flow.safetensors", components)


def test_the_flow_world_loads_as_comfy_flux_and_predicts_as_diffusers(pack, flow_file, monkeypatch):
    import sys

    import comfy.model_base

    # The pack imports its own copy of the engine (nodes/ -> ..loba): patch the world table it reads.
    worlds = sys.modules[f"{pack.module.__name__}.loba.toyworld.worlds"]
    monkeypatch.setitem(worlds.WORLDS, "flow", flow_file)
    model, clip, vae = run_node(pack.nodes["LOBA_ToyWorldLoader"], world="flow").args
    assert isinstance(model.model, comfy.model_base.Flux) and model.model.diffusion_model.params.guidance_embed is False
    assert model.model.diffusion_model.params.depth == 1 and model.model.diffusion_model.params.depth_single_blocks == 2
    tokens = clip.tokenize("a red circle")
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    components = load_toy_components(flow_file)
    context, expected_pooled = encode_text(components.tokenizer, components.text_encoder, ["a red circle"])
    assert cond.shape == (1, 16, 64) and torch.allclose(cond.float(), context, atol=2e-3)
    assert torch.allclose(pooled.float(), expected_pooled, atol=2e-3)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.6])
    inner = model.model
    with torch.no_grad():
        denoised = inner.apply_model(x.to(inner.get_dtype()), sigma, c_crossattn=context.to(inner.get_dtype()),
                                     y=expected_pooled.to(inner.get_dtype())).float()
        velocity = flow_velocity(components.transformer, x, sigma, context, expected_pooled)
    assert torch.allclose(denoised, x - 0.6 * velocity, atol=5e-3 * velocity.abs().max().item())
    assert vae.first_stage_model is not None
