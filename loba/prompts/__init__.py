"""Prompt specs: what a slider trains on.

PromptPair (one LECO pair), SliderTarget (a bidirectional slider, expanded like kohya sd-scripts),
AnchorPrompt (a preservation prompt) and PromptSet (the immutable bundle the nodes chain and the
trainer consumes); loaders for sd-scripts LECO TOML and LOBA's TOML/JSON; loss-mask helpers.
Importing this package does not import torch or PIL; the functions that need them do.
"""

from .loader import load_prompt_file, prompt_set_from_dict, training_option_keys
from .masks import box_mask, load_mask_image, mask_to_latent
from .promptset import PromptSet
from .slider import SliderTarget
from .spec import AnchorPrompt, PromptPair, random_bucket_resolution

__all__ = [
    "AnchorPrompt",
    "PromptPair",
    "PromptSet",
    "SliderTarget",
    "box_mask",
    "load_mask_image",
    "load_prompt_file",
    "mask_to_latent",
    "prompt_set_from_dict",
    "random_bucket_resolution",
    "training_option_keys",
]
