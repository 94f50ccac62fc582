"""Safe runs through the Train node in-process: a bad filename_prefix fails before any work, an interrupt raised by
ComfyUI's progress hook inside a preview's bar update still saves the partial slider, and killed writers' temp
files are swept from the loras and checkpoint folders at the next start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.comfy import COMFY_MARKS, require_comfyui
from support.nodes import pair, train_inputs
from support.pack import run_node

require_comfyui()
pytestmark = COMFY_MARKS


@pytest.mark.parametrize("prefix, message", [("loba/\x00bad", "'\\\\x00'"), ("loba/" + "a" * 300, "300 bytes"),
                                             ("../outside", "'..'"), ("/abs/x", "absolute")])
def test_a_bad_filename_prefix_fails_before_any_work(pack, toy, monkeypatch, prefix, message):
    def no_work(*args, **kwargs):
        raise AssertionError("model work started")

    monkeypatch.setattr(pack.module.nodes.train_node, "ComfyBackend", no_work)
    with pytest.raises(ValueError, match=f"LOBA Train Slider, input 'filename_prefix': .*{message}"):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
                 **train_inputs(filename_prefix=prefix))


def test_an_interrupt_raised_inside_a_preview_update_saves_the_partial_slider(pack, comfy, toy, monkeypatch):
    mm, utils = comfy.model_management, comfy.utils

    def hook(value, total, preview, node_id=None):  # what ComfyUI's server hook does, with a cancel arriving now
        if preview is not None and value == 2:
            mm.interrupt_current_processing(True)
        mm.throw_exception_if_processing_interrupted()

    monkeypatch.setattr(utils, "PROGRESS_BAR_HOOK", hook)
    folder = pack.root / "loras" / "loba"
    with pytest.raises(mm.InterruptProcessingException):
        run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, vae=toy.vae, prompts=pair(pack),
                 **train_inputs(resolution=0, max_train_steps=20, preview_every=1, filename_prefix="loba/in-preview"))
    assert not mm.processing_interrupted(), "the next prompt does not start interrupted"
    (saved,) = folder.glob("in-preview_*.safetensors")
    metadata = pack.module.loba.sliders.kohya.load_slider(saved).metadata
    assert metadata["ss_steps"] == "2" and metadata["loba_stopped_early"] == "true"


def test_the_next_start_sweeps_killed_writers_temp_files(pack, toy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    loras = pack.root / "loras" / "loba"
    run = pack.root / "output" / "loba_checkpoints" / "old" / "x_00001_" / "checkpoints"
    run.mkdir(parents=True, exist_ok=True)
    loras.mkdir(parents=True, exist_ok=True)
    orphans = [loras / f".sweep_00001_.safetensors.loba-{dead.pid}-a.tmp", run / f".step-000002.pt.loba-{dead.pid}-b.tmp"]
    for path in orphans:
        path.write_bytes(b"half")
    run_node(pack.nodes["LOBA_TrainSlider"], model=toy.model, clip=toy.clip, prompts=pair(pack),
             **train_inputs(resolution=0, max_train_steps=1, filename_prefix="loba/sweep"))
    assert not any(path.exists() for path in orphans)
    assert not [n for n in os.listdir(loras) if n.endswith(".tmp")]
