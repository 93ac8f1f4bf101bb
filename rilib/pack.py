"""A model zoo that travels: pack a profile's trained models into one tarball, and unpack one safely.

A reader on Binder, Colab or a laptop should not have to train the zoo before a chapter runs. ``rilib zoo pack``
writes ``rilib-zoo-<profile>.tar.gz``: every trained model of the profile (``model.pt``, ``metrics.json``,
``spec.json``) and a ``manifest.json`` that lists, for each model, its zoo name, spec, key, folder and the sha256
and size of each file. ``rilib zoo unpack FILE|URL`` checks the whole tarball against its manifest before it
writes anything:

- every member is a regular file listed in the manifest (no extra file, no link, no folder entry), with a path
  that stays inside the zoo (no absolute path, no ``..``);
- every listed file is present, with the size and sha256 the manifest records;
- every entry's key is the hash of its spec (:meth:`rilib.zoo.Spec.key`), and its folder is the one that key names;
- every ``metrics.json`` records the sha256 of its ``model.pt``, so that :func:`rilib.zoo.verify` accepts it.

Only then is each model written, into a temporary folder that replaces the zoo's folder in one step. A model that
is already in the zoo, intact, is left alone. Measurement caches are never packed: they are derived, and a
chapter recomputes them. A URL is fetched only with ``RILIB_DOWNLOAD=1``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import paths, zoo
from .errors import RilibError
from .profiles import Profile, get_profile

SCHEMA = "rilib.zoo-pack"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FILES = ("model.pt", "metrics.json", "spec.json")
_FOLDER = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{12}$")


def default_name(profile: str | Profile) -> str:
    """The tarball's file name for a profile: ``rilib-zoo-<profile>.tar.gz``."""
    return f"rilib-zoo-{get_profile(profile).name}.tar.gz"


def _digest(fh) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def pack(profile: str | Profile, output: Optional[str | Path] = None) -> Path:
    """Write every trained model of ``profile`` and a manifest to a gzipped tarball; return its path.

    Every model must be trained and intact (:func:`rilib.zoo.verify`): a pack is all of a profile's zoo or nothing.
    The tarball is written to a temporary name and renamed when complete.
    """
    prof = get_profile(profile)
    specs = zoo.zoo_specs(prof)
    missing = [n for n, s in specs.items() if not zoo.is_trained(s)]
    if missing:
        raise RilibError(f"{len(missing)} model(s) of profile {prof.name} are not trained: {', '.join(missing)}. "
                         f"Train them first with `rilib zoo train --profile {prof.name}`.")
    entries, seen = [], set()
    for name, spec in specs.items():
        zoo.verify(spec)  # a corrupt checkpoint is never packed
        folder = spec.folder()
        if folder.name in seen:  # one model under two names
            continue
        seen.add(folder.name)
        files = {}
        for fname in FILES:
            with open(folder / fname, "rb") as fh:
                sha, size = _digest(fh)
            files[fname] = {"sha256": sha, "size": size}
        entries.append({"name": name, "key": spec.key(), "folder": folder.name, "spec": spec.to_dict(),
                        "files": files})
    from . import __version__
    manifest = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "profile": prof.name,
                "rilib_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "models": entries}
    out = Path(output) if output else Path.cwd() / default_name(prof)
    if out.is_dir():
        out = out / default_name(prof)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tmp, "w:gz") as tf:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tf.addfile(info, io.BytesIO(data))
            for e in entries:
                for fname in FILES:
                    tf.add(paths.zoo_dir() / e["folder"] / fname, arcname=f"{e['folder']}/{fname}",
                           recursive=False)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise paths.cannot_write(out, exc) from None
    return out


@dataclass
class Unpacked:
    """What :func:`unpack` did: the models it wrote, the ones already in the zoo, and those this version of rilib
    does not list under the pack's profile (stored, but no chapter will ask for them)."""
    profile: str
    written: list = field(default_factory=list)
    present: list = field(default_factory=list)
    unlisted: list = field(default_factory=list)

    def summary(self) -> str:
        text = (f"Zoo pack of profile {self.profile}: {len(self.written)} model(s) written, "
                f"{len(self.present)} already in the zoo (cache: {paths.zoo_dir()}).")
        if self.unlisted:
            text += (f" {len(self.unlisted)} model(s) are not in this rilib's {self.profile} zoo (packed by another "
                     f"version?): {', '.join(self.unlisted)}.")
        return text


