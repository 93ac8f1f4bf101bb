"""The one place that knows where rilib reads and writes files.

- ``RILIB_CACHE``: the model zoo and other caches. Default: ``.rilib-cache/`` in the project checkout
  (or ``~/.cache/rilib`` when rilib is installed outside a checkout).
- ``RILIB_DATA_DIR``: a torchvision data root for the full datasets. Default: ``<cache>/data``.
- ``RILIB_DOWNLOAD=1``: allow torchvision to download missing datasets into the data root.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path | None:
    """The checkout rilib runs from (the folder holding ``pyproject.toml`` and ``_toc.yml``), if any."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir():
        return root
    return None


def cache_dir() -> Path:
    """Root of rilib's caches; created on first use."""
    env = os.environ.get("RILIB_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        root = project_root()
        path = root / ".rilib-cache" if root else Path.home() / ".cache" / "rilib"
    path.mkdir(parents=True, exist_ok=True)
    return path


def zoo_dir() -> Path:
    """Folder of the model zoo: one sub-folder per trained spec."""
    path = cache_dir() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The torchvision data root (``RILIB_DATA_DIR``)."""
    env = os.environ.get("RILIB_DATA_DIR")
    return Path(env).expanduser() if env else cache_dir() / "data"


def results_path(chapter: str, profile: str, settings: dict, suffix: str) -> Path:
    """Where a chapter caches its measurements: ``<cache>/results/<chapter>-<profile>-<hash><suffix>``, the hash
    taken over ``settings`` (the models' spec keys, the sizes, a version number, ...), so that changing any of
    them computes afresh instead of reading a stale file."""
    import hashlib
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "results" / f"{chapter}-{profile}-{key}{suffix}"


def download_allowed() -> bool:
    """True when ``RILIB_DOWNLOAD=1``: torchvision may fetch missing datasets."""
    return os.environ.get("RILIB_DOWNLOAD", "0").strip().lower() in {"1", "true", "yes"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_atomic(obj, path: Path) -> bytes:
    """``torch.save`` ``obj`` to ``path`` atomically; return the bytes written (e.g. to hash them)."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return buf.getvalue()


def read_json(path: Path) -> Any:
    """The JSON value stored at ``path``."""
    return json.loads(Path(path).read_text())


def load_cache(path: Path, read: Callable[[Path], Any]) -> Optional[Any]:
    """``read(path)`` for a cache of derived values, or None when there is nothing usable to read.

    A missing file gives None. A file that cannot be read (truncated, corrupt, written by another version) is moved
    aside to ``<name>.corrupt`` with a one-line warning and gives None too, so that the caller recomputes it:
    derived values are never worth a crash, and the bad file is kept for a look.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read(path)
    except Exception as exc:  # any failure to read a derived cache means: recompute it
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        warnings.warn(f"rilib: could not read the cache {path} ({type(exc).__name__}: {first}); moved it to "
                      f"{aside.name} and recomputing.", stacklevel=2)
        return None
