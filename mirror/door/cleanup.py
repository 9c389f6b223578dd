"""The app's own files, and their cleaning: nothing a visitor sends or asks for stays on disk for ever.

``WorkDir.create(base)`` makes one folder per app process (``phi4-mirror-XXXX`` under ``base``: the settings'
``temp_dir``, read from ``$GRADIO_TEMP_DIR``; else the system's temporary folder) and points gradio's upload cache at
``<it>/uploads`` (by setting ``GRADIO_TEMP_DIR``, so a stand-in child started by the app shares it). Exports and QA
downloads go to ``<it>/exports`` and ``<it>/qa``; ``app.py`` hands the ``WorkDir`` to the parts that write there.

- gradio deletes the files it cached for this app (uploads, outputs) older than the age on its own schedule
  (``gr.Blocks(delete_cache=...)``) and all of them at shutdown;
- ``Janitor`` (a daemon thread) deletes exports, QA folders and cached files older than the age (gradio's own
  schedule misses what it cached for a session's outputs), never the examples, and partial uploads: gradio
  writes an upload to a temporary file at the top of its cache folder and moves it into place when complete, so
  a file left there untouched for ``partial_upload_s`` belongs to an aborted request;
- at exit the whole folder goes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class WorkDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.exports = root / "exports"
        self.qa = root / "qa"
        for folder in (self.uploads, self.exports, self.qa):
            folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, base: str | None = None) -> WorkDir:
        """A fresh work folder under ``base`` (None: the system's temporary folder), gradio's upload cache in it."""
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        work = cls(Path(tempfile.mkdtemp(prefix="phi4-mirror-", dir=base)).resolve())
        # The one write of the environment left in the app, on purpose: GRADIO_TEMP_DIR is how gradio is told where
        # its upload cache is (it reads the variable itself), and how a stand-in child started by the app inherits
        # the folder. The app's own code never reads it back: it has this WorkDir.
        os.environ["GRADIO_TEMP_DIR"] = str(work.uploads)
        return work

    def new_folder(self, kind: str) -> Path:
        """A fresh folder under ``exports`` or ``qa``."""
        parent = self.exports if kind == "exports" else self.qa
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=parent))

    def sweep(self, max_age_s: float, partial_upload_s: float, keep: Callable[[], set[str]] = set) -> int:
        """Delete exports and QA folders older than ``max_age_s``, cached files older than it (gradio's own
        schedule misses outputs it cached per session, e.g. the QA downloads) except ``keep()`` (the examples),
        and stale partial uploads; how many went."""
        now, removed = time.time(), 0
        for parent in (self.exports, self.qa):
            for entry in _entries(parent):
                if now - _mtime(entry) > max_age_s:
                    removed += _remove(entry)
        kept: set[str] | None = None
        for entry in _entries(self.uploads):
            if entry.is_file() and not entry.is_symlink():
                if now - _mtime(entry) > partial_upload_s:
                    removed += _remove(entry)
            elif entry.is_dir() and not entry.is_symlink() and now - _mtime(entry) > max_age_s:
                if kept is None:
                    kept = {os.path.realpath(p) for p in keep()}
                files = [f for f in entry.rglob("*") if f.is_file()]
                if any(os.path.realpath(f) in kept for f in files):
                    continue
                if all(now - _mtime(f) > max_age_s for f in files):
                    removed += _remove(entry)
        return removed

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return time.time()


def _remove(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return 1
    except OSError:
        return 0


class Janitor:
    """Sweeps a ``WorkDir`` every ``every_s`` seconds until ``stop()``."""

    def __init__(self, work: WorkDir, every_s: float, max_age_s: float, partial_upload_s: float) -> None:
        self.work, self.every_s, self.max_age_s, self.partial_upload_s = work, every_s, max_age_s, partial_upload_s
        self.keep: Callable[[], set[str]] = set  # files never to delete (the app's examples), set after launch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phi4-janitor", daemon=True)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                removed = self.work.sweep(self.max_age_s, self.partial_upload_s, self.keep)
                if removed:
                    log.info("cleaned %d old file%s or folder%s", removed, "s" * (removed != 1),
                             "s" * (removed != 1))
            except Exception:  # noqa: BLE001 - the next round tries again
                log.debug("cleaning failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
