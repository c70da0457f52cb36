"""A full-size Stable Diffusion 1.5-layout single file (random weights: the 860M UNet, the kl-f8
VAE, CLIP ViT-L/14's text encoder; about 4.3 GB in float32) read by `ldmkit.load`: load time,
peak resident memory against the file's size, and seconds for one 512x512 image.

    python benchmarks/sd_single_file.py          # builds /tmp/sd15-random.safetensors once
    python benchmarks/sd_single_file.py --steps 20 --precision bf16

Each measurement runs in a fresh process, so the peak memory is the load's and the sampling's
own. Prints one JSON line per measurement, with the machine report first.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

FILE = Path("/tmp/sd15-random.safetensors")


def build(path: Path) -> None:
    """Write the random SD 1.5-layout file (CompVis key names, the schedule's betas)."""
    import torch
    import transformers
    from safetensors.torch import save_file

    from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
    from ldmkit.diffusion import linear_schedule
    from ldmkit.unet import UNet, unet_preset

    torch.manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    unet = UNet(unet_preset("sd-v1"))
    state.update({f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()})
    del unet
    vae = Autoencoder(
        AutoencoderConfig(model_channels=128, channel_mult=(1, 2, 4, 4), z_channels=4)
    )
    state.update(
        {f"first_stage_model.{k}": v for k, v in vae.state_dict().items() if "latent_" not in k}
    )
    clip = transformers.CLIPTextModel(  # ViT-L/14's text tower
        transformers.CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )
    for key, value in clip.state_dict().items():
        bare = key.removeprefix("text_model.")
        state[f"cond_stage_model.transformer.text_model.{bare}"] = value
    state["betas"] = linear_schedule(1000, 0.00085, 0.012).betas.float()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def measure(path: Path, steps: int, precision: str) -> dict:
    """In this process: load, then one 512x512 image (classifier-free guidance 7.5)."""
    import torch

    import ldmkit
    from ldmkit.samplers import SamplingOptions

    torch.set_num_threads(torch.get_num_threads())
    began = time.perf_counter()
    # As `ldmkit sample --precision` does: a half precision holds the UNet's weights in it,
    # read straight from the file.
    model = ldmkit.load(path, precision=precision)
    loaded = time.perf_counter() - began
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB
    options = SamplingOptions(steps=steps, guidance=7.5, precision=precision, seed=0)
    began = time.perf_counter()
    image = model.sample(1, prompts=["a photo of a cat"], options=options)
    seconds = time.perf_counter() - began
    return {
        "file_gib": round(path.stat().st_size / 2**30, 2),
        "load_s": round(loaded, 1),
        "peak_rss_after_load_gib": round(rss_after_load, 2),
        "load_peak_over_file": round(rss_after_load / (path.stat().st_size / 2**30), 2),
        "steps": steps,
        "precision": options.precision,
        "image": list(image.shape),
        "seconds_per_image": round(seconds, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=FILE)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.file, args.steps, args.precision)))
        return
    from ldmkit.hardware import machine_report

    print("machine:", json.dumps(machine_report()))
    if not args.file.is_file():
        began = time.perf_counter()
        build(args.file)
        print(json.dumps({"built": str(args.file), "seconds": round(time.perf_counter() - began)}))
    command = [sys.executable, __file__, "--child", "--file", str(args.file)]
    command += ["--steps", str(args.steps), "--precision", args.precision]
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
