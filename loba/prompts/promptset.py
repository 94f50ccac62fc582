"""PromptSet: the immutable bundle of prompt entries and anchors that nodes chain and the trainer consumes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

from ..errors import SpecError
from ..models.buckets import check_mask_fits
from .checks import Resolution, require, set_field
from .reattach import ReattachEntry
from .slider import SliderTarget
from .spec import AnchorPrompt, PromptPair, distinct
from .style_shift import StyleShiftEntry

Entry = Union[PromptPair, SliderTarget, ReattachEntry, StyleShiftEntry]
ENTRY_TYPES = (PromptPair, SliderTarget, ReattachEntry, StyleShiftEntry)
# Entry kinds with their own file table ([[reattach]], [[style_shift]]) instead of [[prompts]].
OWN_TABLES = {ReattachEntry: "reattach", StyleShiftEntry: "style_shift"}


@dataclass(frozen=True)
class PromptSet:
    entries: tuple[Entry, ...] = ()
    anchors: tuple[AnchorPrompt, ...] = ()

    def __post_init__(self):
        entries, anchors = tuple(self.entries), tuple(self.anchors)
        for i, entry in enumerate(entries):
            require(isinstance(entry, ENTRY_TYPES), f"entries[{i}]", "type",
                    f"expected a PromptPair, SliderTarget, ReattachEntry or StyleShiftEntry, got {type(entry).__name__}")
        for i, anchor in enumerate(anchors):
            require(isinstance(anchor, AnchorPrompt), f"anchors[{i}]", "type",
                    f"expected an AnchorPrompt, got {type(anchor).__name__}")
        set_field(self, "entries", entries)
        set_field(self, "anchors", anchors)

    def pairs(self) -> list[PromptPair]:
        """Every training pair, sliders and re-attach entries expanded (in entry order)."""
        pairs: list[PromptPair] = []
        for entry in self.entries:
            pairs.extend([entry] if isinstance(entry, PromptPair) else entry.expand())
        return pairs

    def training_anchors(self) -> tuple[AnchorPrompt, ...]:
        """The anchors, then the re-attach and style-shift entries' explicit prompts (each prompt once, the first one's
        weight)."""
        derived = [a for entry in self.entries if isinstance(entry, tuple(OWN_TABLES)) for a in entry.anchors()]
        kept: dict[str, AnchorPrompt] = {}
        for anchor in (*self.anchors, *derived):
            kept.setdefault(anchor.prompt, anchor)
        return tuple(kept.values())

    def all_prompts(self) -> list[str]:
        """Every distinct prompt of the pairs and anchors, so each is encoded once."""
        prompts = [p for pair in self.pairs() for p in pair.prompts()]
        return distinct(prompts + [anchor.prompt for anchor in self.training_anchors()])

    def extended(self, *items: Entry | AnchorPrompt | PromptSet) -> PromptSet:
        """A new set with the items appended (another PromptSet is merged); this one is never changed."""
        entries, anchors = list(self.entries), list(self.anchors)
        for item in items:
            if isinstance(item, PromptSet):
                entries += item.entries
                anchors += item.anchors
            elif isinstance(item, AnchorPrompt):
                anchors.append(item)
            elif isinstance(item, ENTRY_TYPES):
                entries.append(item)
            else:
                raise SpecError("PromptSet.extended", "items", f"cannot add a {type(item).__name__}; add PromptPair, "
                                "SliderTarget, ReattachEntry, StyleShiftEntry, AnchorPrompt or PromptSet")
        return PromptSet(tuple(entries), tuple(anchors))

    def with_default_resolution(self, resolution: Resolution) -> PromptSet:
        """A copy in which entries without their own resolution (resolutions == ()) train at `resolution`."""
        resolution = (int(resolution[0]), int(resolution[1]))
        entries = tuple(replace(entry, resolutions=(resolution,)) if not entry.resolutions else entry for entry in self.entries)
        return PromptSet(entries, self.anchors)

    def validate(self) -> None:
        """Raise SpecError when the set cannot train anything."""
        for index, entry in enumerate(self.entries):
            require(entry.resolutions, entry.name or f"prompt entry {index + 1}", "resolution",
                    "is not set (0 = the run's default) and the run gives no default resolution")
            _check_mask_aspect(entry, index)
        pairs = self.pairs()
        require(pairs, "prompt set", "entries",
                "has no prompt pairs: add a [[prompts]] / [[targets]] entry or a prompt/slider node")
        require(any(pair.weight > 0 for pair in pairs), "prompt set", "weight",
                "every pair has weight 0, so nothing would train; give at least one pair a weight > 0")

    def to_dict(self) -> dict:
        """JSON-safe summary for file metadata, in LOBA's own file schema (masks only summarized)."""
        data = {"prompts": [entry.to_dict() for entry in self.entries if not isinstance(entry, tuple(OWN_TABLES))],
                "anchors": [anchor.to_dict() for anchor in self.anchors]}
        for kind, table in OWN_TABLES.items():
            items = [entry.to_dict() for entry in self.entries if isinstance(entry, kind)]
            if items:  # only when present: the summaries (and fingerprints) of other sets stay as they were
                data[table] = items
        if len(data) > 2 and not data["prompts"]:
            del data["prompts"]  # a file of [[reattach]] / [[style_shift]] entries alone has no [[prompts]]
        return data


def _check_mask_aspect(entry: Entry, index: int) -> None:
    if entry.mask is not None:
        check_mask_fits(entry.mask.shape[-2:], entry.resolutions, entry.name or f"prompt entry {index + 1}")
