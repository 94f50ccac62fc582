"""`loba toyworld build` is deterministic and resumable (on a few-step recipe; the real one runs for hours)."""

import torch

from loba.toyworld.build import BuildRecipe, build

TINY = BuildRecipe(seed=3, autoencoder_steps=3, autoencoder_batch=4, dataset_size=64, denoiser_steps=4, denoiser_batch=4, threads=1,
                   check_images=16, scale_images=16)


def states(components):
    return {f"{part}.{key}": value for part in ("unet", "text_encoder", "vae")
            for key, value in getattr(components, part).state_dict().items()}


def test_same_seed_same_weights_and_an_interrupted_denoiser_resumes_exactly(tmp_path, monkeypatch):
    first = states(build(tmp_path / "a", TINY, log=lambda _: None))
    second = states(build(tmp_path / "b", TINY, log=lambda _: None))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)

    # Interrupt the denoiser right after its step-2 save: the resumed build must land on the same weights.
    import loba.toyworld.train_denoiser as stage

    real_train, real_save = stage.train_denoiser, stage._save_progress

    def save_then_stop(path, step, *args):
        real_save(path, step, *args)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(stage, "train_denoiser", lambda *a, **k: real_train(*a, **{**k, "save_every": 2}))
    monkeypatch.setattr(stage, "_save_progress", save_then_stop)
    try:
        build(tmp_path / "c", TINY, log=lambda _: None)
        raise AssertionError("the build was not interrupted")
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "c" / "denoiser.pt").exists() and (tmp_path / "c" / "denoiser-progress.pt").exists()
    monkeypatch.setattr(stage, "_save_progress", real_save)
    resumed = states(build(tmp_path / "c", TINY, log=lambda _: None))
    assert all(torch.equal(first[k], resumed[k]) for k in first)
