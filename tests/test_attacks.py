"""The projected-gradient optimizer and the attacks built on it."""

from __future__ import annotations

import pytest
import torch

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
