"""The claims ledger as data: its JSON schema, reading it back, comparing two ledgers, and the synthesis page's
view of it (every claim once, filed under a known paper). Nothing here trains a model: the results are made up."""

from __future__ import annotations

import copy
import json
import re

import pytest

import rilib.chapters  # noqa: F401  (registers the book's claims and dashboard panels)
from rilib import RilibError
from rilib.book import dashboard, ledger
from rilib.book.papers import PAPERS
from rilib.lenses.stats import Interval


def made_up_results() -> list[ledger.ClaimResult]:
    """One result per registered claim, as :func:`ledger.run` would return them, without measuring anything:
    every third claim fails, and the first has intervals."""
    out = []
    for i, c in enumerate(ledger.list_claims()):
        out.append(ledger.ClaimResult(
            c.id, c.chapter, c.statement, c.citation, "smoke", {"model-a": 0.5 + i / 100, "model-b": "text"},
            "held to something", i % 3 != 0, "" if i % 3 else "not reproduced for: model-a", 0.01, c.paper,
            c.papers, {"a": {"mean": 0.1, "low": 0.05, "high": 0.15}} if i == 0 else None,
            "one training seed per model" if i % 2 else ""))
    return out


def test_every_claim_is_filed_under_a_known_paper():
    claims = ledger.list_claims()
    assert len(claims) >= 15
    for c in claims:
        assert c.papers and all(k in PAPERS for k in c.papers) and c.paper == c.papers[0]
        assert c.citation.startswith(PAPERS[c.paper].short)
    with pytest.raises(RilibError, match="helland2021"):
        ledger.claim("test.unknown-paper", chapter="9", statement="-", papers="nobody2099")


def test_json_round_trip(tmp_path):
    results = made_up_results()
    path = tmp_path / "ledger.json"
    ledger.write_json(results, path)
    data = ledger.read_json(path)
    assert data["schema"] == "rilib.ledger" and data["schema_version"] == 1
    assert data["profile"] == "smoke" and data["total"] == len(results)
    assert data["passed"] == sum(r.passed for r in results)
    assert set(data["versions"]) >= {"python", "torch", "rilib"} and "created" in data and "commit" in data
    for r, c in zip(results, data["claims"]):
        assert (c["id"], c["paper"], c["papers"], c["statement"], c["test"], c["passed"], c["measured"]) == \
            (r.id, r.paper, list(r.papers), r.statement, r.comparison, r.passed, r.measured)
        assert c["reason"] == r.reason and bool(c["reason"]) == (not r.passed)
    assert data["claims"][0]["interval"] == {"a": {"mean": 0.1, "low": 0.05, "high": 0.15}}
    failed = [c for c in data["claims"] if not c["passed"]]
    assert any(c["reason"].startswith("finding") for c in failed)
    assert any("differs from the paper" in c["reason"] for c in failed)
    assert ledger.from_json(data) == results


def test_a_stored_ledger_sits_beside_this_run_claim_by_claim(tmp_path, monkeypatch):
    from rilib.book import display
    glued = {}
    monkeypatch.setattr(display, "_glue", lambda key, value, display=False: glued.__setitem__(key, value))
    here = [r for r in made_up_results() if r.chapter == "1"]
    stored = copy.deepcopy(here[:-1])  # measured before the chapter's last claim existed
    for r in stored:
        r.profile, r.passed, r.note = "full", not r.passed, "" if not r.passed else "stored failure"
    path = tmp_path / "full-chapter1.json"
    ledger.write_json(stored, path)
    table = display.stored_claims_section("smoke", "1", path, results=here).data
    assert list(table["claim"]) == [r.id for r in here]
    assert list(table["smoke"]) == ["pass" if r.passed else "FAIL" for r in here]
    assert list(table["full"]) == ["pass" if r.passed else "FAIL" for r in stored] + ["–"]
    assert table["full: measured"].iloc[-1] == "not in the stored ledger"
    assert [w for w in table["full: why it failed"] if w] == ["stored failure"] * sum(not r.passed for r in stored)
    assert glued["stored_profile"] == "full" and glued["stored_total"] == len(stored)
    assert glued["stored_passed"] == sum(r.passed for r in stored)
    with pytest.raises(RilibError, match="No ledger at"):
        display.stored_claims_section("smoke", "1", "no-such-ledger", results=here)


def test_the_shipped_ledgers_cover_every_claim_of_their_chapter():
    """A ledger measured once and shipped with the book (rilib/book/measured) must be measured again when its
    chapter gains a claim: otherwise the page shows a stale ledger."""
    from rilib.book import display
    shipped = sorted(display.MEASURED.glob("*.json"))
    assert shipped, "no shipped ledger found"
    for path in shipped:
        data = ledger.read_json(path)
        chapters = {c["chapter"] for c in data["claims"]}
        registered = {c.id for c in ledger.list_claims() if c.chapter in chapters}
        missing = registered - {c["id"] for c in data["claims"]}
        assert not missing, f"{path.name} lacks {sorted(missing)}: measure it again with `rilib claims --json`"


