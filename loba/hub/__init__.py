"""Sliders on the Hugging Face Hub: the model card (card.py), what a push uploads (bundle.py) and the upload
itself (push.py). Everything here imports huggingface_hub inside its functions."""
