"""L8: the showcase. `ldmkit demo`: text-to-image from the shipped shapes checkpoint in under a
minute (`--train` retrains its recorded recipe first, `--checkpoint DIR` uses another);
`ldmkit demo --classes`: a class-conditional LDM trained and measured in ~9 minutes."""

from ldmkit.demo.classes import DemoConfig, run_demo
from ldmkit.demo.text import TextDemoConfig, prompt_class, run_text_demo

__all__ = ["DemoConfig", "TextDemoConfig", "prompt_class", "run_demo", "run_text_demo"]
