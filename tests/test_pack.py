"""A zoo that travels: pack the smoke zoo, serve it on 127.0.0.1, unpack it into an empty cache where training is
forbidden, and run a chapter; and a tampered pack is refused with a clear error, having written nothing."""

from __future__ import annotations

import functools
import io
import json
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import copy_sources
from rilib import pack, paths

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packed(smoke_book, tmp_path_factory):
    """The smoke zoo (trained by the smoke book), packed."""
    return pack.pack("smoke", tmp_path_factory.mktemp("pack"))


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RILIB_CACHE", str(cache))
    return cache


def zoo_files(cache: Path) -> list[Path]:
    return [p for p in (cache / "zoo").rglob("*") if p.is_file() and ".locks" not in p.parts] \
        if (cache / "zoo").exists() else []


@pytest.fixture
def served(packed):
    """An http.server on 127.0.0.1 serving the pack's folder; yields the pack's URL."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(packed.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{packed.name}"
    server.shutdown()
    server.server_close()


def test_pack_lists_every_model_with_its_sha256(packed):
    import rilib.chapters  # noqa: F401
    from rilib import zoo
    with tarfile.open(packed) as tf:
        manifest = json.loads(tf.extractfile(pack.MANIFEST).read())
        names = set(tf.getnames())
    assert manifest["schema"] == pack.SCHEMA and manifest["profile"] == "smoke"
    specs = zoo.zoo_specs("smoke")
    assert {e["key"] for e in manifest["models"]} == {s.key() for s in specs.values()}
    for e in manifest["models"]:
        assert {f"{e['folder']}/{f}" for f in pack.FILES} <= names
        assert len(e["files"]["model.pt"]["sha256"]) == 64


def test_a_served_pack_unpacks_into_an_empty_cache_and_a_chapter_runs_without_training(
        served, empty_cache, monkeypatch, tmp_path, cli):
    refused = cli("zoo", "unpack", served)
    assert refused.returncode == 1 and "RILIB_DOWNLOAD=1" in refused.stderr and not zoo_files(empty_cache)
    monkeypatch.setenv("RILIB_DOWNLOAD", "1")
    out = cli("zoo", "unpack", served)
    assert out.returncode == 0, out.stderr
    assert "0 already in the zoo" in out.stdout
    again = cli("zoo", "unpack", served)
    assert " 0 model(s) written" in again.stdout, "an intact model is left alone"
    assert cli("zoo", "verify", "--profile", "smoke").returncode == 0
    monkeypatch.setenv("RILIB_TRAIN", "0")  # the chapter's kernel inherits it: any training raises
    from rilib import book
    root = copy_sources(tmp_path / "book")
    book.run(["02_convolution_filters"], "smoke", root, progress=False)
    nb = json.loads((root / "book" / "02_convolution_filters.ipynb").read_text())
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_training_is_refused_when_forbidden(empty_cache, monkeypatch, cli):
    monkeypatch.setenv("RILIB_TRAIN", "0")
    out = cli("zoo", "train", "mnist-standard", "--profile", "smoke")
    assert out.returncode == 1 and "RILIB_TRAIN=0" in out.stderr and "rilib zoo unpack" in out.stderr


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a tarball member by member; ``change(info, data)`` returns the members to write instead (a list of
    (TarInfo, bytes)), which may add, drop or alter members."""
    with tarfile.open(src) as tf_in, tarfile.open(dst, "w:gz") as tf_out:
        members = [(m, tf_in.extractfile(m).read()) for m in tf_in.getmembers()]
        for info, data in change(members):
            info.size = len(data)
            tf_out.addfile(info, io.BytesIO(data))
    return dst


def flip_a_byte(members):
    out = []
    for info, data in members:
        if info.name.endswith("model.pt") and not any(i.name.endswith("model.pt") for i, _ in out):
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        out.append((info, data))
    return out


def add_member(name, kind=tarfile.REGTYPE):
    def change(members):
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        return [*members, (info, b"" if kind != tarfile.REGTYPE else b"not a model\n")]
    return change


def drop_one(members):
    return [(i, d) for k, (i, d) in enumerate(members) if k != 1]


@pytest.mark.parametrize("change,message", [
    (flip_a_byte, "does not match its manifest"),
    (add_member("mnist-5k-tiny-cnn-standard-000000000000/extra.txt"), "not listed in its manifest"),
    (add_member("../escaped.txt"), "escapes the zoo"),
    (add_member("/tmp/rilib-escaped-absolute.txt"), "escapes the zoo"),
    (add_member("innocent.pt", tarfile.SYMTYPE), "not a regular file"),
    (drop_one, "missing"),
], ids=["changed-byte", "extra-file", "dotdot-path", "absolute-path", "symlink", "missing-file"])
def test_a_tampered_pack_is_refused_and_writes_nothing(packed, empty_cache, tmp_path, change, message, cli):
    bad = rewrite(packed, tmp_path / "bad.tar.gz", change)
    out = cli("zoo", "unpack", str(bad))
    assert out.returncode == 1 and message in out.stderr and "Nothing was written" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not zoo_files(empty_cache)
    assert not (empty_cache / "escaped.txt").exists() and not (empty_cache.parent / "escaped.txt").exists()
    assert not Path("/tmp/rilib-escaped-absolute.txt").exists()


def test_a_truncated_pack_is_refused(packed, empty_cache, tmp_path, cli):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    out = cli("zoo", "unpack", str(cut))
    assert out.returncode == 1 and "Refusing the zoo pack" in out.stderr and not zoo_files(empty_cache)


def test_pack_refuses_an_untrained_zoo(empty_cache, cli):
    out = cli("zoo", "pack", "--profile", "smoke", "--output", str(empty_cache / "x.tar.gz"))
    assert out.returncode == 1 and "not trained" in out.stderr and not (empty_cache / "x.tar.gz").exists()
    assert paths.zoo_dir().exists()
