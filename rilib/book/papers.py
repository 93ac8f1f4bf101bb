"""The papers the book reproduces and the ones it cites for background, one registry for every chapter and the
ledger. A claim names the papers it tests by key (``claim(..., papers=("helland2021",))``); its citation string
and the paper it is filed under on the synthesis page (the first key) come from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class Paper:
    """One paper: ``short`` ("Helland & VanHoudnos 2021"), its title, where it appeared, a link, and whether it
    is one of the four papers the book reproduces (``focus``) or background."""

    short: str
    title: str
    venue: str
    url: str
    focus: bool = False

    @property
    def citation(self) -> str:
        """"Short, Title (Venue)": the form the ledger prints."""
        return f"{self.short}, {self.title} ({self.venue})"


PAPERS: Registry[Paper] = Registry("paper")
PAPERS.add("helland2021", Paper(
    "Helland & VanHoudnos 2021", "On the Human-Recognizability Phenomenon of Adversarially Trained Deep Image "
    "Classifiers", "arXiv 2101.05219", "https://arxiv.org/abs/2101.05219", focus=True))
PAPERS.add("boychev2023", Paper(
    "Boychev 2023", "Interpretable Computer Vision Models through Adversarial Training", "arXiv 2307.02500",
    "https://arxiv.org/abs/2307.02500", focus=True))
PAPERS.add("elliott2021", Paper(
    "Elliott, Law & Russell 2021", "Explaining Classifiers using Adversarial Perturbations on the Perceptual Ball",
    "CVPR", "https://arxiv.org/abs/1912.09405", focus=True))
PAPERS.add("gavrikov2022", Paper(
    "Gavrikov & Keuper 2022", "Adversarial Robustness through the Lens of Convolutional Filters", "CVPR-W",
    "https://arxiv.org/abs/2204.02481", focus=True))
PAPERS.add("madry2018", Paper(
    "Madry et al. 2018", "Towards Deep Learning Models Resistant to Adversarial Attacks", "ICLR",
    "https://arxiv.org/abs/1706.06083"))
PAPERS.add("tsipras2019", Paper(
    "Tsipras et al. 2019", "Robustness May Be at Odds with Accuracy", "ICLR", "https://arxiv.org/abs/1805.12152"))
PAPERS.add("zhang2019", Paper(
    "Zhang et al. 2019", "Theoretically Principled Trade-off between Robustness and Accuracy", "ICML",
    "https://arxiv.org/abs/1901.08573"))
PAPERS.add("wong2020", Paper(
    "Wong, Rice & Kolter 2020", "Fast is better than free: revisiting adversarial training", "ICLR",
    "https://arxiv.org/abs/2001.03994"))
PAPERS.add("etmann2019", Paper(
    "Etmann et al. 2019", "On the Connection Between Adversarial Robustness and Saliency Map Interpretability",
    "ICML", "https://arxiv.org/abs/1905.04172"))
PAPERS.add("petsiuk2018", Paper(
    "Petsiuk, Das & Saenko 2018", "RISE: Randomized Input Sampling for Explanation of Black-box Models", "BMVC",
    "https://arxiv.org/abs/1806.07421"))
PAPERS.add("engstrom2019", Paper(
    "Engstrom et al. 2019", "Adversarial Robustness as a Prior for Learned Representations", "arXiv 1906.00945",
    "https://arxiv.org/abs/1906.00945"))
PAPERS.add("santurkar2019", Paper(
    "Santurkar et al. 2019", "Image Synthesis with a Single (Robust) Classifier", "NeurIPS",
    "https://arxiv.org/abs/1906.09453"))
PAPERS.add("ross2018", Paper(
    "Ross & Doshi-Velez 2018", "Improving the Adversarial Robustness and Interpretability of Deep Neural Networks by "
    "Regularizing their Input Gradients", "AAAI", "https://arxiv.org/abs/1711.09404"))


def cite(*keys: str) -> str:
    """The citations of the papers ``keys``, joined by "; " (an unknown key lists the known ones)."""
    return "; ".join(PAPERS[k].citation for k in keys)
