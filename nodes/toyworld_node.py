"""LOBA Toy World Loader: the embedded tiny text-to-image model as MODEL, CLIP and VAE; no download."""

from __future__ import annotations

from comfy_api.latest import io

from ..loba.errors import LobaError
from ..loba.toyworld.worlds import DEFAULT_WORLD, FLOW_WORLDS, world_names, world_weights
from .node_errors import fail
from .toyworld_comfy import load_toyworld_comfy


class ToyWorldLoaderNode(io.ComfyNode):
    DISPLAY = "LOBA Toy World Loader"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_ToyWorldLoader", display_name=cls.DISPLAY, category="LOBA",
            description="A tiny SD1-architecture model of a 64x64 world of shapes (circle, square, triangle; red, "
                        "green, blue, yellow; small, large; light or dark background). Trains sliders in minutes on a "
                        "CPU: prompts like 'a large red circle on a dark background'. Sample at 64x64.",
            # Optional: graphs saved before it (and API prompts without it) keep validating, as the plain toy world.
            inputs=[io.Combo.Input("world", options=world_names(), default=DEFAULT_WORLD, optional=True,
                                   tooltip="toyworld: every attribute a prompt leaves out is uniform. entangled: a "
                                           "fine-tune whose under-specified prompts are biased ('a triangle' is mostly "
                                           "red, 'a square' mostly on dark, 'a large shape' mostly a circle) and whose "
                                           "prompts may name a style: filled|outlined, vivid|pastel. flow: the plain "
                                           "world drawn by a toy Flux transformer (flow matching, double + single "
                                           "blocks, no guidance embedding: schnell-like; sample with a flow sampler "
                                           "such as euler, scheduler simple, at 64x64).")],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The toy world's UNet (epsilon, SD schedule); for "
                                                                   "world flow its Flux transformer (flow, shift 1)."),
                     io.Clip.Output(display_name="CLIP", tooltip="Its CLIP-L-architecture text encoder (real CLIP tokenizer)."),
                     io.Vae.Output(display_name="VAE", tooltip="Its KL autoencoder (64x64 images, 8x8x4 latents).")],
        )

    @classmethod
    def execute(cls, world: str = DEFAULT_WORLD) -> io.NodeOutput:
        if world not in world_names():
            raise fail(cls.DISPLAY, "world", f"unknown toy world '{world}'; choose one of {', '.join(world_names())}")
        try:
            if world in FLOW_WORLDS:
                from .toyworld_flow_comfy import load_flow_world_comfy

                return io.NodeOutput(*load_flow_world_comfy(world_weights(world)))
            return io.NodeOutput(*load_toyworld_comfy(world_weights(world)))
        except (LobaError, OSError) as exc:
            raise fail(cls.DISPLAY, "weights", f"the embedded toy-world weights cannot be loaded ({exc}); reinstall the pack") from exc
