"""Byte ranges of shards, wherever the shards are.

Local shards (the index's folder, the default) are read by seeking. `data.shard_url` names
another place: a template with `{shard}`, such as `/mnt/big/{shard}`,
`https://host/set/{shard}` or `pipe:aws s3 cp s3://bucket/set/{shard} -`. Such URLs open
through WebDataset's `gopen` (pipes, http(s) through curl, and the schemes it knows) and are
read forward: a range after the current position is reached by reading on, an earlier one
reopens the shard. Reading a shard's samples in order (streaming, encoding, evaluation)
therefore reads each byte once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

SHARD_FIELD = "{shard}"
KEEP_OPEN = 8  # remote shards open at once in one process (a stream reads a few together)


def is_remote(url: str) -> bool:
    """Whether a `data.shard_url` needs forward reads (a pipe or a URL, not a local path)."""
    return url.startswith("pipe:") or ("://" in url and not url.startswith("file://"))


def check_shard_url(url: str) -> None:
    """A ValueError naming `data.shard_url` when it cannot name a shard."""
    if url and SHARD_FIELD not in url:
        raise ValueError(
            f"data.shard_url={url!r} has no {SHARD_FIELD} for the shard's file name; e.g. "
            "'pipe:aws s3 cp s3://bucket/set/{shard} -' or 'https://host/set/{shard}'"
        )


class ShardReader:
    """Reads `size` bytes at `offset` of a shard, by name, for one process (a forked
    DataLoader worker opens its own files)."""

    def __init__(self, root: Path, url: str = "") -> None:
        check_shard_url(url)
        self.root, self.url = Path(root), url
        self.remote = is_remote(url)
        self._open: dict[str, list[Any]] = {}  # shard -> [handle, position]
        self._pid = -1

    def location(self, shard: str) -> str:
        """Where `shard` is read from."""
        return self.url.replace(SHARD_FIELD, shard) if self.url else str(self.root / shard)

    def __getstate__(self) -> dict[str, Any]:  # handles stay in the process that opened them
        return {**self.__dict__, "_open": {}, "_pid": -1}

    def read(self, shard: str, offset: int, size: int) -> bytes:
        if self._pid != os.getpid():  # a forked worker must not share file positions
            self._open, self._pid = {}, os.getpid()
        entry = self._open.get(shard)
        if entry is not None and self.remote and offset < entry[1]:
            self.close(shard)  # an earlier range of a stream: start it again
            entry = None
        if entry is None:
            entry = self._open[shard] = [self._open_shard(shard), 0]
            if self.remote and len(self._open) > KEEP_OPEN:
                self.close(next(iter(self._open)))
        handle = entry[0]
        try:
            if self.remote:
                _skip(handle, offset - entry[1])
            else:
                handle.seek(offset)
            data = handle.read(size)
        except OSError as error:  # e.g. the pipe's command failed
            self.close(shard)
            raise OSError(f"reading shard {shard} from {self.location(shard)}: {error}") from None
        entry[1] = offset + len(data)
        if len(data) != size:
            said = ""
            if self.remote:  # a command that failed says so when it is waited for
                self._open.pop(shard, None)
                try:
                    handle.close()
                except OSError as error:
                    said = f" (the command: {error})"
            raise OSError(
                f"{self.location(shard)} ended after {offset + len(data)} bytes, before the "
                f"{size} bytes at {offset} its index names{said}; check data.shard_url and that "
                "the shards are the ones the index was written with"
            )
        return data

    def _open_shard(self, shard: str) -> Any:
        location = self.location(shard)
        if not self.remote:
            path = location.removeprefix("file://")
            if not Path(path).is_file():
                raise FileNotFoundError(f"shard {shard} not found at {path}")
            return open(path, "rb")  # kept open for the next read
        from webdataset import gopen  # only remote shards need WebDataset

        return gopen(location)

    def close(self, shard: str | None = None) -> None:
        """Close `shard`'s handle (every handle when None); a pipe stopped early is no error."""
        for name in [shard] if shard is not None else list(self._open):
            entry = self._open.pop(name, None)
            if entry is None:
                continue
            with contextlib.suppress(OSError):  # a command cut off mid-shard (SIGPIPE)
                entry[0].close()


def _skip(handle: Any, count: int) -> None:
    while count > 0:
        chunk = handle.read(min(count, 1 << 20))
        if not chunk:
            return  # the short read that follows says where the shard ended
        count -= len(chunk)
