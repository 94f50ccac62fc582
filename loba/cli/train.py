"""`loba train`: load the run file and the model, train, write the slider, loss.csv and checkpoints."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from ..config.runfile import RunFile, load_run_file
from ..dtypes import dtype_named
from ..errors import ConfigError
from ..sliders.atomic import atomic_write
from ..train.callbacks import StepReport, TrainCallbacks, TrainStart

LOSS_COLUMNS = ("step", "loss", "main_loss", "preservation_loss", "learning_rate", "timestep", "pair_index", "seconds")


class CliCallbacks(TrainCallbacks):
    """Progress bar, loss.csv kept current at every checkpoint and at the end."""

    def __init__(self, out_dir: Path, quiet: bool):
        self.out_dir = out_dir
        self.quiet = quiet
        self.rows: list[dict] = []
        self.bar = None

    def on_start(self, start: TrainStart) -> None:
        # A resumed run keeps the rows of the steps it does not redo.
        self.rows = _previous_rows(self.out_dir, start.start_step) if start.start_step else []
        print(f"training {start.num_modules} modules ({start.num_parameters:,} parameters) on {start.num_pairs} prompt pairs")
        if not self.quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=start.total_steps, initial=start.start_step, desc="loba", unit="step")

    def on_step(self, report: StepReport, network) -> None:
        self.rows.append({name: getattr(report, name) for name in LOSS_COLUMNS})
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{report.loss:.5f}", t=report.timestep)

    def on_checkpoint(self, path: Path, step: int) -> None:
        self.write_losses()

    def on_end(self, steps_done: int, stopped: bool, error) -> None:
        if self.bar is not None:
            self.bar.close()
        self.write_losses()

    def write_losses(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LOSS_COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.out_dir / "loss.csv", lambda handle: handle.write(buffer.getvalue().encode()))


def _previous_rows(out_dir: Path, up_to_step: int) -> list[dict]:
    path = out_dir / "loss.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]


def _resolve_resume(resume: Optional[str], out_dir: Path) -> Optional[Path]:
    if not resume:
        return None
    if resume != "auto":
        return Path(resume)
    found = sorted((out_dir / "checkpoints").glob("step-*.pt"))
    return found[-1] if found else None


def load_backend(run: RunFile):
    """The model named by the run file; a path or id that cannot be loaded is a ConfigError naming the key."""
    try:
        return _load_backend(run)
    except (OSError, ValueError) as exc:  # missing files, bad hub ids (HFValidationError is a ValueError)
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("pretrained_model_name_or_path", f"cannot load '{run.model}': {exc}") from exc


def _load_backend(run: RunFile):
    from ..models.diffusers_backend import DiffusersBackend

    dtype = dtype_named(run.model_dtype, "model_dtype")
    path = Path(run.model)
    if path.is_file():
        extra = {"config": run.model_config} if run.model_config else {}
        return DiffusersBackend.from_single_file(str(path), torch_dtype=dtype, device=run.device,
                                                 prediction_type=run.prediction_type, sdxl=run.sdxl, **extra)
    return DiffusersBackend.from_pretrained(run.model, torch_dtype=dtype, device=run.device, prediction_type=run.prediction_type)


def run_train(config_path: Path, out_dir: Path, *, resume: Optional[str] = None, model: Optional[str] = None,
              overrides: Optional[dict] = None, quiet: bool = False) -> int:
    from ..sliders.metadata import save_trained_slider
    from ..train.loop import train
    from ..train.validate import validate_before_model_work

    overrides = dict(overrides or {})
    if model:
        overrides["pretrained_model_name_or_path"] = model
    run = load_run_file(config_path, overrides)
    validate_before_model_work(run.prompts, run.config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume_path = _resolve_resume(resume, out_dir)
    callbacks = CliCallbacks(out_dir, quiet)
    backend = load_backend(run)
    result = train(backend, run.prompts, run.config, callbacks=callbacks, out_dir=out_dir, resume=resume_path)
    path = save_trained_slider(out_dir / "slider.safetensors", result.network, backend, run.config, run.prompts,
                               result.steps_done)
    print(f"wrote {path} after {result.steps_done} steps (final loss {result.losses[-1] if result.losses else float('nan'):.5f})")
    return 0
