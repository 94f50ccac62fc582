"""Flux.1's real architecture, written out (no download): the diffusers FluxTransformer2DModel config of FLUX.1-dev
(19 double + 38 single blocks, 24 heads of 128, T5-XXL context 4096, CLIP-L pooled 768) and its text encoders'
configs. Smaller sizes keep the layout: `wide` is the real width with 1 double + 2 single blocks (what one block
costs at the real width, on machines that cannot hold 12B parameters), `small` and `tiny` shrink width and depth."""

from __future__ import annotations

import torch

CONTEXT_DIM, POOLED_DIM, TOKENS = 4096, 768, 512  # T5-XXL width, CLIP-L pooled, FluxPipeline's max_sequence_length (dev)
SIZES = {"full": dict(num_layers=19, num_single_layers=38, num_attention_heads=24, attention_head_dim=128,
                      axes_dims_rope=(16, 56, 56)),
         "wide": dict(num_layers=1, num_single_layers=2, num_attention_heads=24, attention_head_dim=128,
                      axes_dims_rope=(16, 56, 56)),
         "small": dict(num_layers=2, num_single_layers=4, num_attention_heads=4, attention_head_dim=64,
                       axes_dims_rope=(8, 28, 28)),
         "tiny": dict(num_layers=1, num_single_layers=1, num_attention_heads=2, attention_head_dim=16,
                      axes_dims_rope=(4, 6, 6))}


def transformer_config(size: str = "full") -> dict:
    return dict(patch_size=1, in_channels=64, joint_attention_dim=CONTEXT_DIM, pooled_projection_dim=POOLED_DIM,
                guidance_embeds=True, **SIZES[size])


def text_encoder_bytes(dtype: torch.dtype) -> int:
    """Bytes of FLUX.1's T5-XXL encoder (t5-v1_1-xxl) and CLIP-L text encoder in `dtype`, counted on the meta device."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5 = T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                  feed_forward_proj="gated-gelu", is_gated_act=True)
    clip = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
    with torch.device("meta"):
        models = [T5EncoderModel(t5), CLIPTextModel(clip)]
    return sum(p.numel() for m in models for p in m.parameters()) * dtype.itemsize
