"""LOBA's ComfyUI nodes: thin V3 nodes that validate, adapt and call the engine in ../loba.

Imported only when ComfyUI asks the pack for its nodes (comfy_entrypoint), never at pack import.
They import the engine relatively (..loba), so the pack works whatever its folder is called.
"""
