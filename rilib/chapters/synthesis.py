"""The synthesis page: the claims ledger by paper, and every lens of the book against training ε.

It trains nothing new: it reads the ledger (:func:`rilib.book.ledger.run`) and the chapters' cached results
through the dashboard panels they register (:mod:`rilib.book.dashboard`). On a fresh cache it computes what the
other chapters would have computed.
"""

from __future__ import annotations

import math

from ..book import dashboard, ledger
from ..book.papers import PAPERS
from ..profiles import Profile, get_profile
from . import perceptual_ball
from .catalog import L2_MODELS, PGD_EPS, STANDARD, all_specs, catalog_zoo

#: Where each chapter's claims are on the built site (the pages sit side by side in ``book/``).
CHAPTER_PAGES = {"1": "01_standard_and_robust", "2": "02_convolution_filters", "3": "03_saliency",
                 "4": "04_inversion", "5": "05_lipschitz",
                 "6": "06_perceptual_ball"}


def results(profile: str | Profile) -> list[ledger.ClaimResult]:
    """Every registered claim, measured under ``profile`` (from the chapters' caches)."""
    return ledger.run(get_profile(profile))


def totals(profile: str | Profile, claims: list[ledger.ClaimResult]) -> dict:
    """``n_claims``, ``n_passed`` and ``profile_name``, for the page's sentence about the ledger."""
    return {"n_claims": len(claims), "n_passed": sum(r.passed for r in claims),
            "profile_name": get_profile(profile).name}


def papers_in_order(claims: list[ledger.ClaimResult]) -> list[str]:
    """The papers the claims are filed under: the book's four papers first, then the background, each in the
    registry's order."""
    filed = {r.paper for r in claims}
    keys = [k for k, _ in PAPERS.items() if k in filed]
    return sorted(keys, key=lambda k: not PAPERS[k].focus)


def counts(claims: list[ledger.ClaimResult]):
    """One row per paper: focus or background, claims tested, passed, failed."""
    import pandas as pd
    rows = []
    for key in papers_in_order(claims):
        mine = [r for r in claims if r.paper == key]
        rows.append({"paper": PAPERS[key].short, "role": "reproduced" if PAPERS[key].focus else "background",
                     "claims": len(mine), "passed": sum(r.passed for r in mine),
                     "failed": sum(not r.passed for r in mine)})
    return pd.DataFrame(rows).set_index("paper")


def by_paper(claims: list[ledger.ClaimResult]):
    """For each paper (in :func:`papers_in_order`), its claims as a table: the claim (linked to the section of
    the chapter that measures it), the statement, what was measured (with 95 % intervals where the claim has
    them), the result, and the reason for a failure. One HTML block for the page, a captioned table per paper."""
    import pandas as pd
    from IPython.display import HTML
    parts = []
    for key in papers_in_order(claims):
        rows = []
        for r in (r for r in claims if r.paper == key):
            page = CHAPTER_PAGES.get(r.chapter)
            link = f'<a href="{page}.html#claims">{r.id}</a>' if page else r.id
            rows.append({"claim": link, "statement": r.statement, "measured": ledger.format_intervals(r),
                         "result": "pass" if r.passed else "FAIL", "reason": r.reason})
        paper = PAPERS[key]
        caption = f'<b>{paper.short}</b>, {paper.title} ({paper.venue}), <a href="{paper.url}">{paper.url}</a>'
        parts.append(pd.DataFrame(rows).style.hide(axis="index").set_caption(caption).to_html())
    return HTML("\n".join(parts))


def differences(claims: list[ledger.ClaimResult]):
    """Each distinct way the tests differ from the papers' under this profile, with the claims it applies to."""
    import pandas as pd
    found: dict[str, list[str]] = {}
    for r in claims:
        for part in (p.strip() for p in r.differs.split(";") if p.strip()):
            found.setdefault(part, []).append(r.id)
    return pd.DataFrame([{"difference from the papers' protocol": d, "claims": len(ids)}
                         for d, ids in found.items()]).style.hide(axis="index")


