"""What a slider learns: the objective registry (one entry per prompt-pair action) and the losses."""

from .actions import OBJECTIVES, Objective

__all__ = ["OBJECTIVES", "Objective"]
