"""Texture sets in, trained and quantized neural textures out (PyTorch; CPU always, CUDA when present)."""
