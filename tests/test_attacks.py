"""The projected-gradient optimizer and the attacks built on it."""

from __future__ import annotations

import pytest
import torch

import rilib
from rilib.attacks import FGSM, PGD, projected_gradient
from rilib.evaluate import accuracy, robust_accuracy

ATTACKS = {
    "pgd-linf": PGD(eps=0.1, steps=10),
    "pgd-linf-restarts": PGD(eps=0.1, steps=10, restarts=3),
    "pgd-linf-no-random-start": PGD(eps=0.1, steps=10, random_start=False),
    "pgd-l2": PGD(eps=1.5, steps=10, norm="l2"),
    "fgsm": FGSM(eps=0.1),
    "fgsm-rs": FGSM(eps=0.1, random_start=True, step_size=0.125),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_lowers_accuracy_and_stays_in_ball(name, tiny_standard, mnist_small):
    attack = ATTACKS[name]
    x, y = mnist_small.x_test, mnist_small.y_test
    torch.manual_seed(0)
    adv = attack(tiny_standard, x, y)
    assert adv.shape == x.shape
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    delta = (adv - x).flatten(1)
    if attack.norm == "linf":
        assert delta.abs().max() <= attack.eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= attack.eps + 1e-4
    clean = accuracy(tiny_standard, x, y)
    assert clean > 0.7
    assert accuracy(tiny_standard, adv, y) < clean - 0.1


def test_robust_accuracy_counts_misclassified_as_not_robust(tiny_standard, mnist_small):
    x, y = mnist_small.x_test, mnist_small.y_test
    identity = lambda model, xb, yb: xb  # noqa: E731  (an attack that does nothing)
    assert robust_accuracy(tiny_standard, x, y, identity, progress=False) == pytest.approx(
        accuracy(tiny_standard, x, y))


def test_restarts_never_help_the_model(tiny_standard, mnist_small):
    x, y = mnist_small.x_test, mnist_small.y_test
    torch.manual_seed(1)
    one = robust_accuracy(tiny_standard, x, y, PGD(eps=0.05, steps=5), progress=False)
    torch.manual_seed(1)
    five = robust_accuracy(tiny_standard, x, y, PGD(eps=0.05, steps=5, restarts=5), progress=False)
    assert five <= one


def test_pgd_agrees_with_torchattacks(tiny_standard, mnist_small):
    """Same model, ε, steps and step size, no random start: the adversarial images must agree."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = mnist_small.x_test, mnist_small.y_test
    eps, alpha, steps = 0.1, 0.01, 20
    ref = torchattacks.PGD(tiny_standard, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    ours = projected_gradient(tiny_standard, x, y, eps=eps, step_size=alpha, steps=steps, use_best=False)
    differ = ((ours - ref).abs() > 1e-4).float().mean().item()
    assert differ < 0.01, f"{differ:.2%} of pixels differ from torchattacks"
    acc_ref = accuracy(tiny_standard, ref, y)
    acc_ours = accuracy(tiny_standard, ours, y)
    assert abs(acc_ref - acc_ours) <= 0.02
    # PGD (best iterate, strong step) is at least as strong as torchattacks' last iterate.
    ours_pgd = PGD(eps=eps, steps=steps, step_size=alpha, random_start=False)(tiny_standard, x, y)
    assert accuracy(tiny_standard, ours_pgd, y) <= acc_ref + 0.02


def test_minimize_descends_and_history_is_recorded(tiny_standard, mnist_small):
    x, y = mnist_small.x_test[:16], mnist_small.y_test[:16]
    hist: list[float] = []
    projected_gradient(tiny_standard, x, y, constraint="unconstrained", eps=0.0, step_size=0.5, steps=10,
                       minimize=True, history=hist)
    assert len(hist) == 11
    assert hist[-1] < hist[0]


def test_unknown_constraint_lists_valid_ones(tiny_standard, mnist_small):
    from rilib import RilibError
    with pytest.raises(RilibError, match="linf, l2, unconstrained"):
        projected_gradient(tiny_standard, mnist_small.x_test[:2], mnist_small.y_test[:2], constraint="l7",
                           eps=0.1, step_size=0.1, steps=1)


def test_worst_of_is_at_least_as_strong_as_each_attack(tiny_standard, mnist_small):
    from rilib.attacks import WorstOf, margin_loss
    from rilib.evaluate import robust_accuracy
    x, y = mnist_small.x_test[:100], mnist_small.y_test[:100]
    a = PGD(eps=0.1, steps=10)
    b = PGD(eps=0.1, steps=10, loss=margin_loss)
    torch.manual_seed(0)
    both = robust_accuracy(tiny_standard, x, y, WorstOf((a, b)), progress=False)
    torch.manual_seed(0)
    only_a = robust_accuracy(tiny_standard, x, y, a, progress=False)
    assert both <= only_a
    assert "margin loss" in WorstOf((a, b)).describe()


class _Calls:
    """Counts the examples a model is run on and records, for full batches, which of them it misclassifies."""

    def __init__(self, model, y):
        self.examples, self.fooled = 0, torch.zeros(len(y), dtype=torch.bool)
        self.y = y
        self.handle = model.register_forward_hook(self)

    def __call__(self, module, inputs, out):
        self.examples += len(out)
        if len(out) == len(self.y):
            self.fooled |= out.detach().argmax(1) != self.y


@pytest.mark.parametrize("eps,loss", [(0.05, None), (0.1, None), (0.1, "margin")])
def test_early_stopping_attack_gives_exactly_the_robust_set_of_the_full_attack(eps, loss, tiny_standard,
                                                                               mnist_small):
    """Stopping on an image once an iterate fools it leaves the robust set of the full attack (every image, all
    steps, highest-loss iterate): same seed, same restarts, the same images survive, for less work."""
    from rilib.attacks import margin_loss
    from rilib.rng import seeded
    x, y = mnist_small.x_test, mnist_small.y_test
    with torch.no_grad():
        ok = tiny_standard(x).argmax(1) == y
    x, y = x[ok], y[ok]
    kw = dict(eps=eps, steps=10, restarts=3, loss=margin_loss if loss else None)
    masks, work = {}, {}
    for early in (False, True):
        calls = _Calls(tiny_standard, y)
        with seeded(0):
            adv = PGD(**kw, early_stop=early)(tiny_standard, x, y)
        calls.handle.remove()
        with torch.no_grad():
            masks[early] = tiny_standard(adv).argmax(1) == y
        work[early] = calls.examples
    survivors = int(masks[True].sum())
    assert 0 < survivors < len(y), "the attack must fool some images and not others for the test to mean anything"
    assert torch.equal(masks[True], masks[False])
    assert work[True] < work[False]


def test_a_found_adversarial_example_is_kept(tiny_standard, mnist_small):
    """With the labels to fool, an image ends misclassified if and only if some iterate was, even when a
    correctly classified iterate has a higher loss. The loss here rewards the true class, so that the
    misclassified iterates (from the random start) are the low-loss ones that a best-loss rule would throw away."""
    from rilib.attacks import margin_loss
    x, y = mnist_small.x_test[:100], mnist_small.y_test[:100]
    toward_true_class = lambda model, xb, yb: -margin_loss(model, xb, yb)  # noqa: E731
    kw = dict(eps=0.5, step_size=0.05, steps=5, loss=toward_true_class, random_start=True)
    calls = _Calls(tiny_standard, y)
    torch.manual_seed(0)
    kept = projected_gradient(tiny_standard, x, y, fool=y, **kw)
    ever_fooled = calls.fooled.clone()
    calls.handle.remove()
    torch.manual_seed(0)
    best_loss = projected_gradient(tiny_standard, x, y, **kw)
    with torch.no_grad():
        fooled_kept = tiny_standard(kept).argmax(1) != y
        fooled_best_loss = tiny_standard(best_loss).argmax(1) != y
    assert ever_fooled.sum() > fooled_best_loss.sum(), "the best-loss rule must lose some for the test to mean anything"
    assert torch.equal(fooled_kept, ever_fooled)


def test_apgd_adapter_matches_torchattacks_and_keeps_the_callers_random_state(tiny_standard, mnist_small):
    torchattacks = pytest.importorskip("torchattacks")
    from rilib.attacks import APGD
    x, y = mnist_small.x_test[:64], mnist_small.y_test[:64]
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    ours = APGD(eps=0.1, steps=20, loss="targeted", targets=3)(tiny_standard, x, y)
    assert torch.rand(1) == before, "APGD must not move the caller's generator"
    ref = torchattacks.APGDT(tiny_standard, eps=0.1, steps=20, n_classes=10, seed=0)
    ref.n_target_classes = 3
    assert torch.equal(ours, ref(x, y))
    assert (ours - x).abs().max() <= 0.1 + 1e-6 and ours.min() >= 0 and ours.max() <= 1
    assert "APGD-T (3 target classes)" in APGD(eps=0.1, loss="targeted", targets=3).describe()
    with pytest.raises(rilib.RilibError, match="Valid norms"):
        APGD(eps=0.1, loss="hinge")(tiny_standard, x, y)


def test_staged_accuracy_falls_stage_by_stage_and_ends_at_the_chain(tiny_standard, mnist_small):
    from rilib.attacks import APGD, WorstOf, margin_loss
    from rilib.evaluate import robust_accuracy, staged_robust_accuracy
    from rilib.rng import seeded
    x, y = mnist_small.x_test[:100], mnist_small.y_test[:100]
    chain = WorstOf((PGD(eps=0.1, steps=10), PGD(eps=0.1, steps=10, loss=margin_loss), APGD(eps=0.1, steps=10)))
    with seeded(0):
        shares, seconds = staged_robust_accuracy(tiny_standard, x, y, chain, progress=False)
    with seeded(0):
        final = robust_accuracy(tiny_standard, x, y, chain, progress=False)
    with seeded(0):
        first = robust_accuracy(tiny_standard, x, y, chain.attacks[0], progress=False)
    assert shares == sorted(shares, reverse=True) and len(seconds) == 3 and all(s >= 0 for s in seconds)
    assert shares[-1] == pytest.approx(final) and shares[0] == pytest.approx(first)


def test_a_chain_over_several_batches_gives_its_first_attack_the_random_starts_it_would_draw_alone(tiny_standard,
                                                                                                    mnist_small):
    """The chain runs attack by attack over the batches, so its first share is the first attack's own accuracy from
    the same random state, not a second draw: zoo.evaluation caches it as that attack's record."""
    from rilib.attacks import WorstOf, margin_loss
    from rilib.evaluate import robust_accuracy, staged_robust_accuracy
    from rilib.rng import seeded
    x, y = mnist_small.x_test[:120], mnist_small.y_test[:120]
    # a weak first attack with a random start, so the draw decides which images it fools
    chain = WorstOf((PGD(eps=0.08, steps=2, step_size=0.02), PGD(eps=0.08, steps=2, step_size=0.02, loss=margin_loss)))
    with seeded(0):
        shares, _ = staged_robust_accuracy(tiny_standard, x, y, chain, batch_size=25, progress=False)
    with seeded(0):
        first = robust_accuracy(tiny_standard, x, y, chain.attacks[0], batch_size=25, progress=False)
    assert shares[0] == first
    assert shares[1] <= shares[0]


class _FooledUnderAutocast(torch.nn.Module):
    """A model that classifies correctly in float32 and wrongly under bfloat16 autocast: it tells where an attack
    takes its decisions."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        z = self.model(x)
        if torch.is_autocast_enabled("cpu"):
            return z.roll(1, dims=1)  # a wrong class on top for every image the float32 model gets right
        return z


def test_bf16_attacks_step_under_autocast_and_decide_in_float32(tiny_standard, mnist_small):
    """``precision="bf16"``: the gradient steps see bfloat16 activations up to the representation and float32
    logits from it, the images come back in float32 inside the ball and the box, and whether an image is fooled is
    decided in float32 (the early stop's, the restart's and the chain's decisions), so a model that looks fooled
    only under autocast is attacked for every step of every restart and counted as robust."""
    from rilib.attacks import APGD, WorstOf, gradient_model

    x, y = mnist_small.x_test[:40], mnist_small.y_test[:40]
    features, head = [], []
    hooks = [tiny_standard.features.register_forward_hook(lambda m, i, o: features.append(o.dtype)),
             tiny_standard.head.register_forward_hook(lambda m, i, o: head.append((i[0].dtype, o.dtype)))]
    try:
        adv = PGD(eps=0.1, steps=5, precision="bf16")(tiny_standard, x, y)
    finally:
        for hook in hooks:
            hook.remove()
    assert set(features) == {torch.bfloat16, torch.float32}  # steps in bf16, the restart's decision in float32
    assert set(head) == {(torch.float32, torch.float32)}  # the logits always in float32
    assert adv.dtype == torch.float32 and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    assert accuracy(tiny_standard, adv, y) < accuracy(tiny_standard, x, y) - 0.1

    model = _FooledUnderAutocast(tiny_standard)
    clean = model(x).argmax(1) == y
    calls = []
    model.register_forward_pre_hook(lambda m, i: calls.append((len(i[0]), torch.is_autocast_enabled("cpu"))))
    _, masks = WorstOf((PGD(eps=0.1, steps=3, restarts=3, precision="bf16"),)).run(model, x, y)
    assert torch.equal(masks[-1], clean)  # nothing the float32 model gets right was counted as fooled
    # The chain's clean check, then three restarts on every correctly classified image. In each, every iterate
    # that looks misclassified under autocast is checked in float32, found classified correctly, and kept in the
    # search: all 3 steps and the final iterate's score run, then the restart's own float32 decision.
    n = int(clean.sum())
    restart = [(n, True), (n, False)] * 4 + [(n, False)]
    assert calls[:1 + 3 * len(restart)] == [(len(x), False)] + restart * 3
    # torchattacks' APGD decides under autocast, where every image looks fooled from the start: each one that is
    # not fooled in float32 is attacked again in float32, so the result is float32 APGD's, image for image.
    apgd = APGD(eps=0.1, steps=5, precision="bf16")
    assert torch.equal(apgd(model, x[clean], y[clean]), APGD(eps=0.1, steps=5)(model, x[clean], y[clean]))
    with pytest.raises(rilib.RilibError, match="Unknown attack precision 'fp16'. Valid: fp32, bf16"):
        gradient_model(tiny_standard, "fp16")


def test_attack_precision_names_itself_and_follows_the_profile(monkeypatch):
    """A bf16 attack says so in its description and its cache key; a float32 attack keeps the key it had; the
    book's attacks take the profile's precision, which ``RILIB_PRECISION`` overrides."""
    import rilib.chapters.catalog as catalog
    from rilib.attacks import APGD

    assert "precision" not in PGD(eps=0.3).cache_key() and "precision" not in APGD(eps=0.3).cache_key()
    assert PGD(eps=0.3, precision="bf16").cache_key()["precision"] == "bf16"
    assert APGD(eps=0.3, precision="bf16").cache_key()["precision"] == "bf16"
    assert "bf16 gradient steps" in PGD(eps=0.3, precision="bf16").describe()
    assert "bf16" not in PGD(eps=0.3).describe()
    for env in ("fp32", "bf16"):
        monkeypatch.setenv("RILIB_PRECISION", env)
        prof = rilib.get_profile("cpu")
        assert prof.attack_precision() == env
        assert {a.precision for a in catalog.evaluation_attack(prof, 0.3).attacks} == {env}
        assert catalog.strong_attack(prof, 0.3).precision == env
