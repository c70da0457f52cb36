"""Named points where a process can be made to die on cue, for the fault-injection tests: with
`LDMKIT_DIE_AT=NAME` (or `NAME:K`, the K-th time it is reached) the process exits at once with
code 137, as if SIGKILLed, leaving whatever it was writing half done. Unset, a point costs one
dictionary lookup."""

import os

ENV = "LDMKIT_DIE_AT"
KILLED = 137  # 128 + SIGKILL, what a shell reports for a killed process
_reached: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here if `LDMKIT_DIE_AT` names this point (and this is the K-th time)."""
    cue = os.environ.get(ENV)
    if cue is None:
        return
    point, _, count = cue.partition(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(count or 1):
        os._exit(KILLED)
