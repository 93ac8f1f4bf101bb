"""The one place that knows where rilib reads and writes files.

- ``RILIB_CACHE``: the model zoo and other caches. Default: ``.rilib-cache/`` in the project checkout
  (or ``~/.cache/rilib`` when rilib is installed outside a checkout).
- ``RILIB_DATA_DIR``: a torchvision data root for the full datasets. Default: ``<cache>/data``.
- ``RILIB_DOWNLOAD=1``: allow torchvision to download missing datasets into the data root.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import RilibError

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


#: Bump when the data every measurement reads changes for all chapters at once, so that every cached measurement
#: (:func:`results_path`) and every cached evaluation (``evals.json`` in the zoo) is computed afresh; the models
#: themselves stay. 2: mnist-5k's test digits interleaved by class, where the first 500 were the digits 0–4.
DATA_VERSION = 2


def results_path(chapter: str, profile: str, settings: dict, suffix: str) -> Path:
    """Where a chapter caches its measurements: ``<cache>/results/<chapter>-<profile>-<hash><suffix>``, the hash
    taken over ``settings`` (the models' spec keys, the sizes, a version number, ...) and :data:`DATA_VERSION`, so
    that changing any of them computes afresh instead of reading a stale file."""
    import hashlib
    key = hashlib.sha256(json.dumps({**settings, "data version": DATA_VERSION}, sort_keys=True).encode()
                         ).hexdigest()[:12]
    return cache_dir() / "results" / f"{chapter}-{profile}-{key}{suffix}"


def check_results(profile: str) -> list[dict]:
    """The state of every cached chapter result of ``profile`` (:func:`results_path`), for ``rilib zoo verify``:
    ``file``, ``state`` (``ok``, ``corrupt``: unreadable, recomputed on its next use, or ``set aside``: a
    ``.corrupt`` file an earlier read moved away) and ``bytes``. Reading a file here changes nothing."""
    folder = cache_dir() / "results"
    out = []
    for path in sorted(folder.glob(f"*-{profile}-*")) if folder.is_dir() else ():
        if path.name.endswith(".corrupt"):
            state = "set aside"
        else:
            try:
                (read_json if path.suffix == ".json" else torch_load)(path)
                state = "ok"
            except Exception:  # whatever the reason, a derived value that cannot be read is recomputed
                state = "corrupt"
        out.append({"file": path.name, "state": state, "bytes": path.stat().st_size})
    return out


def download_allowed() -> bool:
    """True when ``RILIB_DOWNLOAD=1``: torchvision may fetch missing datasets."""
    return os.environ.get("RILIB_DOWNLOAD", "0").strip().lower() in {"1", "true", "yes"}


def training_allowed() -> bool:
    """False when ``RILIB_TRAIN=0``: a model missing from the zoo is an error instead of being trained (for a zoo
    unpacked with ``rilib zoo unpack``, where training by accident would take minutes to hours)."""
    return os.environ.get("RILIB_TRAIN", "1").strip().lower() not in {"0", "false", "no"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    A write that fails (a full disk, a read-only folder) leaves the old file as it was, removes its temporary file
    and raises :class:`~rilib.errors.RilibError` saying what could not be written and how to fix it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc) from None


def cannot_write(path: Path, exc: OSError) -> RilibError:
    """The one message for a file rilib could not write: what, why, what survived, and the fixes."""
    return RilibError(
        f"Could not write {path} ({type(exc).__name__}: {exc.strerror or exc}). Nothing was replaced: an earlier "
        f"version of the file, if any, is intact. Free some disk space, fix the folder's permissions, or point "
        f"RILIB_CACHE at a writable folder.")


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_atomic(obj, path: Path) -> bytes:
    """``torch.save`` ``obj`` to ``path`` atomically; return the bytes written (e.g. to hash them)."""
    data = torch_bytes(obj)
    atomic_write_bytes(Path(path), data)
    return data


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
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        try:
            os.replace(path, aside)
            kept = f"moved it to {aside.name}"
        except OSError:  # a read-only cache: leave it where it is
            kept = "left it in place (the folder is not writable)"
        warnings.warn(f"rilib: could not read the cache {path} ({type(exc).__name__}: {first}); {kept} and "
                      f"recomputing.", stacklevel=2)
        return None


def store_cache(path: Path, data: bytes) -> bool:
    """Write a cache of derived values atomically; if it cannot be written (a read-only or full cache folder), warn
    and carry on: the values were computed and are returned to the caller, only not kept. Returns whether it was
    written."""
    try:
        atomic_write_bytes(path, data)
        return True
    except RilibError as exc:
        warnings.warn(f"rilib: the result is not cached. {exc}", stacklevel=2)
        return False


def cached(path: Path, compute: Callable[[], Any], *, load: Callable[[Path], Any], dump: Callable[[Any], bytes],
           name: str = "", lock: bool = False) -> Any:
    """A derived value kept at ``path``: ``load`` it if it is there and readable (:func:`load_cache`), otherwise
    ``compute`` it (timed as a measurement called ``name`` in the run's timing log), ``dump`` it to bytes, store it
    (:func:`store_cache`) and return it.

    With ``lock``, processes that need the value at the same time compute it once: the first holds a file lock
    (``.locks/`` beside ``path``) while it computes, the others wait, then load what it stored. Only for a
    ``compute`` whose own locks are never held by a process that then asks for this value, so that two processes
    can never wait for each other: a dataset made from another one, or a chapter's measurement (it may train models
    under the zoo's locks, but training never asks for a chapter's measurement)."""
    value = load_cache(path, load)
    if value is not None:
        return value
    if not lock:
        return _compute_and_store(path, compute, dump, name)
    path = Path(path)
    with file_lock(path.parent / ".locks" / f"{path.name}.lock", required=False,
                   waiting=f"rilib: waiting for another process that computes {name or path.stem}"):
        value = load_cache(path, load)  # stored by another process while this one waited
        return _compute_and_store(path, compute, dump, name) if value is None else value


def _compute_and_store(path: Path, compute: Callable[[], Any], dump: Callable[[Any], bytes], name: str) -> Any:
    from . import timing
    with timing.timed("measurement", name or Path(path).stem):
        value = compute()
    store_cache(path, dump(value))
    return value


def cached_record(path: Path, compute: Callable[[], Any], record: type, name: str = "", lock: bool = False) -> Any:
    """:func:`cached` for a dataclass of tensors and plain containers (a chapter's results): stored with
    :func:`torch_bytes` of its fields, loaded with ``weights_only=True`` back into ``record``; ``lock`` as there."""
    from dataclasses import asdict
    return cached(path, compute, load=lambda p: record(**torch_load(p)), dump=lambda r: torch_bytes(asdict(r)),
                  name=name, lock=lock)


def torch_load(path: Path, map_location: Any = None) -> Any:
    """A file written with :func:`torch_bytes` (or any ``torch.save`` of tensors and plain containers), loaded with
    ``weights_only=True``; ``map_location`` as in :func:`torch.load` (``"cpu"`` for tensors saved from a GPU)."""
    import torch
    return torch.load(path, map_location=map_location, weights_only=True)


def torch_bytes(obj) -> bytes:
    """``obj`` serialised by ``torch.save`` (tensors, and dicts, lists and numbers of them)."""
    import io

    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@contextlib.contextmanager
def file_lock(path: Path, waiting: str = "", required: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the body; another process asking for it waits,
    printing ``waiting`` once. The operating system releases the lock when its holder exits, however it exits, so
    a process killed mid-way never blocks the next one. Where POSIX locks are unavailable (Windows), or the lock
    file cannot be created and the lock is not ``required`` (a read-only cache, where the body writes nothing
    anyway), the body runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")
    except OSError as exc:
        if not required:
            yield
            return
        raise cannot_write(path, exc) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
