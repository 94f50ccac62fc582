"""LOBA ComfyUI node pack: registration only, nothing heavy at import.

The nodes arrive with the node-pack milestone; the engine (`loba/`) and the `loba` CLI work today.
"""

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
