"""Built-in evaluators that need no download: pixel and latent drift, the toy-world reader, LPIPS (local backbone file)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from .registry import Evaluator, check_keys, register, require


def _base(images: np.ndarray, reference: Optional[np.ndarray]) -> np.ndarray:
    return images if reference is None else reference


def _no_settings(settings: Mapping[str, Any], field: str) -> dict:
    check_keys(settings, (), field)
    return {}


class PixelEvaluator(Evaluator):
    """Mean absolute pixel change (0..1) against the same-seed w = 0 image; always available."""

    name, needs, metrics = "pixel", "nothing", ("pixel_drift",)

    def score(self, images, prompts, reference):
        diff = np.abs(images.astype(np.float64) - _base(images, reference).astype(np.float64))
        return {"pixel_drift": diff.reshape(len(images), -1).mean(1) / 255.0}


class LatentEvaluator(Evaluator):
    """Relative latent change ||z - z0|| / ||z0|| against the same-seed w = 0 sample's final latent: what the slider
    moved before the VAE can hide or exaggerate it (a VAE maps small latent changes to large pixel ones and back)."""

    name, needs, metrics, reads = "latent", "nothing (the sampler's final latents)", ("latent_drift",), "latents"

    def score(self, latents, prompts, reference):
        latents = latents.astype(np.float64).reshape(len(latents), -1)
        base = _base(latents, None if reference is None else reference.astype(np.float64).reshape(len(latents), -1))
        norm = np.maximum(np.linalg.norm(base, axis=1), 1e-12)  # an all-zero base latent: drift in absolute units
        return {"latent_drift": np.linalg.norm(latents - base, axis=1) / norm}


class ReaderEvaluator(Evaluator):
    """The toy world's attribute reader: object found, object size, prompt obeyed, attributes kept from w = 0."""

    name, needs, metrics = "reader", "nothing (toy-world images only)", ("object", "size", "prompt_match", "preserved")

    def score(self, images, prompts, reference):
        from ..toyworld.captions import parse_caption
        from ..toyworld.metrics import preserved
        from ..toyworld.reader import IMAGE_SIZE, read_batch

        if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ConfigError("evaluators.reader", f"reads {IMAGE_SIZE}x{IMAGE_SIZE} toy-world images, "
                                                   f"got {images.shape[2]}x{images.shape[1]}")
        reads, base = read_batch(images), read_batch(_base(images, reference))
        wanted = [_caption(parse_caption, prompt) for prompt in prompts]
        match = [np.nan if want is None else float(all(getattr(r, k) == v for k, v in want.items())) for r, want in zip(reads, wanted)]
        return {"object": np.array([r.shape is not None for r in reads], np.float64),
                "size": np.array([r.area for r in reads], np.float64),
                "prompt_match": np.array(match, np.float64),
                "preserved": np.array([preserved(r, b) for r, b in zip(reads, base)], np.float64)}


def _caption(parse, prompt: str) -> Optional[dict]:
    try:
        return parse(prompt)
    except ValueError:  # not a toy-world caption: nothing to match
        return None


register("pixel", _no_settings)(lambda settings: PixelEvaluator())
register("latent", _no_settings)(lambda settings: LatentEvaluator())
register("reader", _no_settings)(lambda settings: ReaderEvaluator())

# -- LPIPS ------------------------------------------------------------------------------------------
LPIPS_NETS = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth", "squeeze": "squeezenet1_1-b8a52dc0.pth"}


def _validate_lpips(settings: Mapping[str, Any], field: str) -> dict:
    check_keys(settings, ("backbone", "net"), field)
    net = settings.get("net", "alex")
    if net not in LPIPS_NETS:
        raise ConfigError(f"{field}.net", f"must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
    backbone = settings.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise ConfigError(f"{field}.backbone", f"is required: the local torchvision {net} weights file (e.g. {LPIPS_NETS[net]}); "
                                               "LOBA never downloads it")
    if not Path(backbone).expanduser().is_file():
        raise ConfigError(f"{field}.backbone", f"file {backbone} does not exist (the torchvision {net} weights, {LPIPS_NETS[net]})")
    return {"backbone": str(Path(backbone).expanduser()), "net": net}


class LpipsEvaluator(Evaluator):
    """LPIPS (the lpips package's linear layers, shipped in its wheel) against the same-seed w = 0 image."""

    name, needs, metrics = "lpips", "the lpips package and a local backbone weights file", ("lpips",)

    def __init__(self, settings: Mapping[str, Any]):
        settings = _validate_lpips(settings, "evaluators.lpips")
        lpips = require("lpips", "lpips", "lpips")
        with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation, raised by lpips' own call
            warnings.simplefilter("ignore")
            # pnet_rand: build the backbone without torchvision's download; its weights come from the local file.
            self.model = lpips.LPIPS(pretrained=True, net=settings["net"], pnet_rand=True, verbose=False).eval()
        load_backbone(self.model.net, settings["backbone"], "evaluators.lpips.backbone")

    def score(self, images, prompts, reference):
        import torch

        def tensor(batch):
            return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1.0

        with torch.no_grad():
            values = self.model(tensor(images), tensor(_base(images, reference)))
        return {"lpips": values.reshape(len(images)).double().numpy()}


def load_backbone(net, path: str, field: str) -> None:
    """Copy torchvision `features.N.*` tensors into lpips' slices (`sliceK.N.*` keep torchvision's indices)."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    mapped = {}
    for key in own:
        source = "features." + key.split(".", 1)[1]
        if source not in state or tuple(state[source].shape) != tuple(own[key].shape):
            raise ConfigError(field, f"{path} has no {source} of shape {list(own[key].shape)}: not the torchvision backbone lpips needs")
        mapped[key] = state[source]
    net.load_state_dict(mapped)


register("lpips", _validate_lpips)(LpipsEvaluator)
