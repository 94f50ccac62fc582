"""Slider files: kohya-format read/write, LOBA metadata, merging, and atomic writes."""