def train_eps(profile: str | Profile) -> dict[str, float]:
    """The models on the dashboard's x-axis: the standard model at ε = 0 and the PGD-AT models at their ε; and
    chapter 6's two canvas models (standard at 0, PGD-AT at its ε), which only its localisation panel measures."""
    zoo = catalog_zoo(get_profile(profile))
    return {STANDARD: 0.0, **{f"mnist-pgd-{e:g}": e for e in PGD_EPS if f"mnist-pgd-{e:g}" in zoo},
            perceptual_ball.STANDARD: 0.0, perceptual_ball.ROBUST: perceptual_ball.EPS}


def l2_eps(profile: str | Profile) -> dict[str, float]:
    """The L2 PGD-AT models, on the dashboard's second axis, at their L2 training ε."""
    zoo = all_specs(get_profile(profile))
    return {n: zoo[n].param_dict["eps"] for n in L2_MODELS if n in zoo}


def dashboard_values(profile: str | Profile) -> dict:
    """Every dashboard panel's values (see :func:`rilib.book.dashboard.collect`)."""
    return dashboard.collect(profile)


def dashboard_figure(profile: str | Profile, values: dict):
    """The ε dashboard: one panel per lens the chapters register."""
    return dashboard.figure(values, train_eps(profile), l2_eps=l2_eps(profile),
                            title="Every lens against training ε: standard model at 0, PGD-AT models at their ε "
                                  "(mean and 95 % interval); L2 PGD-AT models on the top axis")


def trends(profile: str | Profile, values: dict):
    """For every curve of the dashboard: what it measures (its panel's axis label, with units), its value for the
    standard model and for the most robust PGD-AT model it measures, and whether it rises, falls, or does neither
    beyond the 95 % intervals (``flat``; ``no interval`` for one-seed numbers whose change cannot be judged)."""
    import pandas as pd
    xs = train_eps(profile)
    rows = []
    for name, series in values.items():
        for label, by_model in series.items():
            measured = [m for m in sorted(xs, key=xs.get) if m in by_model]  # a panel's own standard model first
            if len(measured) < 2 or xs[measured[0]] != 0:
                continue
            a, b = by_model[measured[0]], by_model[measured[-1]]
            if any(math.isnan(v) for v in (a.low, a.high, b.low, b.high)):
                move = "no interval"
            elif b.low > a.high:
                move = "rises"
            elif b.high < a.low:
                move = "falls"
            else:
                move = "flat"
            panel = dashboard.PANELS[name]
            rows.append({"lens": panel.title, "curve": label, "measure": panel.ylabel, "standard": a.mean,
                         "most robust": b.mean, "most robust model": measured[-1], "with ε": move})
    return pd.DataFrame(rows)


def display_trends(table):
    """:func:`trends` for the page: one row per curve, numbers to three significant digits."""
    return table.set_index(["lens", "curve"]).style.format(precision=3).format(
        "{:.3g}", subset=["standard", "most robust"])


def _in_sentence(title: str) -> str:
    """A panel's title inside a sentence: its first letter in lower case (the names inside it, such as Etmann or
    Fréchet, keep their capitals), unless it starts with an acronym (SSIM)."""
    return title if title[:2].isupper() else title[:1].lower() + title[1:]


def trend_sentence(table) -> str:
    """One sentence from :func:`trends`: which curves rise with ε, which fall, which do neither."""
    def names(move):
        rows = table[table["with ε"] == move]
        return ", ".join(f"{_in_sentence(r.lens)} ({r.curve})" for r in rows.itertuples()) or "none"
    return (f"Beyond their 95 % intervals, from the standard model to the most robust PGD-AT model these rise: "
            f"{names('rises')}. These fall: {names('falls')}. These do neither: {names('flat')}. "
            f"Without an interval (one trained model per ε): {names('no interval')}.")
