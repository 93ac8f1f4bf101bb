"""End to end: every chapter executes under the smoke profile, the book builds, and the claims ledger runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_chapter_executes_under_smoke(smoke_book):
    root, timings = smoke_book
    from rilib import book
    for src in book.sources(root):
        nb = json.loads((root / "book" / f"{src.stem}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert params, f"{src.name} has no cell tagged 'parameters'"
        injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        assert injected and "profile = \"smoke\"" in "".join(injected[0]["source"])


@pytest.mark.slow
def test_smoke_book_builds_with_chapter_one_figures(smoke_book):
    root, _ = smoke_book
    html_dir = root / "_build" / "html"
    assert (html_dir / "index.html").exists()
    page = (html_dir / "book" / "01_standard_and_robust.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) >= 2, "chapter 1 must show the learning curves and the weak-vs-strong figure"
    for src in images:
        if not src.startswith("data:"):
            assert (html_dir / "book" / src).resolve().exists(), src
    assert "APGD-T (headline)" in page and "PGD-40" in page, "chapter 1 must show the accuracy table"
    assert "headline robust acc, over seeds" in page, "chapter 1 must show the seed table"
    assert "The recipe here and in the paper" in page
    assert "ch1.pgd-0.3-survives-strong-attack" in page, "chapter 1 must show its claims"
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"The standard model reaches\s+\d+\.\d%", text), "glued numbers must appear in the prose"


@pytest.mark.slow
def test_smoke_book_builds_the_filter_chapter(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "02_convolution_filters.html").read_text()
    assert len(re.findall(r"<img", page)) >= 5, "depth profile, conv1 kernels, damping and two PCA figures"
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"The ratio is\s+\d+\.\d\d", text), "glued numbers must appear in the prose"
    assert "ch2.robust-filters-less-sparse" in page


@pytest.mark.slow
def test_claims_cli_writes_the_ledger(smoke_book, tmp_path):
    out_json = tmp_path / "ledger.json"
    out = subprocess.run([sys.executable, "-m", "rilib", "claims", "--profile", "smoke", "--chapter", "1",
                          "--json", str(out_json)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    ledger = json.loads(out_json.read_text())
    assert ledger["schema"] == "rilib.ledger" and ledger["schema_version"] == 1 and ledger["profile"] == "smoke"
    assert {c["id"] for c in ledger["claims"]} == {"ch1.scarce-data-clean-accuracy", "ch1.fgsm-rs-matches-pgd",
                                                   "ch1.pgd-0.3-survives-strong-attack",
                                                   "ch1.fgsm-rs-catastrophic-overfitting"}
    for c in ledger["claims"]:
        assert c["profile"] == "smoke" and isinstance(c["passed"], bool) and c["measured"]
        assert c["paper"] in c["papers"] and c["test"] and (c["passed"] or c["reason"])
    assert "Claims ledger, profile smoke" in out.stdout


@pytest.mark.slow
def test_smoke_book_builds_the_saliency_chapter(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "03_saliency.html").read_text()
    assert len(re.findall(r"<img", page)) >= 8, "six method grids, alignment against ε, deletion/insertion"
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"The standard model’s alignment is\s+0\.\d{3}", text) or \
        re.search(r"The standard model's alignment is\s+0\.\d{3}", text), "glued numbers must appear in the prose"
    assert "randomisation rank corr." in page, "the metrics table"
    for claim_id in ("ch3.robust-alignment-exceeds-standard", "ch3.deletion-below-ink-order",
                     "ch3.robust-maps-more-concentrated"):
        assert claim_id in page
    assert "ex-ch3-noise" in page, "exercises"


@pytest.mark.slow
def test_smoke_book_builds_the_inversion_chapter(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "04_inversion.html").read_text()
    assert len(re.findall(r"<img", page)) >= 6, "the inversion and generation grids, loss curves, two generation grids, judges"
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"The standard judge recognises\s+\d+\.\d%", text), "glued numbers must appear in the prose"
    assert "inversion from noise: SSIM" in page, "the score table"
    for claim_id in ("ch4.robust-generations-recognised", "ch4.robust-inversions-closer"):
        assert claim_id in page
    assert "ex-ch4-judge" in page, "exercises"


@pytest.mark.slow
def test_smoke_book_builds_the_lipschitz_chapter(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "05_lipschitz.html").read_text()
    assert len(re.findall(r"<img", page)) >= 3, "gradients of every arm, the λ sweep, the ‖∇L‖₁ distribution"
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"The standard model keeps\s+\d+\.\d%", text), "glued numbers must appear in the prose"
    assert "stronger attack acc" in page and "margin loss" in page, "the table and the stronger attack"
    assert "margin ratio" in page and "kl lipschitz" in page, "the scale-free smoothness measures"
    assert re.search(r"divided by T = 20, the distilled model keeps\s+\d+\.\d%", text), "distillation at T"
    for claim_id in ("ch5.orientation-and-smoothness-raise-alignment", "ch5.label-smoothing-is-not-smoothness",
                     "ch5.gradient-penalty-is-robust"):
        assert claim_id in page
    assert "ex-ch5-distillation" in page, "exercises"


@pytest.mark.slow
def test_smoke_book_builds_the_perceptual_ball_chapter(smoke_book):
    root, _ = smoke_book
    page = (root / "_build" / "html" / "book" / "06_perceptual_ball.html").read_text()
    assert len(re.findall(r"<img", page)) >= 3, "the canvases, the maps with boxes, the sweeps"
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"the perceptual ball hits\s+\d+\.\d%", text), "glued numbers must appear in the prose"
    assert re.search(r"γ =\s+[\d.e+]+\s+\(it flips\s+\d+%\s*\)", text), "the chosen γ and the share it flips"
    for column in ("pointing game", "weak localisation", "energy in mask", "deletion", "insertion"):
        assert column in page
    for claim_id in ("ch6.ball-beats-adversarial-pointing", "ch6.ball-beats-adversarial-weak-localisation",
                     "ch6.ball-beats-gradient-pointing", "ch6.ball-beats-gradient-weak-localisation",
                     "ch6.more-layers-concentrate"):
        assert claim_id in page
    for label in ("ex-ch6-blur", "ex-ch6-layers", "ex-ch6-robust"):
        assert label in page, "exercises"


@pytest.mark.slow
@pytest.mark.parametrize("page,function", [("01_standard_and_robust", "projected_gradient"),
                                           ("02_convolution_filters", "variance_entropy"),
                                           ("03_saliency", "deletion_insertion"), ("04_inversion", "invert"),
                                           ("05_lipschitz", "local_lipschitz"),
                                           ("06_perceptual_ball", "objective")])
def test_every_chapter_shows_the_library_code_that_ran(smoke_book, page, function):
    html = (smoke_book[0] / "_build" / "html" / "book" / f"{page}.html").read_text()
    assert f'<span class="k">def</span><span class="w"> </span><span class="nf">{function}</span>' in html


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for src in sorted((ROOT / "notebooks").glob("*.md")):
        assert f"book/{src.stem}" in toc, f"{src.name} is not in _toc.yml"


def test_every_figure_has_alt_text():
    """A screen reader reads a figure's alt text; without one it reads the image's hashed file name."""
    missing = []
    for src in sorted((ROOT / "notebooks").glob("*.md")):
        for m in re.finditer(r"```\{glue:figure\} (\S+)\n((?::[^\n]*\n)*)", src.read_text()):
            if not re.search(r"^:alt: \S", m.group(2), re.M):
                missing.append(f"{src.name}: {m.group(1)}")
    assert not missing, f"figures without :alt: text: {missing}"


@pytest.mark.slow
def test_synthesis_page_lists_every_claim_exactly_once_and_the_book_ships_the_ledger(smoke_book):
    from rilib.book import ledger
    from rilib.book.papers import PAPERS
    root, _ = smoke_book
    html_dir = root / "_build" / "html"
    page = (html_dir / "book" / "99_synthesis.html").read_text()
    ids = [c.id for c in ledger.list_claims()]
    assert len(ids) >= 15
    for claim_id in ids:
        assert len(re.findall(rf'#claims">{re.escape(claim_id)}</a>', page)) == 1, claim_id
    for key in {c.paper for c in ledger.list_claims()}:
        assert PAPERS[key].short in page
    assert len(re.findall(r"<img", page)) >= 1, "the ε dashboard"
    shipped = ledger.read_json(html_dir / "ledger.json")
    assert shipped["profile"] == "smoke" and shipped["total"] == len(ids)
    assert [c["id"] for c in shipped["claims"]] == ids
    assert 'href="../ledger.json"' in page


@pytest.mark.slow
def test_the_dashboard_has_one_panel_per_lens_with_intervals(smoke_book):
    from rilib.book import dashboard
    from rilib.chapters import synthesis
    values = synthesis.dashboard_values("smoke")
    assert list(values) == [name for name, _ in dashboard.PANELS.items()]
    fig = synthesis.dashboard_figure("smoke", values)
    assert sum(ax.get_visible() and bool(ax.get_title()) for ax in fig.axes) == len(dashboard.PANELS)
    xs = synthesis.train_eps("smoke")
    for name, series in values.items():
        assert series, name
        assert any(len(by_model) >= 2 for by_model in series.values()), name  # a panel compares models
        for label, by_model in series.items():
            assert any(xs.get(m) == 0.0 for m in by_model), (name, label)  # every curve has its standard model
            if "mnist-standard" in by_model:
                assert len(by_model) >= 3, (name, label)
            with_interval = [iv for iv in by_model.values() if iv.low == iv.low]  # not NaN
            assert with_interval, f"panel {name}, curve {label}: no point has an interval"


def test_the_dashboard_draws_l2_models_on_their_own_axis_only_where_measured():
    """An L2 model goes on a second (top) x-axis of the panels that measured it, never on the L∞ axis."""
    import rilib.chapters  # noqa: F401  (registers the panels)
    from rilib.book import dashboard
    from rilib.lenses.stats import Interval
    a, b = list(dashboard.PANELS)[:2]
    iv = lambda m: Interval(m, m - 0.1, m + 0.1, 10)  # noqa: E731
    values = {a: {"s": {"std": iv(1.0), "linf": iv(2.0), "l2": iv(3.0)}}, b: {"s": {"std": iv(1.0), "linf": iv(2.0)}}}
    fig = dashboard.figure(values, {"std": 0.0, "linf": 0.3}, l2_eps={"l2": 2.0})
    titled = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(titled) == 2
    tops = [ax for ax in fig.axes if ax not in titled and ax.get_visible() and ax.lines]
    assert len(tops) == 1, "one top axis, for the one panel that measured the L2 model"
    assert list(tops[0].lines[0].get_xdata()) == [2.0] and list(tops[0].lines[0].get_ydata()) == [3.0]
    assert all(list(line.get_xdata()) == [0.0, 0.3] for ax in titled for line in ax.lines)


def test_glue_values_turns_numpy_and_torch_scalars_into_python_numbers(monkeypatch):
    import numpy as np
    import torch

    from rilib.book import display
    glued = {}
    monkeypatch.setattr(display, "_glue", lambda key, value, display=False: glued.__setitem__(key, value))
    display.glue_values(a=np.float64(0.5), b=torch.tensor(3), c="text", d=np.arange(3))
    assert type(glued["a"]) is float and type(glued["b"]) is int and glued["c"] == "text"
    assert isinstance(glued["d"], np.ndarray), "arrays are left alone"
