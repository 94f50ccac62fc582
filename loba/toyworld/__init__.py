"""A procedurally generated toy world whose attributes can be read back exactly from pixels.

64x64 images of one object: shape, color, size and background, with jittered position and slight
shading; captions from a small grammar; a pixel reader that recovers every attribute. Slider effects
(erase "red", small <-> large) become exactly measurable on a model trained on this world.

Importing the package is cheap (no torch): import the submodules you need, e.g.
`from loba.toyworld.render import render_batch`, `from loba.toyworld.reader import read_batch` (torch).
"""

from .attributes import BACKGROUNDS, COLORS, SHAPES, SIZES, Attributes

__all__ = ["Attributes", "BACKGROUNDS", "COLORS", "SHAPES", "SIZES"]
