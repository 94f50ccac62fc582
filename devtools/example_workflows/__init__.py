"""The example workflows: their specs, the UI<->API converter, and the builder that runs them for thumbnails."""
