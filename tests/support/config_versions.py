"""The version-1 fixtures (tests/fixtures/v1: files as LOBA reads and writes them today) and a test-only
config version 2, whose migration renames `rank` to `network_dim`, to prove each read path migrates."""

from __future__ import annotations

from pathlib import Path

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
RUN_FILE = V1 / "erase-red.run.toml"
WORKFLOW = V1 / "loba_erase_concept.workflow.json"
SLIDER = V1 / "erase-red.slider.safetensors"

# What the v1 run file sets (the rest are defaults); the slider was written from it with SLIDER_CHANGES.
RUN_FILE_SETTINGS = dict(learning_rate=2e-3, max_train_steps=300, max_denoising_steps=25, leco_denoise_guidance_scale=5.0,
                         denoise_with_adapter=False, preservation_weight=5.0, trajectory_cache=4, trajectory_refresh_every=48,
                         seed=0, network_dim=4, network_alpha=4.0, preset="cross_attention", exclude=("attn2.to_out",),
                         optimizer="adamw", lr_scheduler="cosine", lr_warmup_steps=10)
SLIDER_CHANGES = dict(network_dim=1, network_alpha=1.0, max_train_steps=3, save_precision="fp16", rank_pattern={"attn2": 1},
                      include=("proj_in",))


def install_version_2(monkeypatch, config_package=None) -> list[dict]:
    """Make this LOBA's config version 2, migrating v1's `rank` to `network_dim` (flat or in [network]).
    `config_package`: the loba.config to patch; the node pack has its own copy (pack.module.loba.config).
    Returns the list of dicts the migration was called with."""
    if config_package is None:
        import loba.config as config_package

    calls: list[dict] = []

    def rename_rank(data: dict) -> dict:
        calls.append(dict(data))
        if "rank" in data:
            data["network_dim"] = data.pop("rank")
        return data

    monkeypatch.setattr(config_package.train_config, "CONFIG_VERSION", 2)
    monkeypatch.setitem(config_package.MIGRATIONS, 1, rename_rank)
    return calls
