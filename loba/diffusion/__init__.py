"""Diffusion maths: noise schedules (zero-terminal-SNR included), noise sampling, and prediction types."""
