"""Measuring a slider on any model: evaluators (a registry), the real-model eval spec, metrics with bootstrap
intervals, grid and report. Host-independent: renders come from a caller-supplied render function (the
diffusers backend headless, ComfyUI's sampler in the node)."""