def test_compare_names_exactly_what_moved():
    a = ledger.to_json(made_up_results())
    assert ledger.compare(a, copy.deepcopy(a)) == []
    b = copy.deepcopy(a)
    flipped = b["claims"][1]
    flipped["passed"] = not flipped["passed"]
    moved = b["claims"][2]
    moved["measured"] = {**moved["measured"], "model-a": 0.99}
    del b["claims"][3]
    lines = ledger.compare(a, b)
    assert len(lines) == 3
    assert lines[0] == f"only in the first: {a['claims'][3]['id']}"
    assert any(line.startswith(f"{flipped['id']}: ") and "->" in line for line in lines)
    assert any(line.startswith(f"{moved['id']}: still") and "0.990" in line for line in lines)


def test_compare_says_when_the_zoos_were_trained_on_different_hardware():
    a = ledger.to_json(made_up_results())
    assert set(a["hardware"]) == {"measured on", "zoo trained on"}
    cpu = {"device": "cpu", "cpu_capability": "AVX2", "threads": 1}
    a["hardware"]["zoo trained on"] = [{"hardware": cpu, "models": 52}]
    b = copy.deepcopy(a)
    assert ledger.hardware_note(a, b) is None
    b["hardware"]["measured on"]["threads"] = 99  # where the claims were measured does not decide the weights
    assert ledger.hardware_note(a, b) is None
    b["hardware"]["zoo trained on"] = [{"hardware": {**cpu, "cpu_capability": "AVX512"}, "models": 50},
                                       {"hardware": None, "models": 2}]
    note = ledger.hardware_note(a, b)
    assert "52 model(s) on cpu AVX2, 1 thread(s)" in note and "50 model(s) on cpu AVX512, 1 thread(s)" in note
    assert "2 model(s) on unrecorded hardware" in note
    del b["hardware"]  # a ledger written before it recorded its hardware
    assert ledger.hardware_note(a, b) is None and ledger.compare(a, b) == []


def test_reading_a_ledger_that_is_not_one_says_what_to_do(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RilibError, match="not a readable JSON ledger"):
        ledger.read_json(bad)
    bad.write_text(json.dumps({"schema": "something.else"}))
    with pytest.raises(RilibError, match="not a rilib ledger"):
        ledger.read_json(bad)
    bad.write_text(json.dumps({"schema": "rilib.ledger", "schema_version": 99, "claims": []}))
    with pytest.raises(RilibError, match="version 99"):
        ledger.read_json(bad)
    with pytest.raises(RilibError, match="No ledger at"):
        ledger.read_json(tmp_path / "missing.json")
    legacy = tmp_path / "legacy.json"  # the first format: a plain list of claims
    legacy.write_text(json.dumps([{"id": "ch1.x", "passed": True, "measured": 1.0, "comparison": "c",
                                   "profile": "cpu"}]))
    assert ledger.read_json(legacy)["schema_version"] == 0


