"""Plain ``nn.Module`` networks (no Lightning, no data imports): ``visage`` and ``visaudio``."""
