"""Fault injection: a training process killed with SIGKILL in the middle of its checkpoint and slider writes, many
times. After every kill each file of the run folder either loads or is absent; the next start leaves no temp file.

Each start is a fresh process (forked from one that imported torch once) training a tiny model with a checkpoint,
step slider and loss log every step; its nth atomic write leaves half the file in its temp file, announces itself
("WRITING <name>") and stalls, so the SIGKILL lands inside that write: every kill at a different write (checkpoint,
step slider, loss log) of a different step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loba.sliders.atomic import is_temp_file
from loba.sliders.kohya import load_slider
from loba.train.checkpoint import read_checkpoint
from loba.train.loss_log import read_rows

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
REPO = Path(__file__).resolve().parents[3]
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    import torch
    torch.set_num_threads(1)  # before any op: no thread pool, so forking below is safe
    from support.backends import make_backend
    from support.tiny_models import tiny_tokenizer
    from loba.config import TrainConfig
    from loba.prompts import PromptPair, PromptSet
    from loba.sliders import atomic
    from loba.train.run import RunRequest, run_training

    out, original = sys.argv[2], atomic.atomic_write
    backend = make_backend(tiny_tokenizer(Path(sys.argv[3])), "sd1")
    pair = PromptPair(target="a red circle", positive="a red circle", unconditional="a circle", neutral="a circle",
                      action="erase", guidance_scale=1.0, batch_size=1, resolutions=((64, 64),))
    config = TrainConfig().replace(max_train_steps=40, max_denoising_steps=2, network_dim=2, save_every_n_steps=1)

    def train_and_stall_in_write(kill_at):
        writes = {"n": 0}

        def announced(path, write_fn):
            def slow(handle):
                writes["n"] += 1
                write_fn(handle)
                if writes["n"] == kill_at:
                    handle.truncate(max(1, handle.tell() // 2))  # half a file on disk, as a kill mid-write leaves it
                    handle.flush()
                    print("WRITING", path, flush=True)
                    time.sleep(60)
            return original(path, slow)

        atomic.atomic_write = announced
        for module in ("loba.train.checkpoint", "loba.sliders.kohya"):
            sys.modules[module].atomic_write = announced
        run_training(RunRequest(PromptSet((pair,), ()), config, backend=backend, out_dir=out, resume="auto"))

    # One process imports torch once; each start is a fresh process forked from it, killed by the test.
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                train_and_stall_in_write(int(line))
                print("FINISHED", flush=True)
            finally:
                os._exit(0)
        print("PID", pid, flush=True)
        os.waitpid(pid, 0)
        print("REAPED", flush=True)
""")


class Trainer:
    """The forking parent; start(n) is a new training process, SIGKILLed inside its nth atomic write."""

    def __init__(self, out: Path):
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, str(REPO), str(out), str(out.parent / "tokenizer")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})

    def start_and_kill(self, kill_at: int) -> str:
        self.process.stdin.write(f"{kill_at}\n")
        self.process.stdin.flush()
        pid, written = None, None
        for line in self.process.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "PID":
                pid = int(rest)
            elif word == "WRITING":
                written = rest
                os.kill(pid, signal.SIGKILL)
            elif word == "REAPED":
                break
        assert written is not None, "the training process ended without the planned write"
        return written

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)


def assert_every_file_loads_or_is_absent(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_dir() or is_temp_file(path):
            continue
        if path.suffix == ".pt":
            assert read_checkpoint(path)["step"] == int(path.stem.split("-")[1])
        elif path.suffix == ".safetensors":
            assert load_slider(path).tensors
        elif path.name == "loss.csv":
            steps = [int(r["step"]) for r in read_rows(path, 10_000)]
            # (steps of a killed start that never reached its log write are missing: the log is rewritten whole)
            assert steps and steps == sorted(set(steps)), steps
        elif path.name == "loss.jsonl":
            # An append-only log: every line a kill did not cut is one JSON object (a reader skips a cut last line).
            lines = path.read_text().splitlines()
            assert all(isinstance(json.loads(line), dict) for line in lines[:-1]), path
        else:
            raise AssertionError(f"unexpected file {path}")


def test_sigkill_during_writes_never_leaves_a_broken_file_and_the_next_start_cleans_up(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(out)
    try:
        killed_in = []
        # The nth atomic write of each start: with a checkpoint, a step slider and the loss log per step, these land
        # in all three kinds. Each start resumes (resume = auto) from what the killed ones left.
        for kill_at in (1, 2, 3, 5, 7, 8, 9, 11, 4, 6):
            killed_in.append(Path(trainer.start_and_kill(kill_at)).name)
            assert len([p for p in out.rglob("*") if is_temp_file(p)]) == 1, "the next start swept the older orphans"
            assert_every_file_loads_or_is_absent(out)
        assert {name.split("-")[0].split(".")[0] for name in killed_in} == {"step", "slider", "loss"}, killed_in
        steps = [read_checkpoint(p)["step"] for p in (out / "checkpoints").glob("step-*.pt")]
        assert max(steps) >= 5, "each start resumed from the checkpoints the killed ones left"
    finally:
        trainer.close()
    from loba.sliders.atomic import sweep_temp_files

    sweep_temp_files(out, recursive=True)  # what the next start does first (run_training with an out_dir)
    assert not [p for p in out.rglob("*") if is_temp_file(p)]
