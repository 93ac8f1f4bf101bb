"""The book's pages: the shared catalogue of models and attacks, and one module per chapter, named like its
notebook in ``notebooks/``. Importing this package registers every chapter's zoo group and claims.

- :mod:`~rilib.chapters.catalog`: the standard and robust models every chapter studies, and the attacks;
- :mod:`~rilib.chapters.standard_and_robust` (chapter 1), :mod:`~rilib.chapters.convolution_filters`
  (chapter 2), :mod:`~rilib.chapters.saliency` (chapter 3), :mod:`~rilib.chapters.inversion` (chapter 4),
  :mod:`~rilib.chapters.lipschitz` (chapter 5), :mod:`~rilib.chapters.perceptual_ball` (chapter 6), and
  :mod:`~rilib.chapters.synthesis` (the closing page: the ledger by paper and the ε dashboard, from the other
  chapters' results).
"""

# In the book's order: the ledger lists claims in the order their chapters register them.
from . import (catalog, standard_and_robust, convolution_filters, saliency, inversion, lipschitz,  # noqa: I001
               perceptual_ball, synthesis)
from .catalog import (EVAL_EPS, ROBUST, STANDARD, load_models, model_names, robust_acc, strong_attack, train_zoo,
                      weak_attack)

#: The page modules, in the book's order.
PAGES = (standard_and_robust, convolution_filters, saliency, inversion, lipschitz, perceptual_ball, synthesis)

__all__ = ["catalog", "standard_and_robust", "convolution_filters", "saliency", "inversion", "lipschitz",
           "perceptual_ball", "synthesis",
           "PAGES",
           "EVAL_EPS", "ROBUST", "STANDARD", "load_models", "model_names", "robust_acc", "strong_attack", "train_zoo",
           "weak_attack"]
