"""Where a word's tokens sit in the context ComfyUI builds for a prompt (attention regions read those columns).

ComfyUI's tokenizer parses (word:1.2) weights, escapes and embeddings and lays the prompt out in 77-token chunks
(start + tokens + end + padding, chunks concatenated along the sequence): the positions are found in that very
token list, by the word's own tokens from the same CLIP tokenizer. SDXL's CLIP-G and CLIP-L share the layout.
"""

from __future__ import annotations

KEYS = (("clip_l", "l"), ("clip_h", "h"), ("clip_g", "g"))  # ComfyUI's SD tokenizer attribute -> token dict key


def comfy_token_positions(clip, prompt: str, word: str) -> list[int]:
    tokenizer, key = _sd_tokenizer(clip)
    chunks = clip.tokenize(prompt)[key]
    flat = [item[0] if isinstance(item[0], int) else None for chunk in chunks for item in chunk]  # embeddings: None
    end = -1 if tokenizer.tokenizer_adds_end_token else None
    wanted = list(tokenizer.tokenizer(word)["input_ids"][tokenizer.tokens_start:end])
    n = len(wanted)
    found = [i for i in range(len(flat) - n + 1) if n and flat[i:i + n] == wanted]
    return [j for i in found for j in range(i, i + n)]


def _sd_tokenizer(clip):
    for attribute, key in KEYS:
        tokenizer = getattr(clip.tokenizer, attribute, None)
        if tokenizer is not None and hasattr(tokenizer, "tokenizer"):
            return tokenizer, key
    raise ValueError(f"{type(clip.tokenizer).__name__} is not a CLIP tokenizer LOBA can read words from")
