"""Models: the small backend interface the trainer talks to, its diffusers implementation, and key naming."""
