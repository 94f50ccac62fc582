"""What every toy-world weight file shares (the SD1 worlds' files.py and the flow world's flow_files.py): the
metadata key, the size limit of a file that ships inside the package, and the two errors."""

from __future__ import annotations

from ..errors import LobaError

METADATA_KEY = "loba_toyworld"
MAX_FILE_BYTES = 25_000_000  # the file ships inside the package: keep it small


class ToyWeightsMissing(LobaError, FileNotFoundError):
    """The toy model's weight file is not there (the default one is built by `loba toyworld build`)."""


class ToyWeightsError(LobaError, ValueError):
    """The file is not a toy-world weight file, or the weights cannot be stored in it."""
