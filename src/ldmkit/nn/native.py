"""The package's C++ operators (`torch.ops.ldmkit.*`), compiled on first use and cached.

`load_native()` compiles `csrc/*.cpp` once per source, torch build and compiler flags with the
system C++ compiler (the same one `torch.compile` uses on the CPU) into a shared library under
`$LDMKIT_CACHE` (default `~/.cache/ldmkit/native`), then loads it into torch. The build is
written to a temporary name and renamed into place, so an interrupted build never leaves a
broken library behind. `-march=native` tunes it for the CPU it is built on; the cache key
includes the CPU's model so a cache shared across machines does not hand one CPU another's
build. Nothing is downloaded; without a compiler `load_native()` raises an error that says so,
and callers fall back to plain torch ops (`native_available()`).
"""

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

_SOURCES = (Path(__file__).parent / "csrc" / "winograd.cpp",)
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError(
            "ldmkit's C++ operators need a C++ compiler (g++), and none was found; install one "
            "(Debian: apt-get install g++) or set CXX, or leave the native path off"
        )
    return compiler


def _command(compiler: str, output: Path) -> list[str]:
    from torch.utils import cpp_extension

    torch_lib = Path(torch.__file__).parent / "lib"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [
        compiler,
        *_FLAGS,
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *(f"-I{path}" for path in cpp_extension.include_paths()),
        *(str(source) for source in _SOURCES),
        f"-L{torch_lib}",
        "-lc10",
        "-ltorch_cpu",
        f"-Wl,-rpath,{torch_lib}",
        "-o",
        str(output),
    ]


def cache_root() -> Path:
    """Where ldmkit keeps what it builds once per machine: `$LDMKIT_CACHE`, else
    `~/.cache/ldmkit` (the C++ operators in native/, compiled graphs in inductor/)."""
    root = os.environ.get("LDMKIT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "ldmkit"


def _cache_dir() -> Path:
    return cache_root() / "native"


def build_native(cache_dir: Path | None = None) -> Path:
    """The C++ operators' shared library for this source, torch and CPU, compiled into
    `cache_dir` (default: `$LDMKIT_CACHE/native` or `~/.cache/ldmkit/native`) unless it is
    there already; returns its path. Takes tens of seconds the first time on a small CPU."""
    compiler = _compiler()
    key = hashlib.sha256()
    for part in (torch.__version__, compiler, " ".join(_FLAGS), _cpu_model()):
        key.update(part.encode())
    for source in _SOURCES:
        key.update(source.read_bytes())
    library = (cache_dir or _cache_dir()) / f"ldmkit_native_{key.hexdigest()[:16]}.so"
    if not library.exists():
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
            partial = Path(scratch) / library.name
            result = subprocess.run(
                _command(compiler, partial), capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"building ldmkit's C++ operators with {compiler} failed; set CXX to a "
                    f"working C++17 compiler. Its output:\n{result.stderr[-4000:]}"
                )
            os.replace(partial, library)
    return library


@functools.cache
def load_native() -> Path:
    """Build (once, `build_native`) and load the C++ operators into torch; returns the shared
    library's path."""
    library = build_native()
    torch.ops.load_library(str(library))
    return library


@functools.cache
def native_available() -> bool:
    """Whether the C++ operators are loaded or can be (a compiler is present and builds them)."""
    try:
        load_native()
    except (RuntimeError, OSError):
        return False
    return True