def test_cli_compare(cli, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    results = made_up_results()
    ledger.write_json(results, a)
    ledger.write_json(results, b)
    same = cli("claims", "--compare", str(a), str(b))
    assert same.returncode == 0 and "no claims moved" in same.stdout
    data = json.loads(b.read_text())
    data["claims"][0]["passed"] = not data["claims"][0]["passed"]
    b.write_text(json.dumps(data))
    moved = cli("claims", "--compare", str(a), str(b))
    assert moved.returncode == 1 and "1 claim moved" in moved.stdout and data["claims"][0]["id"] in moved.stdout
    missing = cli("claims", "--compare", str(a), str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "No ledger at" in missing.stderr


def test_synthesis_lists_every_claim_once_under_its_paper():
    from rilib.chapters import synthesis
    results = made_up_results()
    html = synthesis.by_paper(results).data
    for r in results:
        assert len(re.findall(rf'#claims">{re.escape(r.id)}</a>', html)) == 1, r.id
    counts = synthesis.counts(results)
    assert counts["claims"].sum() == len(results) and counts["passed"].sum() == sum(r.passed for r in results)
    focus_first = [PAPERS[k].focus for k in synthesis.papers_in_order(results)]
    assert focus_first == sorted(focus_first, reverse=True)


def test_dashboard_draws_one_panel_per_registered_lens():
    from rilib.chapters import synthesis
    names = [name for name, _ in dashboard.PANELS.items()]
    assert {"accuracy", "filters", "saliency-alignment", "gini", "deletion", "inversion", "generation",
            "smoothness", "localisation"} <= set(names)
    eps = synthesis.train_eps("smoke")
    values = {n: {"a curve": {m: Interval(0.5 + e, 0.4 + e, 0.6 + e, 10) for m, e in eps.items()}} for n in names}
    fig = dashboard.figure(values, eps)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(names)
    assert all(ax.get_xlabel().startswith("training ε") and ax.get_ylabel() for ax in visible)
    trends = synthesis.trends("smoke", values)
    assert set(trends["with ε"]) == {"rises"}
    assert list(trends["measure"]) == [dashboard.PANELS[n].ylabel for n in names], "each curve says what it measures"
    assert "rise: " in synthesis.trend_sentence(trends)
    # a panel of other models (chapter 6's canvas models) is judged from its own standard model to its own most
    # robust one, and a curve with one model only is not judged at all
    from rilib.chapters import perceptual_ball as ch6
    own = {"localisation": {"gradient": {ch6.STANDARD: Interval(0.2, 0.1, 0.3, 10),
                                         ch6.ROBUST: Interval(0.8, 0.7, 0.9, 10)},
                            "ball": {ch6.STANDARD: Interval(0.5, 0.4, 0.6, 10)}}}
    row = synthesis.trends("smoke", own)
    assert list(row["curve"]) == ["gradient"] and list(row["most robust model"]) == [ch6.ROBUST]
    assert list(row["with ε"]) == ["rises"]


def test_wilson_interval_of_an_accuracy():
    from rilib.lenses.stats import proportion_ci
    iv = proportion_ci(0.5, 100)
    assert (round(iv.low, 4), round(iv.high, 4)) == (0.4038, 0.5962)
    edge = proportion_ci(0.0, 1000)  # all wrong: the interval still has width, and stays inside [0, 1]
    assert edge.low == pytest.approx(0.0, abs=1e-12) and 0.001 < edge.high < 0.01


def test_seed_verdict_names_findings_and_limits_of_scale():
    from rilib.book.ledger import seed_verdict
    from rilib.lenses.stats import seed_ci
    holds = [0.02, 0.03, 0.025]
    assert seed_verdict("a", holds, seed_ci(holds)) == ""
    wide = [0.01, 0.05, 0.001]                      # all positive, interval crosses 0
    assert "limit of scale" in seed_verdict("a", wide, seed_ci(wide))
    mixed = [0.01, -0.02, 0.005]
    assert "limit of scale), the seeds disagree: 2 of 3" in seed_verdict("a", mixed, seed_ci(mixed))
    against = [-0.01, -0.05, -0.001]                # no seed points the claimed way, interval crosses 0
    assert "finding at 3 seeds, none points the claimed way" in seed_verdict("a", against, seed_ci(against))
    opposite = [-0.02, -0.03, -0.025]
    assert "finding" in seed_verdict("a", opposite, seed_ci(opposite))
    assert "no difference" in seed_verdict("a", [0.0] * 3, seed_ci([0.0] * 3))
    # Below a bound: PGD's lead over FGSM-RS must stay under 5 points.
    assert seed_verdict("a", [0.01, 0.02, 0.015], seed_ci([0.01, 0.02, 0.015]), above=False, bound=0.05) == ""
    assert "finding" in seed_verdict("a", [0.7, 0.75, 0.8], seed_ci([0.7, 0.75, 0.8]), above=False, bound=0.05)
    # kinds=False: the same clause without the kind, for a caller that has named it already; nothing else differs.
    for diffs in (wide, mixed, against, opposite):
        named, bare = seed_verdict("a", diffs, seed_ci(diffs)), seed_verdict("a", diffs, seed_ci(diffs), kinds=False)
        assert "finding" not in bare and "limit of scale" not in bare
        assert bare == named.replace("finding, ", "").replace("finding ", "").replace(" (limit of scale)", "")


def test_paired_verdict_classifies_a_failure_over_items_of_one_model():
    from rilib.book.ledger import paired_verdict
    from rilib.lenses.stats import Interval
    assert paired_verdict("m", Interval(0.2, 0.1, 0.3, 500), "images") == ""
    assert paired_verdict("m", Interval(-0.2, -0.3, -0.1, 500), "images", above=False) == ""
    worse = paired_verdict("m/gradient", Interval(0.05, 0.03, 0.07, 500), "images", above=False)
    assert worse == "m/gradient: finding, the interval over images +0.050 [+0.030, +0.070] lies wholly above 0"
    none = paired_verdict("", Interval(0.01, -0.02, 0.04, 300), "canvases")
    assert none == "finding, no difference that 300 canvases resolve: the interval +0.010 [-0.020, +0.040] contains 0"
    assert "lies wholly below 0.5" in paired_verdict("m", Interval(0.2, 0.1, 0.3, 9), "seeds", bound=0.5)


def test_a_claim_whose_interval_left_out_non_finite_values_says_so(monkeypatch):
    """ledger.run keeps an interval's count of left-out non-finite values in the ledger, and its text says so."""
    from rilib.lenses.stats import seed_ci

    def measure(profile):
        iv = seed_ci([0.1, 0.2, float("nan"), 0.3])
        return ledger.Measurement({"a": iv.format()}, "above 0", iv.above(0), intervals={"a": iv})

    monkeypatch.setitem(ledger.CLAIMS._items, "test.nonfinite",
                        ledger.Claim("test.nonfinite", "test", "-", ("madry2018",), measure))
    (result,) = ledger.run("smoke", chapter="test")
    assert result.interval["a"]["nonfinite"] == 1 and "1 non-finite left out" in result.measured["a"]
    assert "1 non-finite left out" in ledger.format_intervals(result)
    assert ledger.from_json(json.loads(json.dumps(ledger.to_json([result]))))[0].interval == result.interval
