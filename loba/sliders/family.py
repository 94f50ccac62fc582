"""Which model family a LoRA file was made for, as far as the file tells: merging an SD1 slider with an SDXL
one would write a file that fits neither model, so a merge refuses sources whose traits disagree.

Traits come from kohya's metadata (ss_base_model_version) and from the tensors themselves, for files of other
trainers without metadata: the layer-naming scheme (SD1/SD2 files use diffusers names, SDXL files LDM names)
and the width of the text context the cross-attention keys read (768 SD1, 1024 SD2, 2048 SDXL); Flux files
(ss_base_model_version flux1) name double_blocks / single_blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import AdapterFileError
from .kohya import DOWN, SliderFile
from .lycoris_keys import update_shape

_DIFFUSERS_BLOCKS = ("lora_unet_down_blocks_", "lora_unet_up_blocks_", "lora_unet_mid_block_")
_LDM_BLOCKS = ("lora_unet_input_blocks_", "lora_unet_output_blocks_", "lora_unet_middle_block_")
_FLUX_BLOCKS = ("lora_unet_double_blocks_", "lora_unet_single_blocks_")


def family_traits(slider: SliderFile) -> dict[str, str]:
    """{trait: value} of what the file says about its base model; absent traits are unknown."""
    traits: dict[str, str] = {}
    base = slider.metadata.get("ss_base_model_version")
    if base:
        traits["base model"] = base
    stems = slider.module_stems()
    if any(stem.startswith(_DIFFUSERS_BLOCKS) for stem in stems):
        traits["layer names"] = "diffusers (SD1/SD2)"
    elif any(stem.startswith(_LDM_BLOCKS) for stem in stems):
        traits["layer names"] = "LDM (SDXL)"
    elif any(stem.startswith(_FLUX_BLOCKS) for stem in stems):
        traits["layer names"] = "Flux (double/single blocks)"
    keys = sorted(stem for stem in stems if stem.endswith("attn2_to_k"))
    if keys:
        traits["text context width"] = str(_input_width(slider.module_state(keys[0])))
    return traits


def _input_width(state: dict) -> int:
    if DOWN in state:
        return int(state[DOWN].shape[1])
    return update_shape(state)[1]  # LoHa / LoKr: the columns of the update (a Linear layer's inputs)


def family_conflict(sources: Sequence[SliderFile], names: Sequence[str]) -> tuple[str, str] | None:
    """(name of the first source that disagrees with an earlier one, the message), or None when all agree."""
    first: dict[str, tuple[str, str]] = {}
    for source, name in zip(sources, names):
        for trait, value in family_traits(source).items():
            seen = first.setdefault(trait, (value, name))
            if seen[0] != value:
                return name, (f"{seen[1]} and {name} were made for different model families ({trait}: "
                              f"{seen[0]} vs {value}); merge only sliders of the same base model")
    return None


def check_same_family(sources: Sequence[SliderFile], names: Sequence[str]) -> None:
    conflict = family_conflict(sources, names)
    if conflict is not None:
        raise AdapterFileError(conflict[1])
