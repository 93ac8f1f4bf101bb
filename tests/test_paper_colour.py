"""The CIFAR-10 path of chapters 2–5 (profile ``paper``), on a tiny synthetic colour dataset with tiny models.

Nothing here can train a real CIFAR-10 model (no GPU, hours), so the paper profile's colour path is kept from rotting
by a test profile whose ``cifar10`` is 96 images of coloured Gaussian blobs (3×32×32, the generator of
test_colour.py, shared in conftest.py) and whose CIFAR-10 models are the catalogue's five CIFAR-10 specs with a tiny
CNN for one epoch. The profile, the dataset and the chapters' sizes for the profile are registered for this module
only (and removed after it); the models train in a cache of their own. Each chapter's CIFAR-10 measurement runs
once; the tests check shapes, finiteness, that every CIFAR-10 model of the catalogue (Boychev's L2 model in
chapters 3 and 4) is measured on colour images, and that no MNIST model is.
"""

from __future__ import annotations

import pytest
import torch

import rilib.chapters  # noqa: F401  (registers the chapters' zoo groups)
from rilib import data as data_mod
from rilib.chapters import catalog
from rilib.chapters import convolution_filters as ch2
from rilib.chapters import inversion as ch4
from rilib.chapters import lipschitz as ch5
from rilib.chapters import saliency as ch3
from rilib.data import Dataset
from rilib.errors import RilibError
from rilib.profiles import PROFILES, Profile

NAME, DATASET = "colour-paper-test", "colour-blobs-paper-test"
N_TRAIN, N_TEST = 64, 32
L2 = "cifar10-pgd-l2-0.5"
PROFILE = Profile(
    name=NAME, description="tests only: the paper profile's CIFAR-10 path on synthetic colour blobs",
    mnist="mnist-5k", n_train=100, n_test=50, epochs={"standard": 1, "pgd": 1, "trades": 1, "fgsm_rs": 1},
    eval_n=16, eval_steps=3, eval_restarts=1, cifar10=DATASET, cifar10_arch="tiny-cnn", cifar10_epochs=1)
SIZES = {ch3.SIZES: ch3.SaliencySizes(n=8, sanity_n=4, ig_steps_grid=3, ig_steps_metrics=3, seed_n=4),
         ch4.SIZES: ch4.InversionSizes(n=10, invert_steps=6, invert_window=2, gen_per_class=1, seed_n=10),
         ch5.SIZES: ch5.LipschitzSizes(n=8)}


@pytest.fixture(scope="module")
def prof(colour_blobs, tmp_path_factory):
    """The test profile, registered (with its dataset and chapter sizes) for this module only, its CIFAR-10 models
    trained in a cache of their own."""
    x, y, _, _ = colour_blobs(N_TRAIN + N_TEST, seed=1)
    ds = Dataset(DATASET, x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], [str(c) for c in range(10)],
                 "synthetic coloured blobs standing in for CIFAR-10")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RILIB_CACHE", str(tmp_path_factory.mktemp("paper-colour-cache")))
        mp.setitem(PROFILES._items, NAME, PROFILE)  # the registry has no remove: undone with the monkeypatch
        mp.setitem(data_mod.DATASETS._items, DATASET, lambda: ds)
        for registry, size in SIZES.items():
            mp.setitem(registry._items, NAME, size)
        catalog.train_zoo(PROFILE, cifar10_names(), progress=False)
        yield PROFILE
    data_mod.clear_cache()
    assert NAME not in PROFILES and DATASET not in data_mod.DATASETS


def cifar10_names() -> list[str]:
    return [*catalog.model_names(PROFILE, "cifar10"), L2]


def finite(t) -> bool:
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def test_the_profile_gives_the_catalogue_five_tiny_colour_models(prof):
    specs = catalog.all_specs(prof)
    assert catalog.model_names(prof, "cifar10") == ["cifar10-standard", "cifar10-pgd-8/255", "cifar10-trades",
                                                    "cifar10-fgsm-rs"]
    assert catalog.l2_names(prof, "cifar10") == [L2] and catalog.l2_names(prof) == list(catalog.L2_MODELS)
    for n in cifar10_names():
        assert specs[n].arch == "tiny-cnn" and specs[n].epochs == 1 and specs[n].dataset == DATASET
    assert catalog.threat(specs[L2], "cifar10") == ("l2", 0.5)
    assert catalog.threat(specs["cifar10-trades"], "cifar10") == ("linf", catalog.EVAL_EPS["cifar10"])
    assert catalog.family_dataset(prof, "cifar10").x_test.shape == (N_TEST, 3, 32, 32)
    # the paper profile keeps the papers' recipe
    paper = catalog.catalog_zoo(PROFILES["paper"])
    assert paper["cifar10-standard"].arch == "preact-resnet18" and paper["cifar10-standard"].epochs == 100
    assert paper["cifar10-fgsm-rs"].epochs == 30


