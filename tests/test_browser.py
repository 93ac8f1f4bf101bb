"""The built smoke book in a real browser: headless Chromium (Debian's package, driven by playwright, which
downloads no browser) opens every page served on 127.0.0.1 and checks what a reader would see.

On every page: every image loads; no raw ``{glue:`` text is left; math renders (MathJax served from a local copy,
tests/node); solutions start collapsed; every same-origin link answers 200; the console shows no error. Chapter
pages show at least as many figures as their source glues. The search page finds "PGD". A screenshot of every
page goes to ``_build/screenshots/``.

Skips, saying why, where Chromium, playwright or the local MathJax is missing; ``.ci/run`` installs Chromium and
``make test`` the npm tools, so CI runs it.
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MATHJAX = ROOT / "tests" / "node" / "node_modules" / "mathjax" / "es5"
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/"
SCREENSHOTS = ROOT / "_build" / "screenshots"
# Chromium as the machine's notes advise: no sandbox (root), no GPU, and no background traffic to Google's hosts.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(smoke_book):
    """The smoke book's HTML served on 127.0.0.1; yields its base URL."""
    html = smoke_book[0] / "_build" / "html"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: `apt-get install -y chromium` (.ci/run does this)")
    if not MATHJAX.is_dir():
        pytest.skip("the local MathJax is missing: `make test-tools` installs it with npm (tests/node)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


class Reader:
    """One browser page with a record of what went wrong: console errors, page errors, failed requests and any
    request that left 127.0.0.1 (MathJax's CDN is answered from the local copy)."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} {r.failure}"))
        self.context.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base):
            return route.continue_()
        if url.startswith(MATHJAX_CDN):
            local = MATHJAX / url[len(MATHJAX_CDN):].split("?")[0]
            if local.is_file():
                return route.fulfill(path=str(local))
        self.errors.append(f"external request: {url}")
        return route.abort()

    def close(self):
        self.context.close()


def pages(site_root: Path) -> list[Path]:
    html = site_root / "_build" / "html"
    return [html / "index.html", *sorted((html / "book").glob("*.html"))]


def glued_figures(page: Path) -> int:
    source = ROOT / "notebooks" / f"{page.stem}.md"
    return len(re.findall(r"```\{glue:figure\}", source.read_text())) if source.exists() else 0


def test_every_page_reads_well_in_chromium(smoke_book, site, browser):
    root = smoke_book[0]
    html_root = root / "_build" / "html"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    links: set[str] = set()
    problems: list[str] = []
    shots = []
    for page_path in pages(root):
        rel = page_path.relative_to(html_root).as_posix()
        reader = Reader(browser, site)
        page = reader.page
        page.goto(urljoin(site, rel), wait_until="load")
        page.wait_for_load_state("networkidle")
        if page.locator(".math").count():  # MathJax typesets asynchronously
            page.wait_for_selector("mjx-container", timeout=30_000)
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.src, e.complete, e.naturalWidth])")
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        if broken:
            problems.append(f"{rel}: images that did not load: {broken}")
        if len(images) < glued_figures(page_path):
            problems.append(f"{rel}: {len(images)} images for {glued_figures(page_path)} glued figures")
        text = page.inner_text("body")
        if "{glue:" in text:
            problems.append(f"{rel}: raw glue text is shown")
        if page.locator(".math").count() != page.locator("mjx-container").count():
            problems.append(f"{rel}: {page.locator('.math').count()} math elements, "
                            f"{page.locator('mjx-container').count()} rendered")
        solutions = page.locator(".solution")
        for i in range(solutions.count()):
            body = solutions.nth(i).locator(":scope > :not(.admonition-title):not(button)")
            if any(body.nth(j).is_visible() for j in range(body.count())):
                problems.append(f"{rel}: solution {i + 1} starts open")
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            url = urldefrag(href).url
            if url.startswith(site):
                links.add(url)
        shot = SCREENSHOTS / f"{rel.replace('/', '_').removesuffix('.html')}.png"
        page.screenshot(path=str(shot), full_page=True)
        shots.append(shot.name)
        problems += [f"{rel}: {e}" for e in reader.errors]
        reader.close()
    reader = Reader(browser, site)
    for url in sorted(links):
        status = reader.context.request.get(url).status
        if status != 200:
            problems.append(f"link {urlparse(url).path} answers {status}")
    reader.close()
    assert not problems, "\n".join(problems)
    assert len(shots) == len(pages(root))
    print(f"\nscreenshots in {SCREENSHOTS.relative_to(ROOT)}: {', '.join(shots)}; {len(links)} links checked")


def test_the_search_page_finds_pgd(site, browser):
    reader = Reader(browser, site)
    reader.page.goto(urljoin(site, "search.html?q=PGD"), wait_until="load")
    reader.page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    hits = reader.page.locator("#search-results ul.search li").count()
    reader.page.screenshot(path=str(SCREENSHOTS / "search.png"), full_page=True)
    errors = reader.errors
    reader.close()
    assert hits >= 3 and not errors, errors
