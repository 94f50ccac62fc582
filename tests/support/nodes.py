"""Shared fixtures and helpers of the node-pack tests (tests/test_nodes*.py): the pack loaded as ComfyUI loads
it, tiny SD1 / SD2-v / SDXL models in ComfyUI objects, the toy world, and what "bit-identical" compares."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from support.backends import make_backend
from support.comfy import comfy_eps, comfy_model_from_diffusers
from support.pack import import_pack, pack_nodes, run_node

STUDENT_TOLERANCE = 1e-5


class DiffusersClip:
    """ComfyUI's CLIP interface over a tiny diffusers text encoder (the toy-world tests use ComfyUI's real CLIP)."""

    def __init__(self, backend):
        self.backend = backend

    def tokenize(self, text):
        return text

    def encode_from_tokens(self, tokens, return_pooled=False):
        with torch.inference_mode(False), torch.no_grad():
            cond = self.backend.encode_prompts([tokens])[tokens]
        with torch.inference_mode():  # as ComfyUI's CLIP returns them under the executor
            context = cond.context.clone()
            pooled = None if cond.pooled is None else cond.pooled.clone()
        return (context, pooled) if return_pooled else context

    def encode_from_tokens_scheduled(self, tokens):
        context, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[context, {"pooled_output": pooled}]]


@pytest.fixture(scope="module")
def pack(comfy, tmp_path_factory):
    import folder_paths

    root = tmp_path_factory.mktemp("comfy-folders")
    saved = (folder_paths.folder_names_and_paths["loras"], folder_paths.get_output_directory(), folder_paths.get_input_directory())
    folder_paths.folder_names_and_paths["loras"] = ([str(root / "loras")], folder_paths.supported_pt_extensions)
    folder_paths.set_output_directory(str(root / "output"))
    folder_paths.set_input_directory(str(root / "input"))
    (root / "loras").mkdir()
    (root / "input").mkdir()
    module = import_pack()
    yield SimpleNamespace(module=module, nodes=pack_nodes(module), root=root)
    folder_paths.folder_names_and_paths["loras"] = saved[0]
    folder_paths.set_output_directory(saved[1])
    folder_paths.set_input_directory(saved[2])


def family_model(comfy, tokenizer, family: str):
    prediction = "v_prediction" if family == "sd2" else "epsilon"
    backend = make_backend(tokenizer, family, prediction)
    return comfy_model_from_diffusers(comfy, backend.unet, family, prediction), DiffusersClip(backend)


@pytest.fixture(scope="module")
def toy(pack):
    model, clip, vae = run_node(pack.nodes["LOBA_ToyWorldLoader"]).args
    return SimpleNamespace(model=model, clip=clip, vae=vae)


def pair(pack, target="a red circle", **overrides):
    inputs = dict(target=target, action="erase", positive="", unconditional="a circle", neutral="", guidance_scale=1.0,
                  resolution=0, batch_size=1, weight=1.0, multiplier=1.0)
    return run_node(pack.nodes["LOBA_PromptPair"], **{**inputs, **overrides}).args[0]


def train_inputs(**overrides):
    inputs = dict(max_train_steps=3, learning_rate=1e-2, network_dim=2, network_alpha=2.0, seed=0, resolution=64,
                  max_denoising_steps=3, leco_denoise_guidance_scale=3.0, denoise_with_adapter=False, mixed_precision="no",
                  gradient_checkpointing=False, save_precision="float", save_every_n_steps=0, preview_every=0,
                  preview_weights="-1, 0, 1", filename_prefix="loba/test")
    return {**inputs, **overrides}


def snapshot(comfy, model):
    """Every UNet tensor and one forward output: what 'bit-identical' compares."""
    unet = model.model.diffusion_model
    with torch.inference_mode():
        state = {k: v.clone() for k, v in unet.state_dict().items()}
    ctx_dim = next(m.weight.shape[1] for name, m in unet.named_modules() if name.endswith("attn2.to_k"))
    gen = torch.Generator().manual_seed(3)
    x, context = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 5, ctx_dim, generator=gen)
    y = torch.randn(1, model.model.adm_channels, generator=gen) if model.model.adm_channels else None
    out = comfy_eps(comfy, model, x, torch.tensor([500.0]), context, y)  # loaded once by ComfyUI, as before any sampling
    flags = {name: p.requires_grad for name, p in unet.named_parameters()}
    return state, out, (x, context, y), flags


def clip_outputs(clip) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        cond, pooled = clip.encode_from_tokens(clip.tokenize("a red circle on a dark background"), return_pooled=True)
    return cond.clone(), pooled.clone()


def assert_clip_untouched(clip, before) -> None:
    after = clip_outputs(clip)
    assert all(torch.equal(a, b) for a, b in zip(before, after)), "CLIP outputs changed"


def assert_untouched(comfy, model, before, flags_too: bool = True):
    """flags_too=False after the stock LoRA loader ran: ComfyUI's own patch/unpatch re-creates parameters with
    requires_grad=False (comfy.utils.set_attr_param), which is not ours to undo."""
    state, out, (x, context, y), flags = before
    unet = model.model.diffusion_model
    # Outputs first: loading the base MODEL takes out whatever patches a clone loaded last (the module is shared).
    assert torch.equal(comfy_eps(comfy, model, x, torch.tensor([500.0]), context, y), out), "outputs changed"
    assert all(torch.equal(state[k], v) for k, v in unet.state_dict().items()), "weights changed"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in unet.modules()), "hooks left attached"
    if flags_too:
        assert {name: p.requires_grad for name, p in unet.named_parameters()} == flags, "requires_grad flags changed"
    assert not any(p.grad is not None for p in unet.parameters())
