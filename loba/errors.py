"""Error types whose messages name what to fix."""


class LobaError(Exception):
    """Base class of every error LOBA raises on purpose."""


class ConfigError(LobaError, ValueError):
    """A training option is invalid. The message names the field and the fix."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class SpecError(LobaError, ValueError):
    """A prompt entry is invalid. The message names the entry, the field and the fix."""

    def __init__(self, entry: str, field: str, message: str):
        self.entry = entry
        self.field = field
        super().__init__(f"{entry}, field '{field}': {message}")


class UnsupportedModelError(LobaError, ValueError):
    """The model is of a kind LOBA cannot train."""


class AdapterFileError(LobaError, ValueError):
    """A slider/LoRA file cannot be read or does not fit the model."""


class TrainingAborted(LobaError, RuntimeError):
    """Training stopped on a non-finite loss or another unrecoverable condition."""


class StepAborted(LobaError):
    """A stop request arrived inside a training step: the step is dropped (no optimizer update) and the
    run ends as stopped, keeping every step done before it."""
