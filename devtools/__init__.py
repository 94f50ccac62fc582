"""Developer tools (not shipped in the pack): the ComfyUI finder and server harness, the example-workflow builder."""
