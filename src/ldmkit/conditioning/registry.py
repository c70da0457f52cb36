"""Every conditioner config by its `kind` tag: the one list a new conditioning mode joins.

A config file names its conditioners as a list of tagged entries, e.g.
`conditioners: [{kind: text, encoder: {width: 128}}, {kind: spatial, map: {kind: inpaint}}]`;
`ldmkit.config.from_dict` picks each entry's class by its `kind`.
"""

from ldmkit.conditioning.bbox_tokens import BBoxTokensCondition
from ldmkit.conditioning.bert import BertCondition
from ldmkit.conditioning.class_label import ClassCondition
from ldmkit.conditioning.class_tokens import ClassTokensCondition
from ldmkit.conditioning.clip import ClipCondition
from ldmkit.conditioning.layout_conditioner import LayoutCondition
from ldmkit.conditioning.spatial_conditioner import SpatialCondition
from ldmkit.conditioning.text import TextCondition

# A new mode: its config class joins this union (the type config files are read into).
AnyConditionerConfig = (
    ClassCondition
    | ClassTokensCondition
    | TextCondition
    | ClipCondition
    | BertCondition
    | LayoutCondition
    | BBoxTokensCondition
    | SpatialCondition
)
