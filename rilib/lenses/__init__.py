"""Lenses: the measurements the book takes of a trained model. They import only the core.

- :mod:`~rilib.lenses.saliency`: attribution maps behind one Captum-style verb (gradient, SmoothGrad,
  Integrated Gradients, SHAP);
- :mod:`~rilib.lenses.metrics`: alignment, deletion/insertion, Gini, rank correlation, model randomisation;
- :mod:`~rilib.lenses.inversion`: representation inversion, class generation, and the scores of their images;
- :mod:`~rilib.lenses.filters`: sparsity, variance entropy and orthogonality of 3×3 filters, first-layer damping;
- :mod:`~rilib.lenses.lipschitz`: the local Lipschitz estimate and the input-gradient norm;
- :mod:`~rilib.lenses.perceptual`: explanations on the perceptual ball (Elliott, Law & Russell 2021);
- :mod:`~rilib.lenses.localisation`: pointing game, weak localisation and energy inside a ground-truth mask;
- :mod:`~rilib.lenses.stats`: intervals over images, seeds and kernels; paired comparisons; McNemar's test.

Every lens moves its inputs to the model's device, so a model on a GPU can be measured with tensors from the CPU.
"""

from .filters import (by_depth, conv3x3_layers, first_layer, first_layer_damping, layer_stats, load_state_dict_as,
                      orthogonality, pca_basis, sparsity, variance_entropy, weighted_mean)
from .inversion import (ClassGaussian, GenerationSettings, InversionSettings, generate, invert, recognised,
                        representation_distance, ssim_psnr, with_fake_relu)
from .lipschitz import gradient_l1, local_lipschitz
from .metrics import (alignment, alignment_of, deletion_insertion, gini, randomize_top_layers, spearman)
from .saliency import Gradient, GradientSHAP, IntegratedGradients, Method, SmoothGrad, list_methods, predicted
from .stats import Interval, McNemar, bootstrap_ci, mcnemar, mean_ci, paired_ci, proportion_ci, seed_ci

__all__ = ["by_depth", "conv3x3_layers", "first_layer", "first_layer_damping", "layer_stats", "load_state_dict_as",
           "orthogonality", "pca_basis", "sparsity", "variance_entropy", "weighted_mean", "ClassGaussian",
           "GenerationSettings", "InversionSettings", "generate", "invert", "recognised", "representation_distance",
           "ssim_psnr", "with_fake_relu", "gradient_l1", "local_lipschitz", "alignment", "alignment_of",
           "deletion_insertion", "gini", "randomize_top_layers", "spearman", "Gradient", "GradientSHAP",
           "IntegratedGradients", "Method", "SmoothGrad", "list_methods", "predicted", "Interval", "McNemar",
           "bootstrap_ci", "mcnemar", "mean_ci", "paired_ci", "proportion_ci", "seed_ci"]
