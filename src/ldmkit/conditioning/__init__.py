"""Domain encoders tau_theta(y) whose output tokens are the UNet's cross-attention context."""

from ldmkit.conditioning.text_encoder import TextEncoder, TextEncoderConfig
from ldmkit.conditioning.tokenizer import TextTokenizer

__all__ = ["TextEncoder", "TextEncoderConfig", "TextTokenizer"]
