"""rilib: the library behind the robustness–interpretability companion book.

Import order registers every dataset, architecture, objective, zoo group and claim.
"""

from . import chapter1, chapter2, chapter3, chapter4, chapter5  # noqa: F401  (register the chapters' zoo groups and claims)
from . import claims, zoo  # noqa: F401
from .attacks import FGSM, PGD, projected_gradient
from .data import list_datasets, load_dataset
from .errors import RilibError
from .models import create_model, list_architectures
from .profiles import get_profile, list_profiles
from .train import list_objectives
from .zoo import Spec, zoo_specs

__version__ = "0.1.0"

__all__ = ["FGSM", "PGD", "projected_gradient", "list_datasets", "load_dataset", "RilibError",
           "create_model", "list_architectures", "get_profile", "list_profiles", "list_objectives",
           "Spec", "zoo_specs", "__version__"]
