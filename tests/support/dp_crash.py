"""A `loba train` worker whose rank 1 fails in its second step (launched by the data-parallel tests through
accelerate's launcher): the other rank is then waiting in the all_reduce and must be ended too."""

import os
import sys

from loba.cli.main import main
from loba.train.step import SliderStep

CRASH = "injected failure on rank 1"


def _failing_run(original):
    calls = []

    def run(self, plan, clock=None, rows=None):
        calls.append(1)
        if os.environ.get("RANK") == "1" and len(calls) == 2:
            raise RuntimeError(CRASH)
        return original(self, plan, clock, rows)

    return run


if __name__ == "__main__":
    SliderStep.run = _failing_run(SliderStep.run)
    sys.exit(main(sys.argv[1:]))
