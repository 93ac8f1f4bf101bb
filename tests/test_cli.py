"""The command line: help, and clear messages (no traceback) for unknown names. Most cases run ``main`` in this
process (the ``cli`` fixture); the first two spawn ``python -m rilib`` to check the real entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rilib
from rilib import RilibError


def rilib_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rilib", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_entry_point_answers_help_and_errors():
    out = rilib_cli("--help")
    assert out.returncode == 0 and "usage: rilib" in out.stdout
    out = rilib_cli("zoo", "list", "--profile", "laptop")
    assert out.returncode == 2 and out.stderr.startswith("rilib: error:") and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [[], ["zoo"], ["zoo", "list"], ["zoo", "train"], ["book"], ["book", "run"],
                                  ["book", "build"], ["claims"]])
def test_help(args, cli):
    out = cli(*args, "--help")
    assert out.returncode == 0 and "usage: rilib" in out.stdout


@pytest.mark.parametrize("args,expected", [
    (["zoo", "list", "--profile", "laptop"], "Valid profile names: smoke, cpu, full, paper"),
    (["claims", "--profile", "gpu"], "Valid profile names: smoke, cpu, full, paper"),
    (["zoo", "train", "mnist-pgd-0.4", "--profile", "smoke"], "Valid names: mnist-standard, mnist-pgd-0.1"),
    (["book", "run", "chapter-9", "--profile", "smoke"], "Valid: 01_standard_and_robust"),
    (["claims", "--profile", "smoke", "--chapter", "9"], "Chapters with claims: 1, 2, 3, 4, 5"),
    (["filters", "stats", "x.pt", "--arch", "small-cnn", "--in-shape", "28,28"], "--in-shape must be C,H,W"),
])
def test_unknown_names_give_one_clear_message(args, expected, cli):
    out = cli(*args)
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("rilib: error:")


def test_zoo_list_shows_the_chapter_zoo(cli):
    out = cli("zoo", "list", "--profile", "smoke")
    assert out.returncode == 0
    for name in ("mnist-standard", "mnist-pgd-0.1", "mnist-pgd-0.2", "mnist-pgd-0.3", "mnist-trades",
                 "mnist-fgsm-rs"):
        assert name in out.stdout
    assert "AdamW lr 0.001 constant, wd 0.01, seed 0" in out.stdout, "zoo list shows optimiser and seed"


def test_seeded_arms_differ_in_seed_between_and_within_arms():
    from rilib.chapters import catalog
    assert catalog.seed_names("smoke", "mnist-pgd-0.3") == ["mnist-pgd-0.3"]   # smoke: one seed
    specs = catalog.all_specs("cpu")
    names = [n for arm in catalog.SEEDED for n in catalog.seed_names("cpu", arm)]
    assert len(names) == 3 * len(catalog.SEEDED)
    seeds = [specs[n].seed for n in names if specs[n].seed != 0]
    assert len(seeds) == len(set(seeds)) == 2 * len(catalog.SEEDED), "replicate seeds differ between and within arms"
    for arm in catalog.SEEDED:   # a replicate is its arm's recipe with only the seed changed (and no training
        first, *rest = (specs[n] for n in catalog.seed_names("cpu", arm))   # monitor, which changes no weight)
        assert all(r.monitor_eps is None for r in rest)
        assert all(r.to_dict() | {"seed": 0, "monitor_eps": None} == first.to_dict() | {"monitor_eps": None}
                   for r in rest)
    with pytest.raises(RilibError, match="Valid: headline, strong, weak"):
        catalog.evaluation("cpu", "mnist-pgd-0.3", attack="autoattack")


@pytest.mark.parametrize("call,expected", [
    (lambda: rilib.create_model("resnet-7", (1, 28, 28), 10, (0.5,), (0.5,)), "Valid architecture names: "),
    (lambda: rilib.get_profile("fast"), "Valid profile names: smoke, cpu, full, paper"),
    (lambda: rilib.train.fit(None, None, objective="adversarial", params={}, epochs=1),
     "Valid objective names: standard, pgd, trades, fgsm_rs"),
    (lambda: rilib.load_dataset("svhn"), "Valid dataset names: "),
])
def test_unknown_names_in_the_api_list_valid_ones(call, expected):
    with pytest.raises(RilibError, match=expected):
        call()


def test_version(cli):
    import rilib
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"rilib {rilib.__version__}"


def test_runtime_failures_exit_1_and_usage_errors_2(cli, tmp_path):
    missing = cli("zoo", "unpack", str(tmp_path / "nope.tar.gz"))
    assert missing.returncode == 1 and "No zoo pack at" in missing.stderr
    unknown = cli("zoo", "pack", "--profile", "laptop")
    assert unknown.returncode == 2 and "Valid profile names" in unknown.stderr
    bad_repo = cli("book", "build", "--repository", "not a repo")
    assert bad_repo.returncode == 2 and "owner/name" in bad_repo.stderr


@pytest.mark.parametrize("passed,code", [(True, 0), (False, 1)])
def test_claims_strict_exits_1_when_a_claim_fails(passed, code, cli, monkeypatch):
    from rilib.book import ledger
    result = ledger.ClaimResult(id="ch1.x", chapter="1", statement="s", citation="c", profile="smoke",
                                measured={"x": 1.0}, comparison="x > 0", passed=passed)
    monkeypatch.setattr(ledger, "run", lambda profile, chapter=None: [result])
    monkeypatch.setattr(ledger, "format_ledger", lambda results: "ledger")
    assert cli("claims", "--profile", "smoke").returncode == 0
    assert cli("claims", "--profile", "smoke", "--strict").returncode == code


@pytest.mark.parametrize("args,says,not_says", [
    (("zoo", "list"), "rilib: interrupted.", "checkpoint"),
    (("zoo", "train", "--profile", "smoke"), "resumes from its last epoch checkpoint", "failed.ipynb"),
    (("book", "run", "--profile", "smoke"), "book/.<chapter>.failed.ipynb", "nothing"),
], ids=["zoo-list", "zoo-train", "book-run"])
def test_an_interrupt_says_what_the_command_keeps(args, says, not_says, cli, monkeypatch):
    """Ctrl-C exits 130 with a last line about the command's own partial work: checkpoints only for commands that
    train, the kept notebooks for `book run`, nothing more for a command that has no partial work."""
    from rilib import cli as cli_module
    from rilib.book import runner

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    for module, name in ((cli_module, "_zoo_list"), (cli_module, "_zoo_train"), (runner, "run")):
        monkeypatch.setattr(module, name, interrupted)
    out = cli(*args)
    assert out.returncode == 130 and says in out.stderr and not_says not in out.stderr, out.stderr
