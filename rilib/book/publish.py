"""Where the hosted book lives, and what a reader who launches a page gets.

- :func:`book_config`: ``_config.yml`` with the repository filled in. The repository's address in ``_config.yml``
  is a placeholder; one setting replaces it: ``RILIB_REPOSITORY=owner/name`` (the publish workflow sets it to
  the repository it runs in, so a fork publishes its own copy) or ``rilib book build --repository owner/name``.
  From it follow the launch links (Binder, Colab, and a JupyterHub through nbgitpuller when
  ``RILIB_JUPYTERHUB_URL`` names one) and ``html.baseurl`` (GitHub Pages).
- :func:`add_bootstrap`: the hidden first cell of every executed chapter, which lets the notebook run where rilib
  is not installed (Colab) and lets ``RILIB_PROFILE`` choose the profile (Binder defaults it to ``smoke``).
- :func:`publish_tree`: the tree the workflow pushes to the ``published`` branch, which the launch buttons open:
  the repository's files, the executed notebooks in ``book/``, and the resolved ``_config.yml``.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from ..errors import RilibError, UsageError
from ..paths import atomic_write_text

REPOSITORY_ENV = "RILIB_REPOSITORY"
JUPYTERHUB_ENV = "RILIB_JUPYTERHUB_URL"
BOOTSTRAP_TAG = "rilib-bootstrap"
ZOO_FOLDER = "zoo"  # the packed zoos' folder in the published site
_OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")


def book_config(root: Path, repository: Optional[str] = None, jupyterhub: Optional[str] = None) -> dict:
    """``root/_config.yml``, with ``repository.url`` and ``html.baseurl`` set from ``repository`` (``owner/name``
    on GitHub; default ``RILIB_REPOSITORY``, else the file's placeholder) and ``launch_buttons.jupyterhub_url`` from
    ``jupyterhub`` (default ``RILIB_JUPYTERHUB_URL``, else none)."""
    import yaml
    cfg = copy.deepcopy(yaml.safe_load((Path(root) / "_config.yml").read_text()))
    repo = repository or os.environ.get(REPOSITORY_ENV, "").strip()
    if repo:
        if not _OWNER_NAME.match(repo):
            raise UsageError(f"The repository must be owner/name on GitHub (e.g. octocat/rilib), not {repo!r}. "
                             f"Set {REPOSITORY_ENV} or --repository accordingly.")
        owner, name = repo.split("/")
        cfg.setdefault("repository", {})["url"] = f"https://github.com/{repo}"
        cfg.setdefault("html", {})["baseurl"] = f"https://{owner.lower()}.github.io/{name}/"
    hub = jupyterhub or os.environ.get(JUPYTERHUB_ENV, "").strip()
    if hub:
        cfg.setdefault("launch_buttons", {})["jupyterhub_url"] = hub
    return cfg


def zoo_url(cfg: dict, profile_expr: str) -> str:
    """A Python expression for the URL of a profile's packed zoo on the published site (``profile_expr`` is the
    expression of the profile's name)."""
    base = cfg.get("html", {}).get("baseurl", "").rstrip("/")
    return f'"{base}/{ZOO_FOLDER}/rilib-zoo-" + {profile_expr} + ".tar.gz"'


def bootstrap_source(cfg: dict) -> str:
    """The bootstrap cell's code, for the book configured by ``cfg`` (see :func:`book_config`)."""
    repo = cfg.get("repository", {})
    url, branch = repo.get("url", ""), repo.get("branch", "main")
    return "\n".join([
        "# Set-up where rilib is not installed (hidden in the book; in a rilib checkout or on the book's Binder it",
        "# only reads RILIB_PROFILE). On Colab, or any Python without rilib: install rilib from the published",
        "# branch, then unpack the trained zoo of this notebook's profile.",
        "import importlib.util, os, subprocess, sys",
        'profile = os.environ.get("RILIB_PROFILE", profile)',
        'if importlib.util.find_spec("rilib") is None:',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "rilib @ git+{url}@{branch}"], check=True)',
        f'    subprocess.run([sys.executable, "-m", "rilib", "zoo", "unpack", {zoo_url(cfg, "profile")}], check=True,',
        '                   env=dict(os.environ, RILIB_DOWNLOAD="1"))',
    ])


def add_bootstrap(path: Path, cfg: dict) -> bool:
    """Put the bootstrap cell (tagged ``remove-cell``, so the book hides it) right after a notebook's parameters,
    replacing an earlier one; return whether the file changed. The notebook is replaced atomically: a build killed
    here leaves the executed chapter as it was, never half-written."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    before = [c.source for c in nb.cells]
    cells = [c for c in nb.cells if BOOTSTRAP_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_code_cell(bootstrap_source(cfg), metadata={"tags": ["remove-cell", BOOTSTRAP_TAG]})
    cells.insert(cells.index(_after(cells)) + 1, cell)
    if [c.source for c in cells] == before:
        return False
    nb.cells = cells
    atomic_write_text(path, nbformat.writes(nb) + "\n")
    return True


def _after(cells):
    """The cell the bootstrap follows: papermill's injected parameters, else the parameters cell, else the first."""
    for tag in ("injected-parameters", "parameters"):
        for c in cells:
            if tag in c.get("metadata", {}).get("tags", []):
                return c
    return cells[0]


def tracked_files(root: Path) -> list[str]:
    """The project's files as git tracks them (``git ls-files``), or, outside a git checkout, every file that is
    not a build product, a cache, an environment or an executed notebook."""
    root = Path(root)
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
            return [f for f in out.stdout.decode().split("\0") if f]
        except (OSError, subprocess.CalledProcessError) as exc:
            raise RilibError(f"Could not list the files of {root} with git ({exc}).") from None
    skip = {".venv", "_build", ".rilib-cache", ".git", "__pycache__", ".pytest_cache", "node_modules"}
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not skip.intersection(rel.parts) and not (rel.parts[0] == "book"
                                                                         and path.suffix == ".ipynb"):
            files.append(rel.as_posix())
    return files


def publish_tree(root: Path, dest: Path, executed: Optional[Path] = None, cfg: Optional[dict] = None) -> list[str]:
    """Write the tree of the ``published`` branch into ``dest`` (emptied first): the tracked files of ``root``, the
    executed chapters of ``executed`` (default ``root/book``) as ``book/<name>.ipynb``, and ``_config.yml``
    resolved by :func:`book_config` (or ``cfg``). Returns the paths written, relative to ``dest``."""
    import yaml
    root, dest = Path(root), Path(dest)
    executed = Path(executed) if executed else root / "book"
    notebooks = sorted(p for p in executed.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise RilibError(f"No executed chapters in {executed}: run `rilib book run` (or `make book`) first.")
    cfg = cfg or book_config(root)
    if dest.exists():
        shutil.rmtree(dest)
    written = []
    for rel in tracked_files(root):
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
            written.append(rel)
    (dest / "book").mkdir(parents=True, exist_ok=True)
    for nb in notebooks:
        shutil.copy2(nb, dest / "book" / nb.name)
        add_bootstrap(dest / "book" / nb.name, cfg)
        written.append(f"book/{nb.name}")
    (dest / "_config.yml").write_text("# Resolved by rilib.book.publish for the published branch.\n"
                                      + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return sorted(set(written))
