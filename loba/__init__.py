"""LOBA engine: prompt-only LoRA slider, erase and enhance training.

Host-independent: this package never imports comfy, folder_paths or server.
Importing it is cheap; torch and friends load only when a submodule needs them.
"""

__version__ = "0.1.0"
