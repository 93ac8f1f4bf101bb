"""rilib: the library behind the robustness–interpretability companion book.

The package is a house of four floors, each importing only the floors below it:

- the **core** (this package's top-level modules): names and errors, paths and profiles, datasets, models, one
  projected-gradient optimizer with the attacks built on it, training objectives, evaluation and the model zoo;
- :mod:`rilib.lenses`: the measurements on a trained model (saliency, metrics, inversion, filters, Lipschitz
  estimates, statistics);
- :mod:`rilib.book`: the papermill runner, display helpers, plotting and the claims ledger;
- :mod:`rilib.chapters`: the shared model catalogue and one module per page of the book.

Importing the core registers datasets, architectures, objectives and profiles, nothing else. The book's named
models and its claims are registered by ``import rilib.chapters``; the command line does that for you.
"""

from . import canvas, zoo  # noqa: F401  (canvas registers the dataset mnist-canvas)
from .attacks import FGSM, PGD, WorstOf, margin_loss, projected_gradient
from .data import list_datasets, load_dataset
from .errors import RilibError
from .models import create_model, list_architectures, to_model
from .profiles import get_profile, list_profiles
from .train import list_objectives
from .zoo import Spec, zoo_specs

__version__ = "0.1.0"

__all__ = ["FGSM", "PGD", "WorstOf", "margin_loss", "projected_gradient", "list_datasets", "load_dataset",
           "RilibError", "create_model", "list_architectures", "to_model", "get_profile", "list_profiles",
           "list_objectives", "Spec", "zoo", "zoo_specs", "__version__"]
