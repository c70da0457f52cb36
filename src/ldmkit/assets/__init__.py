"""Small checkpoints shipped inside the package, each produced by a documented command.

- `shapes_evaluator/`: the shapes kind/colour adherence evaluator (config.json records the
  command, its seed and held-out accuracy).
- `shapes_kl_f4/`: the `kl-f4` autoencoder trained on 64x64 shapes (2800 steps, 32.8 dB held-out
  PSNR); the demo's first stage.
- `shapes_t2i/` (`scripts/ship_text_to_image.py` makes it): the `shapes-text` model on that
  autoencoder's latents, UNet and text encoder in float16; the demo's model.
- `clip_bpe/`: the CLIP text tokenizer's byte-pair merges (Stable Diffusion 1.x and OpenCLIP
  prompts are tokenised with them), so a single-file checkpoint needs nothing downloaded.
"""

from pathlib import Path

ASSETS = Path(__file__).parent
SHAPES_EVALUATOR = ASSETS / "shapes_evaluator"
SHAPES_AUTOENCODER = ASSETS / "shapes_kl_f4"
SHAPES_TEXT_TO_IMAGE = ASSETS / "shapes_t2i"
CLIP_BPE = ASSETS / "clip_bpe" / "bpe_simple_vocab_16e6.txt.gz"
