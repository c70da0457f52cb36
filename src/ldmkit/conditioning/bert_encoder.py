"""The BERT-style text transformer of the paper's text-to-image LDM (`txt2img-f8-large`, LDM-KL-8-G;
CompVis `BERTEmbedder`, diffusers `LDMBertModel`): word-piece tokens and learned positions, pre-norm
layers of multi-head attention (q, k, v without bias, an inner width heads x head_dim that need
not equal the model's) and a GELU MLP, a final LayerNorm; its token states are the context.

The names are diffusers' LDMBert names without their `model.` prefix (`embed_tokens`,
`layers.N.self_attn.q_proj`, `layers.N.fc1`, `layer_norm`); `interop/compvis.py` maps the CompVis
(x-transformers) names onto them.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BertEncoderConfig:
    """The transformer's size (LDM-KL-8-G's: 30522 word pieces, width 1280, 32 layers of 8
    64-wide heads, MLP 5120, 77 positions)."""

    vocab_size: int = 30522
    width: int = 1280
    layers: int = 32
    heads: int = 8
    head_dim: int = 64
    mlp_width: int = 5120
    max_length: int = 77

    def __post_init__(self) -> None:
        for name in ("vocab_size", "width", "layers", "heads", "head_dim", "mlp_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"bert.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 2:
            raise ValueError(f"bert.max_length must be >= 2, got {self.max_length}")


class BertAttention(nn.Module):
    """Multi-head self-attention with an inner width of heads x head_dim."""

    def __init__(self, config: BertEncoderConfig):
        super().__init__()
        inner = config.heads * config.head_dim
        self.heads = config.heads
        self.q_proj = nn.Linear(config.width, inner, bias=False)
        self.k_proj = nn.Linear(config.width, inner, bias=False)
        self.v_proj = nn.Linear(config.width, inner, bias=False)
        self.out_proj = nn.Linear(inner, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, width) -> (B, L, width)."""
        b, length, _ = x.shape
        q, k, v = (
            p(x).view(b, length, self.heads, -1).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, -1))


class BertLayer(nn.Module):
    """Pre-norm attention, then a pre-norm GELU MLP, each added back."""

    def __init__(self, config: BertEncoderConfig):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.width)
        self.self_attn = BertAttention(config)
        self.final_layer_norm = nn.LayerNorm(config.width)
        self.fc1 = nn.Linear(config.width, config.mlp_width)
        self.fc2 = nn.Linear(config.mlp_width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class BertEncoder(nn.Module):
    """Token ids (B, L) -> context tokens (B, L, width)."""

    def __init__(self, config: BertEncoderConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.width)
        self.embed_positions = nn.Embedding(config.max_length, config.width)
        self.layers = nn.ModuleList([BertLayer(config) for _ in range(config.layers)])
        self.layer_norm = nn.LayerNorm(config.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.config.max_length:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_length {self.config.max_length}")
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed_tokens(ids) + self.embed_positions(positions)[None]
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)
