"""Targeting, Loss and Optimizer: optional config nodes whose widgets are the engine's config fields.

Each outputs a ConfigPart that the Train Slider node lays over its own settings; the simple graph needs none.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..loba.adapters.targeting import TARGETING_PRESETS
from ..loba.config import LossConfig, NetworkConfig, OptimizerConfig, SamplingConfig, config_from_widgets
from ..loba.diffusion.spacing import TIMESTEP_SPACINGS
from ..loba.objectives.losses import LOSSES
from ..loba.optim import validate_names
from .node_errors import fail, reported_as
from .types import ConfigPart, LossSocket, OptimizerSocket, SamplingSocket, TargetingSocket
from .widgets import config_input

CATEGORY = "LOBA/settings"


def regex_lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def pattern_table(text: str, node: str, field: str, kind=float) -> dict:
    """'regex = value' per line -> {regex: value}."""
    table = {}
    for number, line in enumerate(regex_lines(text), start=1):
        regex, sep, value = line.rpartition("=")
        try:
            if not sep or not regex.strip():
                raise ValueError
            table[regex.strip()] = kind(value.strip())
        except ValueError:
            raise fail(node, field, f"line {number} '{line}' is not 'regex = {kind.__name__}', e.g. 'up_blocks.* = 0.5'") from None
    return table


def checked(node: str, values: dict) -> ConfigPart:
    with reported_as(node):
        # Fails here, on this node, rather than later on the Train node. The part keeps the widget values as they
        # are: the Train node migrates them once, together with its own (they share the workflow's version).
        config = config_from_widgets(values)
        TARGETING_PRESETS.get(config.network.preset)
        LOSSES.get(config.loss.loss_type)
        TIMESTEP_SPACINGS.get(config.sampling.timestep_spacing)
        validate_names(config.optimizer)
    return ConfigPart(node, values)


class TargetingNode(io.ComfyNode):
    DISPLAY = "LOBA Targeting"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_Targeting", display_name=cls.DISPLAY, category=CATEGORY,
            description="Which layers the slider trains, at what rank, and per-layer ranks and learning rates. "
                        "Presets: " + ", ".join(TARGETING_PRESETS.names()) + ".",
            inputs=[
                config_input(NetworkConfig, "preset"),
                config_input(NetworkConfig, "network_dim", display_name="rank"),
                config_input(NetworkConfig, "network_alpha", display_name="alpha"),
                config_input(NetworkConfig, "conv_dim"),
                config_input(NetworkConfig, "conv_alpha"),
                io.String.Input("include", default="", multiline=True, tooltip="Extra layers: one regex over module names per line."),
                io.String.Input("exclude", default="", multiline=True, tooltip="Layers never trained: one regex per line."),
                io.String.Input("rank_pattern", default="", multiline=True,
                                tooltip="Per-block rank, 'regex = rank' per line; first match wins."),
                io.String.Input("lr_pattern", default="", multiline=True,
                                tooltip="Per-layer learning-rate multipliers, 'regex = multiplier' per line; first match wins."),
                # Optional: workflows saved before them keep validating (their defaults train a LoRA on the UNet only,
                # without dropout, as then).
                config_input(NetworkConfig, "algo", optional=True),
                config_input(NetworkConfig, "dropout", optional=True, step=0.05),
                config_input(NetworkConfig, "rank_dropout", optional=True, step=0.05),
                config_input(NetworkConfig, "module_dropout", optional=True, step=0.05),
                config_input(NetworkConfig, "train_text_encoder", optional=True),
                config_input(NetworkConfig, "text_encoder_preset", optional=True),
                config_input(NetworkConfig, "init", optional=True),
                config_input(NetworkConfig, "closed_form_lambda", optional=True, step=0.01),
            ],
            outputs=[TargetingSocket.Output(display_name="targeting", tooltip="Connect to Train Slider's targeting input.")],
        )

    @classmethod
    def execute(cls, preset, network_dim, network_alpha, conv_dim, conv_alpha, include, exclude, rank_pattern, lr_pattern,
                train_text_encoder="off", text_encoder_preset="attention_mlp", init="default", closed_form_lambda=0.1,
                **lycoris) -> io.NodeOutput:
        values = {"preset": preset, "network_dim": network_dim, "network_alpha": network_alpha, "conv_dim": conv_dim,
                  "train_text_encoder": train_text_encoder, "text_encoder_preset": text_encoder_preset,
                  "init": init, "closed_form_lambda": closed_form_lambda,
                  "conv_alpha": conv_alpha, "include": regex_lines(include), "exclude": regex_lines(exclude),
                  "rank_pattern": pattern_table(rank_pattern, cls.DISPLAY, "rank_pattern", int),
                  "lr_pattern": pattern_table(lr_pattern, cls.DISPLAY, "lr_pattern"),
                  **{key: value for key, value in lycoris.items() if value is not None}}  # algo, dropout, rank/module_dropout
        return io.NodeOutput(checked(cls.DISPLAY, values))


class SettingsNode(io.ComfyNode):
    """A settings node whose widgets are config fields of the same names: its output is those values, checked."""

    DISPLAY = "LOBA settings"

    @classmethod
    def execute(cls, **values) -> io.NodeOutput:
        return io.NodeOutput(checked(cls.DISPLAY, values))


class LossNode(SettingsNode):
    DISPLAY = "LOBA Loss"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_Loss", display_name=cls.DISPLAY, category=CATEGORY,
            description="The loss stack: per-element loss, min-SNR weighting, and how strongly preservation prompts hold.",
            inputs=[config_input(LossConfig, "loss_type"), config_input(LossConfig, "huber_delta"),
                    config_input(LossConfig, "min_snr_gamma", step=0.5), config_input(LossConfig, "preservation_weight", step=0.1)],
            outputs=[LossSocket.Output(display_name="loss", tooltip="Connect to Train Slider's loss input.")],
        )


class OptimizerNode(SettingsNode):
    DISPLAY = "LOBA Optimizer"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_Optimizer", display_name=cls.DISPLAY, category=CATEGORY,
            description="Optimizer, learning-rate schedule and clipping (the learning rate itself is on Train Slider).",
            inputs=[config_input(OptimizerConfig, "optimizer"), config_input(OptimizerConfig, "weight_decay", step=0.001),
                    config_input(OptimizerConfig, "lr_scheduler"), config_input(OptimizerConfig, "lr_warmup_steps"),
                    config_input(OptimizerConfig, "lr_scheduler_num_cycles"), config_input(OptimizerConfig, "max_grad_norm", step=0.1),
                    config_input(OptimizerConfig, "ema_decay", optional=True, step=0.001),  # optional: older workflows
                    config_input(OptimizerConfig, "text_encoder_lr", step=1e-5, optional=True)],
            outputs=[OptimizerSocket.Output(display_name="optimizer", tooltip="Connect to Train Slider's optimizer input.")],
        )


class SamplingNode(SettingsNode):
    DISPLAY = "LOBA Sampling"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LOBA_Sampling", display_name=cls.DISPLAY, category=CATEGORY,
            description="How the partially denoised latents x_t are made: the trajectory cache (reuse denoise "
                        "trajectories across steps, several times faster) and the timestep range trained.",
            inputs=[config_input(SamplingConfig, "trajectory_cache", default=4),
                    config_input(SamplingConfig, "trajectory_refresh_every", default=48),
                    config_input(SamplingConfig, "min_timestep"), config_input(SamplingConfig, "max_timestep"),
                    config_input(SamplingConfig, "preserve_from_timestep"),
                    # Optional: workflows saved before it keep validating (their default is leading, as then).
                    config_input(SamplingConfig, "timestep_spacing", optional=True),
                    config_input(SamplingConfig, "trajectory_cache_mb", optional=True),
                    config_input(SamplingConfig, "single_step", optional=True),
                    config_input(SamplingConfig, "teacher_batch_size", optional=True)],
            outputs=[SamplingSocket.Output(display_name="sampling", tooltip="Connect to Train Slider's sampling input.")],
        )
