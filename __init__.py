"""LOBA ComfyUI node pack: registration only, nothing heavy at import.

ComfyUI calls comfy_entrypoint() after importing the pack; only then are the node modules (and torch,
ComfyUI and the engine) imported. The engine lives in ./loba and the nodes import it relatively, so
the pack works whatever its folder is named.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes.extension import LobaExtension

    return LobaExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
