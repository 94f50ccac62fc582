"""Model backends: the small interface the trainer talks to, and its implementations."""
