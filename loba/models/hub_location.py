"""Where inside a Hub repo (or diffusers folder) a pipeline lives: the from_pretrained arguments beyond the id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class HubLocation:
    revision: Optional[str] = None  # branch, tag or commit; None: main
    variant: Optional[str] = None  # weight files' variant, e.g. fp16; weights only (never tokenizers or schedulers)
    subfolder: Optional[str] = None  # the pipeline's folder inside the repo; components are <subfolder>/unet ...
    local_files_only: bool = False  # the cache only; huggingface_hub also honours HF_HUB_OFFLINE=1

    def component(self, name: str) -> str:
        return f"{self.subfolder.strip('/')}/{name}" if self.subfolder else name

    def file_kwargs(self) -> dict:
        """For every from_pretrained / hf_hub_download call (configs, tokenizers, weights)."""
        kwargs = {"revision": self.revision} if self.revision else {}
        return {**kwargs, **({"local_files_only": True} if self.local_files_only else {})}

    def weight_kwargs(self) -> dict:
        """For the calls that load weights: also the variant."""
        return {**self.file_kwargs(), **({"variant": self.variant} if self.variant else {})}
