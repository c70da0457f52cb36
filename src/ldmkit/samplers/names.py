"""The names other tools give these samplers, read as ldmkit's: the web UIs' ("DPM++ 2M
Karras", "Euler a") and diffusers' scheduler classes ("EulerDiscreteScheduler")."""

# A lower-cased name with single spaces -> ldmkit's sampler. A web-UI name may end in
# " karras", which asks for Karras sigmas with the same sampler.
ALIASES: dict[str, str] = {
    "euler": "euler",
    "euler a": "euler-a",
    "euler ancestral": "euler-a",
    "heun": "heun",
    "dpm++ 2m": "dpm++2m",
    "dpm++ 2m sde": "dpm++2m-sde",
    "ddim": "ddim",
    "plms": "plms",
    "ddpm": "ddpm",
    "unipc": "unipc",
    "unipcmultistepscheduler": "unipc",
    "eulerdiscretescheduler": "euler",
    "eulerancestraldiscretescheduler": "euler-a",
    "heundiscretescheduler": "heun",
    "dpmsolvermultistepscheduler": "dpm++2m",
    "ddimscheduler": "ddim",
    "pndmscheduler": "plms",
    "ddpmscheduler": "ddpm",
}
KARRAS_SUFFIX = " karras"


def sampler_from_name(name: str) -> tuple[str, bool] | None:
    """(ldmkit's sampler, whether the name asks for Karras sigmas) for another tool's name,
    or None where it names none of ldmkit's samplers."""
    key = " ".join(name.lower().replace("_", " ").split())
    karras = key.endswith(KARRAS_SUFFIX)
    if karras:
        key = key[: -len(KARRAS_SUFFIX)]
    if key in ALIASES:
        return ALIASES[key], karras
    return None


# ldmkit's sampler -> the web UIs' name (without " Karras"), as their `parameters` text says.
WEBUI_NAMES: dict[str, str] = {
    "ddpm": "DDPM",
    "ddim": "DDIM",
    "plms": "PLMS",
    "euler": "Euler",
    "euler-a": "Euler a",
    "heun": "Heun",
    "dpm++2m": "DPM++ 2M",
    "dpm++2m-sde": "DPM++ 2M SDE",
    "unipc": "UniPC",
}


def webui_name(sampler: str, karras: bool = False) -> str:
    """The web UIs' name of ldmkit's `sampler` ("DPM++ 2M Karras"); read back by
    `sampler_from_name`."""
    name = WEBUI_NAMES.get(sampler, sampler)
    return f"{name} Karras" if karras else name
