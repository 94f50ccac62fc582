"""CLIP prompt encoding by ComfyUI's rules, for hosts that hold transformers text encoders (the diffusers backend).

Real prompts (anime tag lists) run past CLIP's 77-token window. ComfyUI does not truncate them: the
tokens are cut into 75-token chunks, each chunk gets its own BOS and EOS (the last one padded to 77),
each chunk is encoded on its own, and the chunks' hidden states are concatenated along the tokens.
SDXL's pooled embedding is the second encoder's projected EOS state of the FIRST chunk. LOBA's diffusers
backend encodes the same way, so a slider trained by either host sees the same conditioning.

CLIP skip counts as ComfyUI's CLIPSetLastLayer(-clip_skip) and A1111's "Clip skip": 1 is the last layer,
2 the penultimate. SD1/SD2 put the final LayerNorm on the chosen layer, SDXL does not, and the model's
default is 1 for SD1 and 2 (penultimate) for SD2 and SDXL. Diffusers' SD2 text encoders were converted
without OpenCLIP's last layer (23 of 24 layers): their last layer is clip skip 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch

from ..errors import ConfigError

DEFAULT_CLIP_SKIP = {"sd1": 1, "sd2": 2, "sdxl": 2}
FIELD = "clip_skip"


def token_chunks(tokenizer, text: str, window: int) -> torch.Tensor:
    """[chunks, window] ids of `text`: 75-token pieces (window - 2), each as BOS + piece + EOS + padding."""
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
    body = window - 2
    pieces = [ids[i:i + body] for i in range(0, len(ids), body)] or [[]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [[tokenizer.bos_token_id, *piece, tokenizer.eos_token_id] + [pad] * (body - len(piece)) for piece in pieces]
    return torch.tensor(rows, dtype=torch.long)


def word_positions(tokenizer, text: str, word: str, window: int) -> list[int]:
    """The context positions (as token_chunks lays the chunks out: BOS + 75 tokens + EOS + padding each) of every
    occurrence of `word`'s tokens in `text`; CLIP's BPE cuts a whole word the same alone and in a prompt."""
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
    wanted = tokenizer(word, add_special_tokens=False, truncation=False, verbose=False).input_ids
    body, n = window - 2, len(wanted)
    found = [i for i in range(len(ids) - n + 1) if n and ids[i:i + n] == wanted]
    return [(j // body) * window + 1 + j % body for i in found for j in range(i, i + n)]


def hidden_layer(family: str, clip_skip: Optional[int], num_layers: int) -> int:
    """The index into transformers' hidden_states (embeddings first) that clip_skip names for this encoder."""
    skip = DEFAULT_CLIP_SKIP[family] if clip_skip is None else int(clip_skip)
    if skip < 1:
        raise ConfigError(FIELD, f"{skip} is not a layer count: 1 is the last layer, 2 the penultimate (unset: the model's default)")
    # Diffusers' SD2 encoder lacks OpenCLIP-H's last layer (24 layers, 23 kept): count from the full model.
    missing = 1 if family == "sd2" and num_layers == 23 else 0
    index = skip - missing
    if index < 1:
        raise ConfigError(FIELD, f"this SD2 text encoder (diffusers layout) has no last layer; its last layer is "
                                 f"clip skip {1 + missing}: use {1 + missing} or more")
    if index > num_layers:
        raise ConfigError(FIELD, f"{skip} skips more layers than the text encoder has ({num_layers + missing}); "
                                 f"use 1 to {num_layers + missing}")
    return -index


def encode_text(encoder, ids: torch.Tensor, layer: int, final_norm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(context [1, chunks * window, D], the first chunk's pooled output) of one prompt's chunks [chunks, window]."""
    out = encoder(ids.to(encoder.device), output_hidden_states=True)
    hidden = out.hidden_states[layer]
    if final_norm:
        # transformers 5 flattened CLIPTextModel (no .text_model); CLIPTextModelWithProjection keeps it.
        hidden = getattr(encoder, "text_model", encoder).final_layer_norm(hidden)
    pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    return hidden.reshape(1, -1, hidden.shape[-1]), pooled[:1]


def equal_lengths(contexts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Contexts of different chunk counts repeated to one length (their lcm), as ComfyUI's sampler batches them.

    Repeating every key and value k times leaves cross-attention unchanged, so each row still means its prompt."""
    lengths = {c.shape[1] for c in contexts}
    if len(lengths) <= 1:
        return list(contexts)
    common = math.lcm(*lengths)
    return [c.repeat(1, common // c.shape[1], 1) for c in contexts]
