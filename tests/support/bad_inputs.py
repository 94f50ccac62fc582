"""The bad-input corpus' world: files inside and outside ComfyUI's input folder (symlinks, binaries, a secret
that must never come back), good and broken sliders for the toy model, good inputs for every node, and what
"nothing written" compares."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image

SECRET = "the-secret-line-outside-comfyui"
GOOD_TOML = '[[prompts]]\ntarget = "a red circle"\nunconditional = "a circle"\n'


def make_files(root: Path, outside: Path) -> SimpleNamespace:
    """Under root/input: good files, broken ones and symlinks out; under `outside`: what must not be read."""
    inside = root / "input"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "prompts.toml").write_text(GOOD_TOML)
    Image.new("L", (64, 64), 255).save(outside / "mask.png")
    (inside / "good.toml").write_text(GOOD_TOML)
    (inside / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (inside / "binary.txt").write_bytes(b"\xff\xfe\x00\x01")
    (inside / "notes.txt").write_text(GOOD_TOML)
    (inside / "not_image.png").write_text("not an image")
    (inside / "folder.toml").mkdir(exist_ok=True)
    (inside / "reads_out.toml").write_text(GOOD_TOML + 'prompt_file = "../../outside/secret.txt"\n')
    for name, target in (("link.toml", "prompts.toml"), ("link.png", "mask.png"), ("link.txt", "secret.txt")):
        (inside / name).symlink_to(outside / target)
    checkpoints = root / "output" / "loba_checkpoints" / "corpus"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / "empty.pt").write_bytes(b"")
    (checkpoints / "pickle.pt").write_bytes(pickle.dumps({"format": "loba-checkpoint", "x": SimpleNamespace()}))
    return SimpleNamespace(inside=inside, outside=outside, checkpoints=checkpoints)


def toy_stems(model, count: int = 2) -> list[tuple[str, tuple[int, int]]]:
    """(kohya stem, weight shape) of a few 2-D layers of the ComfyUI toy model, in diffusers naming."""
    import comfy.lora

    keys = comfy.lora.model_lora_keys_unet(model.model, {})
    weights = model.model.state_dict()
    found = sorted((stem, tuple(weights[key].shape)) for stem, key in keys.items()
                   if stem.startswith("lora_unet_down_blocks") and isinstance(key, str) and key in weights
                   and weights[key].ndim == 2)
    return found[:count]


def slider_for(slider_class, stems, rank: int = 2, metadata=None, **spoil):
    """A kohya slider over `stems` as `slider_class` (the pack's own SliderFile: the pack imports the engine under
    its own module name); spoil= nan_down, int_dtype, rank0, alpha_vector or wrong_shape."""
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for stem, (out, inn) in stems:
        r = 0 if spoil.get("rank0") else rank
        down = torch.randn(r, inn + (1 if spoil.get("wrong_shape") else 0), generator=generator) * 0.01
        up = torch.randn(out, r, generator=generator) * 0.01
        if spoil.get("nan_down"):
            down[0, 0] = float("nan")
        if spoil.get("int_dtype"):
            down, up = down.to(torch.int32), up.to(torch.int32)
        alpha = torch.ones(3) if spoil.get("alpha_vector") else torch.tensor(float(rank))
        tensors.update({f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": alpha})
    return slider_class(tensors, dict(metadata or {}))


def files_state(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under the roots with its size and mtime: equal before and after means nothing was written."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()}
