"""Shared network layers used by both models: attention (SDPA, KV cache), RoPE, adaLN, MLPs."""