def test_chapter2_measures_the_colour_filters_and_damping(prof):
    models = catalog.load_models(prof, catalog.model_names(prof, "cifar10"), progress=False)
    damp = ch2.damping(prof, models, progress=False, family="cifar10")
    assert list(damp.index) == catalog.model_names(prof, "cifar10")
    assert finite(damp.to_numpy()) and (damp["damping ratio"] >= 0).all()
    assert ((damp["ci95 low"] <= damp["damping ratio"]) & (damp["damping ratio"] <= damp["ci95 high"])).all()
    table = ch2.cifar10_section(prof, progress=False).data
    assert list(table.index) == catalog.model_names(prof, "cifar10")
    assert {*ch2.COLUMNS.values(), "damping ratio"} <= set(table.columns)
    assert not table.isin(["nan [nan, nan]"]).any().any()


def test_chapter3_measures_every_colour_model_and_leaves_out_the_ink(prof):
    res = ch3.measure(prof, progress=False, family="cifar10")
    size = ch3.sizes(prof)
    names = cifar10_names()
    assert L2 in names and set(res.maps) == set(res.alignment) == set(res.etmann) == set(res.cascade) == set(names)
    assert res.seeds == {}
    for n in names:
        assert set(res.maps[n]) == {*ch3.METHODS, ch3.RANDOM_MAP, ch3.SOBEL_MAP}  # no ink order on colour images
        for method, row in res.maps[n].items():
            assert "stroke share" not in row
            for metric, v in row.items():
                k = size.sanity_n if metric == "randomisation rank corr." else size.n
                assert v.shape == (k,), (n, method, metric)
                assert finite(v), (n, method, metric)
        for psi in ("logit", "margin"):
            assert res.etmann[n][psi].shape == (size.n,) and finite(res.etmann[n][psi])
        assert res.cascade[n]["spearman"].shape[1] == size.sanity_n
    shown = ch3.cifar10_section(prof, progress=False).data
    assert sorted(set(shown.index.get_level_values(0))) == sorted(names)
    assert (shown.xs(ch3.METHODS["gradient"], level=1)[ch3.ALIGNMENTS["logit"]] != "–").all()


def test_chapter4_inverts_every_colour_model(prof):
    res = ch4.cifar10_images(prof, progress=False)
    names = ch4.cifar10_models(prof)
    assert names == ["cifar10-standard", "cifar10-pgd-8/255", "cifar10-trades", L2]
    assert res.targets.shape == (ch4.sizes(prof).n, 3, 32, 32)
    assert ch4.inversion_settings(prof, "cifar10").step_size == ch4.CIFAR10_INVERT_STEP
    for n in names:
        inv = res.inverted[n]
        assert inv.shape == res.targets.shape and finite(inv) and 0 <= float(inv.min()) and float(inv.max()) <= 1
        assert finite(res.curves["invert"][n]) and len(res.steps[n]) == len(res.targets)
    table = ch4.cifar10_section(prof, progress=False).data
    assert len(table) == len(names) and not table.isin(["nan [nan, nan]"]).any().any()


def test_chapter5_measures_every_colour_model(prof):
    res = ch5.measure_cifar10(prof, progress=False)
    names = catalog.model_names(prof, "cifar10")
    assert list(res.accuracy) == names
    for n in names:
        acc = res.accuracy[n]
        assert 0 <= acc["strong attack acc"] <= acc["clean acc"] <= 1
        assert set(res.per_image[n]) == set(ch5.PER_IMAGE)
        for key, v in res.per_image[n].items():
            assert v.shape == (ch5.sizes(prof).n,) and finite(v), (n, key)
    table = ch5.cifar10_section(prof, progress=False).data
    assert len(table) == len(names) and set(ch5.PER_IMAGE) <= set(table.columns)


@pytest.mark.parametrize("chapter", [ch2, ch3, ch4, ch5], ids=["ch2", "ch3", "ch4", "ch5"])
def test_a_profile_without_cifar10_says_so_in_one_sentence(chapter):
    assert chapter.cifar10_section("smoke") == "Profile smoke trains no CIFAR-10 models."


def test_measuring_cifar10_on_a_profile_without_it_names_the_profiles_with_it():
    with pytest.raises(RilibError, match="trains no CIFAR-10.*paper"):
        ch3.measure("smoke", family="cifar10")
    with pytest.raises(RilibError, match="paper"):
        ch5.measure_cifar10("smoke")


def test_an_unknown_family_names_the_valid_ones():
    with pytest.raises(Exception, match="mnist, cifar10"):
        catalog.family_dataset("smoke", "svhn")

