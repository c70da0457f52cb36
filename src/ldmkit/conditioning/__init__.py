"""Conditioners (`Conditioner`: one class per mode) and what they are built from: domain encoders
tau_theta(y) whose output tokens are the UNet's cross-attention context, and the spatially aligned
conditions concatenated with z_t."""

from ldmkit.conditioning.bbox_tokens import (
    BBoxTokensCondition,
    BBoxTokensConditioner,
    bbox_token_ids,
)
from ldmkit.conditioning.bert import BertCondition, BertConditioner
from ldmkit.conditioning.bert_encoder import BertEncoder, BertEncoderConfig
from ldmkit.conditioning.class_label import ClassCondition, ClassConditioner
from ldmkit.conditioning.class_tokens import ClassTokensCondition, ClassTokensConditioner
from ldmkit.conditioning.clip import ClipCondition, ClipConditioner
from ldmkit.conditioning.clip_text import ClipTextConfig, ClipTextEncoder
from ldmkit.conditioning.conditioner import (
    BuildContext,
    Conditioner,
    ConditionerConfig,
    Conditioning,
    Preview,
)
from ldmkit.conditioning.layout import (
    Layout,
    LayoutConfig,
    LayoutEncoder,
    LayoutLimits,
    check_layout,
    layout_tokens,
    read_layout,
    tokens_to_layouts,
)
from ldmkit.conditioning.layout_conditioner import LayoutCondition, LayoutConditioner
from ldmkit.conditioning.prompt import PromptWarning
from ldmkit.conditioning.registry import AnyConditionerConfig
from ldmkit.conditioning.spatial import (
    SpatialConfig,
    bicubic_degrade,
    bicubic_upsample,
    colourise,
    coordinate_grid,
    masked_images,
    one_hot_map,
    random_masks,
    resize_condition,
)
from ldmkit.conditioning.spatial_conditioner import SpatialCondition, SpatialConditioner
from ldmkit.conditioning.text import TextCondition, TextConditioner
from ldmkit.conditioning.text_encoder import TextEncoder, TextEncoderConfig
from ldmkit.conditioning.tokenizer import TextTokenizer

__all__ = [
    "AnyConditionerConfig",
    "BBoxTokensCondition",
    "BBoxTokensConditioner",
    "BertCondition",
    "BertConditioner",
    "BertEncoder",
    "BertEncoderConfig",
    "BuildContext",
    "ClassCondition",
    "ClassConditioner",
    "ClassTokensCondition",
    "ClassTokensConditioner",
    "ClipCondition",
    "ClipConditioner",
    "ClipTextConfig",
    "ClipTextEncoder",
    "Conditioner",
    "ConditionerConfig",
    "Conditioning",
    "Layout",
    "LayoutCondition",
    "LayoutConditioner",
    "LayoutConfig",
    "LayoutEncoder",
    "LayoutLimits",
    "Preview",
    "PromptWarning",
    "SpatialCondition",
    "SpatialConditioner",
    "SpatialConfig",
    "TextCondition",
    "TextConditioner",
    "TextEncoder",
    "TextEncoderConfig",
    "TextTokenizer",
    "bbox_token_ids",
    "bicubic_degrade",
    "bicubic_upsample",
    "check_layout",
    "colourise",
    "coordinate_grid",
    "layout_tokens",
    "masked_images",
    "one_hot_map",
    "random_masks",
    "read_layout",
    "resize_condition",
    "tokens_to_layouts",
]