def _refuse(source, why: str) -> RilibError:
    return RilibError(f"Refusing the zoo pack {source}: {why}. Nothing was written. Pack it again with "
                      f"`rilib zoo pack` from an intact zoo, or fetch it again.")


def _read_manifest(tf: tarfile.TarFile, source) -> dict:
    try:
        member = tf.getmember(MANIFEST)
        manifest = json.loads(tf.extractfile(member).read())
    except KeyError:
        raise _refuse(source, f"it has no {MANIFEST}") from None
    except (ValueError, AttributeError) as exc:
        raise _refuse(source, f"its {MANIFEST} cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise _refuse(source, f"its {MANIFEST} is not a {SCHEMA} manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise _refuse(source, f"its manifest has schema version {manifest.get('schema_version')!r}; this rilib "
                              f"reads version {SCHEMA_VERSION}")
    return manifest


def _expected(manifest: dict, source) -> dict[str, dict]:
    """Each member path the manifest lists, with its sha256 and size; checks each entry's key and folder."""
    expected = {}
    for e in manifest.get("models", []):
        try:
            folder, key, files = e["folder"], e["key"], e["files"]
            spec = zoo.Spec.from_dict(e["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _refuse(source, f"a manifest entry is malformed ({type(exc).__name__}: {exc})") from None
        if spec.key() != key:
            raise _refuse(source, f"entry {folder!r}: its spec hashes to {spec.key()}, not to its key {key}")
        if not _FOLDER.match(folder) or folder != spec.folder_name():
            raise _refuse(source, f"the folder name {folder!r} is not the zoo's folder for its spec "
                                  f"({spec.folder_name()})")
        if set(files) != set(FILES):
            raise _refuse(source, f"entry {folder} lists {sorted(files)}, expected {list(FILES)}")
        for fname, meta in files.items():
            expected[f"{folder}/{fname}"] = meta
    return expected


def _check_members(tf: tarfile.TarFile, expected: dict, source) -> tuple[set, dict]:
    """Each member of the tarball: a regular file the manifest lists, inside the zoo, with its size and sha256.
    Returns the members seen and the sha256 each ``metrics.json`` records."""
    seen, metrics_sha = set(), {}
    for member in tf:
        name = member.name
        if name == MANIFEST:
            continue
        norm = posixpath.normpath(name)
        if name.startswith("/") or norm.startswith("..") or "/../" in f"/{name}/" or norm != name:
            raise _refuse(source, f"the member {name!r} has a path that escapes the zoo")
        if not member.isfile():
            raise _refuse(source, f"the member {name!r} is not a regular file (a link or a folder)")
        if name not in expected:
            raise _refuse(source, f"the member {name!r} is not listed in its manifest")
        if name in seen:
            raise _refuse(source, f"the member {name!r} appears twice")
        seen.add(name)
        fh = tf.extractfile(member)
        if name.endswith("/metrics.json"):
            data = fh.read()
            sha, size = hashlib.sha256(data).hexdigest(), len(data)
            try:
                metrics_sha[name.rsplit("/", 1)[0]] = json.loads(data).get("sha256")
            except (ValueError, AttributeError):  # not JSON, or not an object: no sha256 recorded
                metrics_sha[name.rsplit("/", 1)[0]] = None
        else:
            sha, size = _digest(fh)
        meta = expected[name]
        if size != meta.get("size") or sha != meta.get("sha256"):
            raise _refuse(source, f"{name} does not match its manifest (sha256 {sha[:16]}…, {size} bytes; "
                                  f"the manifest records {str(meta.get('sha256'))[:16]}…, "
                                  f"{meta.get('size')} bytes)")
    return seen, metrics_sha


def _check(path: Path, source) -> tuple[dict, dict[str, dict]]:
    """Read the whole tarball once and check it against its manifest; return (manifest, expected members)."""
    try:
        tf = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _refuse(source, f"it is not a readable tarball ({exc})") from None
    try:
        with tf:
            manifest = _read_manifest(tf, source)
            expected = _expected(manifest, source)
            seen, metrics_sha = _check_members(tf, expected, source)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _refuse(source, f"it is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    absent = sorted(set(expected) - seen)
    if absent:
        raise _refuse(source, f"{len(absent)} file(s) its manifest lists are missing: {', '.join(absent[:5])}")
    for folder, sha in metrics_sha.items():
        if sha != expected[f"{folder}/model.pt"]["sha256"]:
            raise _refuse(source, f"{folder}/metrics.json records another sha256 than its model.pt")
    return manifest, expected


def _download(url: str, folder: Path) -> Path:
    """Fetch ``url`` into ``folder`` and return the file; only with ``RILIB_DOWNLOAD=1``."""
    if not paths.download_allowed():
        raise RilibError(f"Fetching {url} needs RILIB_DOWNLOAD=1 (rilib downloads nothing unless asked). Set it, "
                         f"or download the file yourself and pass its path.")
    import urllib.request
    target = folder / "download.tar.gz"
    print(f"rilib: fetching {url}", file=sys.stderr, flush=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(target, "wb") as fh:
            shutil.copyfileobj(resp, fh, 1 << 20)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise RilibError(f"Could not fetch {url} ({exc}). Check the address and the network, or download the file "
                         f"and pass its path.") from None
    return target


def unpack(source: str | Path) -> Unpacked:
    """Check a zoo pack (a file, or an http(s) URL with ``RILIB_DOWNLOAD=1``) against its manifest, then write
    its models into the zoo (``RILIB_CACHE``). Raises :class:`RilibError`, having written nothing, if any check
    fails (see the module's docstring)."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(prefix="rilib-download-") as tmp:  # removed, used or refused
            return _unpack(_download(text, Path(tmp)), text)
    path = Path(source)
    if not path.is_file():
        raise RilibError(f"No zoo pack at {path}. Pass the file `rilib zoo pack` wrote, or an http(s) URL "
                         f"with RILIB_DOWNLOAD=1.")
    return _unpack(path, text)


def _unpack(path: Path, text: str) -> Unpacked:
    manifest, _ = _check(path, text)
    profile = str(manifest.get("profile"))
    try:
        listed = {s.key() for s in zoo.zoo_specs(profile).values()}
    except RilibError:  # a profile this version does not know
        listed = set()
    done = Unpacked(profile)
    zoo_dir = paths.zoo_dir()
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=zoo_dir))
    try:
        with tarfile.open(path, "r:*") as tf:
            for e in manifest["models"]:
                spec = zoo.Spec.from_dict(e["spec"])
                if spec.key() not in listed:
                    done.unlisted.append(e["name"])
                dest = zoo_dir / e["folder"]
                with paths.file_lock(zoo._lock_path(spec)):
                    if zoo.is_trained(spec):
                        try:
                            if zoo.verify(spec).get("sha256") == e["files"]["model.pt"]["sha256"]:
                                done.present.append(e["name"])
                                continue
                        except RilibError:
                            pass  # a corrupt copy in the zoo: the packed one replaces it
                    tmp = staging / e["folder"]
                    tmp.mkdir()
                    for fname in FILES:
                        with tf.extractfile(f"{e['folder']}/{fname}") as src, open(tmp / fname, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        with open(tmp / fname, "rb") as fh:  # what was written, not only what was read
                            if _digest(fh)[0] != e["files"][fname]["sha256"]:
                                raise _refuse(text, f"{e['folder']}/{fname} changed while it was unpacked")
                    if dest.exists():
                        shutil.rmtree(dest)
                    os.replace(tmp, dest)
                    done.written.append(e["name"])
    except OSError as exc:
        raise paths.cannot_write(zoo_dir, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return done
