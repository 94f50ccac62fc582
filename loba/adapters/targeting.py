"""Which UNet layers the slider trains: presets, include/exclude regexes and per-layer rank/alpha/lr.

Presets match module names of both naming schemes: diffusers (down_blocks.0.attentions.0...,
down_blocks.0.resnets.0.conv1, downsamplers.0.conv, mid_block) and LDM/ComfyUI (input_blocks.1.1...,
input_blocks.1.0.in_layers.2, emb_layers.1, out_layers.3, skip_connection, input_blocks.3.0.op,
output_blocks.2.1.conv, middle_block). Leaf names inside transformer blocks are the same in both.

The flux_* presets match Flux.1's own module names (BFL's, which ComfyUI's Flux keeps and kohya files use):
double_blocks.N.{img,txt}_attn.{qkv,proj}, double_blocks.N.{img,txt}_mlp.{0,2}, double_blocks.N.{img,txt}_mod.lin,
single_blocks.N.{linear1,linear2,modulation.lin}. Every preset says which families it is for (PRESET_FAMILIES), and a
preset of another family is refused before model work (check_preset_family), not left to select nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from torch import nn

from ..config.train_config import NetworkConfig
from ..errors import ConfigError
from ..registry import Registry
from .lokr import factorization
from .lora import adapter_kind
from .target_spec import TargetSpec

Predicate = Callable[[str, nn.Module], bool]
TARGETING_PRESETS: Registry[Predicate] = Registry("targeting preset", field="preset")

_ATTENTION = re.compile(r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$"
                        # diffusers' Flux: joint attention, image stream to_*, text stream add_*_proj / to_add_out
                        r"|^(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0|add_[qkv]_proj|to_add_out)$")
_CROSS_ATTENTION = re.compile(r"\.attn2\.(to_q|to_k|to_v|to_out\.0)$")
_IN_CROSS_ATTENTION = re.compile(r"\.attn2\.")
_CROSS_ATTENTION_KV = re.compile(r"\.attn2\.(to_k|to_v)$")
_FEED_FORWARD = re.compile(r"\.transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)$"
                           r"|^transformer_blocks\.\d+\.(ff|ff_context)\.net\.(0\.proj|2)$"  # diffusers' Flux
                           r"|^single_transformer_blocks\.\d+\.(proj_mlp|proj_out)$")
# Everything inside a Transformer2DModel / SpatialTransformer (kohya's default LoRA scope).
_TRANSFORMER = re.compile(r"\.transformer_blocks\.\d+\.|\.proj_in$|\.proj_out$"
                          # diffusers' Flux: kohya's Flux scope (qkv, proj, mlp, linear1, linear2; no modulation)
                          r"|^transformer_blocks\.\d+\.(attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|to_add_out)"
                          r"|ff(_context)?\.net\.(0\.proj|2))$"
                          r"|^single_transformer_blocks\.\d+\.(attn\.to_[qkv]|proj_mlp|proj_out)$")
# ResnetBlock2D (diffusers) / ResBlock (LDM) layers; the norms are not Linear/Conv2d anyway.
_RESNET = re.compile(r"\.resnets\.\d+\.(conv1|conv2|time_emb_proj|conv_shortcut)$"
                     r"|\.\d+\.(in_layers\.2|out_layers\.3|emb_layers\.1|skip_connection)$")
# Down/up samplers; conv_in (input_blocks.0.0) and conv_out (out.2) are excluded, as kohya does.
_SAMPLER = re.compile(r"\.(downsamplers|upsamplers)\.\d+\.conv$"
                      r"|(^|\.)input_blocks\.\d+\.0\.op$|(^|\.)output_blocks\.\d+\.[12]\.conv$")


def _is_linear_like(module: nn.Module) -> bool:
    return adapter_kind(module) == "lora"


@TARGETING_PRESETS.register("attention")
def attention(name: str, module: nn.Module) -> bool:
    """Self- and cross-attention q/k/v/out projections."""
    return _is_linear_like(module) and bool(_ATTENTION.search(name))


@TARGETING_PRESETS.register("cross_attention")
def cross_attention(name: str, module: nn.Module) -> bool:
    """Cross-attention (attn2) only: ESD-x."""
    return _is_linear_like(module) and bool(_CROSS_ATTENTION.search(name))


@TARGETING_PRESETS.register("cross_attention_kv")
def cross_attention_kv(name: str, module: nn.Module) -> bool:
    """Cross-attention keys and values only (UCE / TIME): they see only the prompt's tokens, so the slider changes
    what a prompt means and nothing that does not go through the prompt (U-LOBA's default)."""
    return _is_linear_like(module) and bool(_CROSS_ATTENTION_KV.search(name))


@TARGETING_PRESETS.register("attention_mlp")
def attention_mlp(name: str, module: nn.Module) -> bool:
    """Attention projections plus the transformer feed-forward layers."""
    return attention(name, module) or (_is_linear_like(module) and bool(_FEED_FORWARD.search(name)))


@TARGETING_PRESETS.register("all_linear")
def all_linear(name: str, module: nn.Module) -> bool:
    """Every Linear and 1x1 Conv2d in the transformer blocks incl. proj_in/out: kohya's default LoRA (on Flux:
    flux_all_linear, so the default preset trains every family)."""
    return _is_linear_like(module) and bool(_TRANSFORMER.search(name)) or flux_all_linear(name, module)


@TARGETING_PRESETS.register("all_linear_conv")
def all_linear_conv(name: str, module: nn.Module) -> bool:
    """all_linear plus resnet and sampler layers (kohya LoCon with conv_dim); not conv_in/conv_out."""
    if adapter_kind(module) is None:
        return False
    return all_linear(name, module) or bool(_RESNET.search(name) or _SAMPLER.search(name))


@TARGETING_PRESETS.register("no_cross_attention")
def no_cross_attention(name: str, module: nn.Module) -> bool:
    """all_linear_conv without cross-attention: ESD-u."""
    return all_linear_conv(name, module) and not _IN_CROSS_ATTENTION.search(name)


# Flux.1 (double_blocks: separate img and txt streams joined in attention; single_blocks: one joint stream).
# Modulation layers (img_mod/txt_mod/modulation .lin) are left out, as kohya's Flux LoRA leaves them out by default.
# Each pattern also matches diffusers' FluxTransformer2DModel names for the same layers (q/k/v split; the image
# stream is attn.to_* / ff, the text stream attn.add_*_proj / to_add_out / ff_context), for the headless backend.
_FLUX_DOUBLE_ATTENTION = re.compile(r"(^|\.)double_blocks\.\d+\.(img|txt)_attn\.(qkv|proj)$"
                                    r"|^transformer_blocks\.\d+\.attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|to_add_out)$")
_FLUX_DOUBLE_MLP = re.compile(r"(^|\.)double_blocks\.\d+\.(img|txt)_mlp\.(0|2)$"
                              r"|^transformer_blocks\.\d+\.(ff|ff_context)\.net\.(0\.proj|2)$")
_FLUX_SINGLE = re.compile(r"(^|\.)single_blocks\.\d+\.(linear1|linear2)$"
                          r"|^single_transformer_blocks\.\d+\.(attn\.to_[qkv]|proj_mlp|proj_out)$")
_FLUX_STREAM = re.compile(r"(^|\.)double_blocks\.\d+\.(img|txt)_(attn\.(qkv|proj)|mlp\.(0|2))$")
_DIFFUSERS_STREAMS = {
    "img": re.compile(r"^transformer_blocks\.\d+\.(attn\.(to_[qkv]|to_out\.0)|ff\.net\.(0\.proj|2))$"),
    "txt": re.compile(r"^transformer_blocks\.\d+\.(attn\.(add_[qkv]_proj|to_add_out)"
                      r"|ff_context\.net\.(0\.proj|2))$")}


def _flux(pattern: re.Pattern, doc: str, stream: str = "") -> Predicate:
    def predicate(name: str, module: nn.Module) -> bool:
        if not _is_linear_like(module):
            return False
        if stream and _DIFFUSERS_STREAMS[stream].search(name):
            return True
        return bool(pattern.search(name)) and (not stream or f".{stream}_" in name)
    predicate.__doc__ = doc
    return predicate


TARGETING_PRESETS.register("flux_double_attention", _flux(
    _FLUX_DOUBLE_ATTENTION, "Flux: the double blocks' attention (img and txt qkv and proj)."))
TARGETING_PRESETS.register("flux_single_blocks", _flux(
    _FLUX_SINGLE, "Flux: the single (joint-stream) blocks' linear1 (qkv + MLP in) and linear2 (out)."))
TARGETING_PRESETS.register("flux_img_stream", _flux(
    _FLUX_STREAM, "Flux: the double blocks' image stream only (img_attn qkv/proj, img_mlp).", "img"))
TARGETING_PRESETS.register("flux_txt_stream", _flux(
    _FLUX_STREAM, "Flux: the double blocks' text stream only (txt_attn qkv/proj, txt_mlp).", "txt"))


@TARGETING_PRESETS.register("flux_all_linear")
def flux_all_linear(name: str, module: nn.Module) -> bool:
    """Flux: every attention and MLP Linear of the double and single blocks (kohya's Flux LoRA scope)."""
    return _is_linear_like(module) and bool(_FLUX_DOUBLE_ATTENTION.search(name) or _FLUX_DOUBLE_MLP.search(name)
                                            or _FLUX_SINGLE.search(name))


SD_FAMILIES = ("sd1", "sd2", "sdxl")
# {preset: the model families its names exist in}; a preset not listed is for the SD UNets.
PRESET_FAMILIES = {**{name: ("flux",) for name in ("flux_double_attention", "flux_single_blocks", "flux_img_stream",
                                                   "flux_txt_stream", "flux_all_linear")},
                   "all_linear": SD_FAMILIES + ("flux",)}


def preset_families(preset: str) -> tuple[str, ...]:
    return PRESET_FAMILIES.get(preset, SD_FAMILIES)


def check_preset_family(preset: str, family: str) -> None:
    """Refuse a preset made for another family's module names (an SD preset on Flux selects nothing there)."""
    families = preset_families(preset)
    if family in families or family not in SD_FAMILIES + ("flux",):
        return
    fitting = [name for name in TARGETING_PRESETS.names() if family in preset_families(name)]
    raise ConfigError("preset", f"preset '{preset}' is for {'/'.join(families)} models and this model is {family}; "
                      f"use one of {', '.join(fitting)}")


def _compile(field_name: str, pattern: str) -> re.Pattern:
    try:
        return re.compile(str(pattern))
    except re.error as exc:
        raise ConfigError(field_name, f"pattern {pattern!r} is not a valid regular expression ({exc})") from None


def _compile_table(field_name: str, table: Mapping) -> list[tuple[re.Pattern, object]]:
    return [(_compile(field_name, pattern), value) for pattern, value in table.items()]


def _first_match(table: list[tuple[re.Pattern, object]], name: str, default):
    for pattern, value in table:
        if pattern.search(name):
            return value
    return default


def _number(field_name: str, pattern: str, value, cast, minimum: float) -> float:
    try:
        number = cast(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum or (cast is int and number != float(value)):
        kind = "an integer" if cast is int else "a number"
        raise ConfigError(field_name, f"pattern {pattern!r}: value {value!r} must be {kind} >= {minimum:g}")
    return number


@dataclass
class _Rules:
    """The compiled regex tables of a NetworkConfig."""

    include: list[re.Pattern]
    exclude: list[re.Pattern]
    rank: list[tuple[re.Pattern, object]]
    alpha: list[tuple[re.Pattern, object]]
    lr: list[tuple[re.Pattern, object]]

    @staticmethod
    def of(cfg: NetworkConfig) -> _Rules:
        return _Rules([_compile("include", p) for p in cfg.include], [_compile("exclude", p) for p in cfg.exclude],
                      _compile_table("rank_pattern", cfg.rank_pattern), _compile_table("alpha_pattern", cfg.alpha_pattern),
                      _compile_table("lr_pattern", cfg.lr_pattern))

    def spec(self, name: str, module: nn.Module, cfg: NetworkConfig) -> TargetSpec:
        kind = adapter_kind(module)
        rank, alpha = (cfg.network_dim, cfg.network_alpha) if kind == "lora" else (cfg.conv_dim, cfg.conv_alpha)
        rank = _number("rank_pattern", _pattern_of(self.rank, name), _first_match(self.rank, name, rank), int, 1)
        alpha = _number("alpha_pattern", _pattern_of(self.alpha, name), _first_match(self.alpha, name, alpha), float, 0)
        lr = _number("lr_pattern", _pattern_of(self.lr, name), _first_match(self.lr, name, 1.0), float, 0)
        return TargetSpec(name, kind if cfg.algo == "lora" else cfg.algo, int(rank), float(alpha), float(lr))


def _pattern_of(table: list[tuple[re.Pattern, object]], name: str) -> str:
    return next((p.pattern for p, _ in table if p.search(name)), "(default)")


def candidate_modules(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear/Conv2d sub-module (subclasses included): what targeting can choose from."""
    return [(name, module) for name, module in root.named_modules() if name and adapter_kind(module) is not None]


def select_targets(root: nn.Module, cfg: NetworkConfig) -> list[TargetSpec]:
    """The layers to adapt: preset, plus `include`, minus `exclude`, with rank/alpha/lr patterns applied."""
    predicate = TARGETING_PRESETS.get(cfg.preset)
    rules = _Rules.of(cfg)
    candidates = candidate_modules(root)
    targets = []
    for name, module in candidates:
        chosen = predicate(name, module) or any(p.search(name) for p in rules.include)
        if chosen and not any(p.search(name) for p in rules.exclude):
            targets.append(rules.spec(name, module, cfg))
    if not targets:
        raise ConfigError("preset", f"preset '{cfg.preset}' with include {list(cfg.include)} and exclude "
                          f"{list(cfg.exclude)} selects none of the {len(candidates)} Linear/Conv2d modules scanned; "
                          f"try preset 'all_linear' or loosen exclude (presets: {', '.join(TARGETING_PRESETS.names())})")
    return targets


def adapter_parameters(spec: TargetSpec, module: nn.Module) -> int:
    """LoRA: r*(in*kh*kw + out) (LoRAModule's shapes); LoHa twice that; DoRA plus its magnitude; LoKr its blocks."""
    out, inputs = module.weight.shape[0], module.weight.shape[1]
    kernel = module.weight[0, 0].numel() if module.weight.ndim == 4 else 1
    lora = spec.rank * (inputs * kernel + out)
    if spec.kind == "lokr":
        (out_l, out_k), (in_m, in_n) = factorization(out), factorization(inputs)
        return out_l * in_m + out_k * spec.rank + spec.rank * in_n * kernel
    return {"loha": 2 * lora, "dora": lora + inputs}.get(spec.kind, lora)


@dataclass(frozen=True)
class TargetingReport:
    """What a targeting choice trains: for logs, the CLI and node tooltips."""

    num_modules: int
    num_parameters: int
    by_kind: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.by_kind.items()))
        return f"{self.num_modules} layers ({kinds}), {self.num_parameters:,} adapter parameters"


def describe(targets: Iterable[TargetSpec], root: nn.Module, examples_per_kind: int = 3) -> TargetingReport:
    targets = list(targets)
    by_kind: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    parameters = 0
    for spec in targets:
        by_kind[spec.kind] = by_kind.get(spec.kind, 0) + 1
        if len(examples.setdefault(spec.kind, [])) < examples_per_kind:
            examples[spec.kind].append(spec.name)
        parameters += adapter_parameters(spec, root.get_submodule(spec.name))
    return TargetingReport(len(targets), parameters, by_kind, examples)
