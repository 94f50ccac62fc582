"""LOBA Mask: a training region from a MASK or an image, grown, shrunk and feathered with kornia."""

from __future__ import annotations

from typing import Optional

import torch
from comfy_api.latest import io

from .node_errors import fail


def shape_mask(mask: torch.Tensor, grow: int, feather: float, invert: bool) -> torch.Tensor:
    """[B, H, W] in 0..1 -> the same shape: inverted, grown (grow > 0) or shrunk (grow < 0) by |grow| px, then
    blurred with a Gaussian of sigma = feather px, clamped to 0..1."""
    import kornia

    x = mask.detach().to(torch.float32)[:, None]
    if invert:
        x = 1.0 - x
    if grow:
        kernel = torch.ones(2 * abs(grow) + 1, 2 * abs(grow) + 1)
        x = kornia.morphology.dilation(x, kernel) if grow > 0 else kornia.morphology.erosion(x, kernel)
    if feather > 0:
        size = 2 * int(3 * feather + 0.5) + 1
        x = kornia.filters.gaussian_blur2d(x, (size, size), (float(feather), float(feather)), border_type="replicate")
    return x[:, 0].clamp(0.0, 1.0)


def image_to_mask(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, C] 0..1 -> MASK [B, H, W]: the alpha channel when there is one, else luminance (white = train)."""
    if image.shape[-1] == 4:
        return image[..., 3]
    rgb = image[..., :3]
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).clamp(0.0, 1.0)


class MaskNode(io.ComfyNode):
    DISPLAY = "LOBA Mask"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_Mask", display_name=cls.DISPLAY, category="LOBA/prompts",
            description="Builds the region a prompt pair trains on (white = train). Connect a MASK (e.g. from Load "
                        "Image, whose mask editor you can paint in) or an IMAGE (white areas train), then connect the "
                        "output to a prompt node's mask input.",
            inputs=[
                io.Mask.Input("mask", optional=True, tooltip="A mask (1 = train). Used when connected."),
                io.Image.Input("image", optional=True,
                               tooltip="An image used when no mask is connected: its alpha, or its brightness (white = train)."),
                io.Int.Input("grow", default=0, min=-256, max=256,
                             tooltip="Grow the white region by this many pixels; negative values shrink it."),
                io.Float.Input("feather", default=0.0, min=0.0, max=128.0, step=0.5,
                               tooltip="Soften the edge with a Gaussian blur of this sigma in pixels; 0 keeps it hard."),
                io.Boolean.Input("invert", default=False, tooltip="Swap trained and ignored areas."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="The training region, [1, H, W] in 0..1.")],
        )

    @classmethod
    def execute(cls, grow, feather, invert, mask: Optional[torch.Tensor] = None, image: Optional[torch.Tensor] = None) -> io.NodeOutput:
        if mask is None and image is None:
            raise fail(cls.DISPLAY, "mask", "connect a mask or an image")
        source = mask if mask is not None else image_to_mask(image)
        if source.dim() == 2:
            source = source[None]
        if source.dim() != 3:
            raise fail(cls.DISPLAY, "mask" if mask is not None else "image", f"expected [batch, height, width], got {list(source.shape)}")
        shaped = shape_mask(source, int(grow), float(feather), bool(invert))
        if float(shaped.max()) <= 0:
            raise fail(cls.DISPLAY, "grow", "the mask is all black after growing/shrinking, so nothing would train; "
                                            "shrink less or paint a larger region")
        return io.NodeOutput(shaped)
