"""Jobs kept across restarts: one SQLite table (write-ahead log, synchronous commits) beside the
images folder. A job's images are written (atomically) before its row says done, so a done job's
images exist whatever moment the process died at; at start, jobs that were running or waiting
are queued again, in the order they came."""

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Job:
    """One row: what was asked (`request`, the GenerationRequest's dict) of which model, and how
    far it got."""

    id: str
    seq: int
    model: str
    request: dict[str, Any]
    state: str
    images: int
    error: str | None
    created: float
    started: float | None
    finished: float | None

    @property
    def finished_state(self) -> bool:
        return self.state in FINISHED

    def image_ids(self) -> list[str]:
        return [f"{self.id}-{i}" for i in range(self.images)]


class JobStore:
    """The jobs of one server, in `folder`/jobs.sqlite3; safe to use from several threads."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self.uploads = self.folder / "uploads"
        for path in (self.folder, self.images, self.uploads):
            path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.folder / "jobs.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "id TEXT UNIQUE NOT NULL, model TEXT NOT NULL, request TEXT NOT NULL, "
            "state TEXT NOT NULL, images INTEGER NOT NULL DEFAULT 0, error TEXT, "
            "created REAL NOT NULL, started REAL, finished REAL)"
        )

    def _rows(self, sql: str, *args: Any) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seq, model, request, state, images, error, created, started, "
                f"finished FROM jobs {sql}",
                args,
            ).fetchall()
        return [Job(r[0], r[1], r[2], json.loads(r[3]), *r[4:]) for r in rows]

    def _write(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    @staticmethod
    def new_id() -> str:
        """A fresh job id (its uploads are named by it before the row exists)."""
        return uuid.uuid4().hex[:16]

    def add(self, model: str, request: dict[str, Any], job_id: str | None = None) -> Job:
        """A new queued job."""
        job_id = job_id or self.new_id()
        self._write(
            "INSERT INTO jobs (id, model, request, state, created) VALUES (?, ?, ?, 'queued', ?)",
            job_id,
            model,
            json.dumps(request),
            time.time(),
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        found = self._rows("WHERE id = ?", job_id)
        return found[0] if found else None

    def recent(self, limit: int = 50, state: str | None = None) -> list[Job]:
        """The newest jobs first (of one state, if given)."""
        if state is None:
            return self._rows("ORDER BY seq DESC LIMIT ?", limit)
        return self._rows("WHERE state = ? ORDER BY seq DESC LIMIT ?", state, limit)

    def next_queued(self) -> Job | None:
        """The oldest waiting job."""
        found = self._rows("WHERE state = 'queued' ORDER BY seq LIMIT 1")
        return found[0] if found else None

    def position(self, job: Job) -> int:
        """How many waiting jobs run before `job` (0: it is next)."""
        with self._lock:
            query = "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND seq < ?"
            return int(self._db.execute(query, (job.seq,)).fetchone()[0])

    def waiting(self) -> int:
        with self._lock:
            query = "SELECT COUNT(*) FROM jobs WHERE state = 'queued'"
            return int(self._db.execute(query).fetchone()[0])

    def start(self, job_id: str) -> bool:
        """queued -> running; false if it was no longer queued (cancelled meanwhile)."""
        return bool(
            self._write(
                "UPDATE jobs SET state = 'running', started = ? WHERE id = ? AND state = 'queued'",
                time.time(),
                job_id,
            )
        )

    def finish(self, job_id: str, state: str, images: int = 0, error: str | None = None) -> None:
        """running -> done / failed / cancelled (its images already written)."""
        assert state in FINISHED
        self._write(
            "UPDATE jobs SET state = ?, images = ?, error = ?, finished = ? WHERE id = ?",
            state,
            images,
            error,
            time.time(),
            job_id,
        )

    def cancel_waiting(self, job_id: str) -> bool:
        """queued -> cancelled; false if it had started or finished."""
        return bool(
            self._write(
                "UPDATE jobs SET state = 'cancelled', finished = ?, error = 'cancelled' "
                "WHERE id = ? AND state = 'queued'",
                time.time(),
                job_id,
            )
        )

    def requeue(self, job_id: str) -> None:
        """running -> queued (the server stopped under it)."""
        self._write(
            "UPDATE jobs SET state = 'queued', started = NULL WHERE id = ? AND state = 'running'",
            job_id,
        )

    def recover(self) -> int:
        """At start: jobs a stopped process left running are queued again (they run anew, in
        their original order). Returns how many."""
        return self._write(
            "UPDATE jobs SET state = 'queued', started = NULL WHERE state = 'running'"
        )

    def image_path(self, image_id: str) -> Path:
        return self.images / f"{image_id}.png"

    def close(self) -> None:
        with self._lock:
            self._db.close()
