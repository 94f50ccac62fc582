"""The toy world's text-to-image model: Stable Diffusion 1.x architecture at toy size.

A CLIP-L-architecture text encoder (real CLIP BPE tokenizer, 77 tokens, tiny width), an SD1 UNet
(epsilon prediction, SD's scaled-linear noise schedule) on 8x8x4 latents, and a small KL
autoencoder (f=8) for 64x64 images. The configs here are the single source of truth: the builder,
the diffusers export and the ComfyUI loader all read them.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .clip_vocab import byte_alphabet

IMAGE_SIZE = 64
LATENT_SIZE = 8
BOS, EOS = 49406, 49407

TEXT_CONFIG = dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                   max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=BOS, eos_token_id=EOS,
                   pad_token_id=EOS, projection_dim=64)
UNET_CONFIG = dict(sample_size=LATENT_SIZE, in_channels=4, out_channels=4, layers_per_block=1,
                   block_out_channels=(64, 128, 128),
                   down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                   cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32)
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64, 64), layers_per_block=1,
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  norm_num_groups=32, sample_size=IMAGE_SIZE)
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
# What "the default sampler and CFG" means for this model (evaluation, demo, previews).
DEFAULT_SAMPLING = dict(sampler="ddim", steps=25, cfg=5.0)


def bpe_merges() -> list[str]:
    """CLIP's BPE merge list (the file every CLIP tokenizer is built from), as 'a b' lines."""
    data = resources.files(__package__).joinpath("assets/bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    return lines[1:49152 - 256 - 2 + 1]


def write_tokenizer_files(folder: Path) -> Path:
    """vocab.json + merges.txt of the real CLIP tokenizer (49408 tokens), derived exactly as CLIP does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = bpe_merges()
    alphabet = byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def clip_tokenizer(folder: Path | str):
    from transformers import CLIPTokenizer

    folder = write_tokenizer_files(Path(folder))
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                         pad_token="<|endoftext|>")


def build_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def build_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


@dataclass
class ToyComponents:
    """The toy model in diffusers classes: what the builder trains, the evaluator samples, the exporter writes."""

    unet: object
    text_encoder: object
    tokenizer: object
    vae: object
    scaling_factor: float = 1.0

    def eval(self) -> ToyComponents:
        for module in (self.unet, self.text_encoder, self.vae):
            module.eval().requires_grad_(False)
        return self
