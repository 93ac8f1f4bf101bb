"""The model zoo: a model is a *spec*, trained once and cached.

A :class:`Spec` (dataset, architecture, objective and its parameters, epochs, seed, ...) hashes to a folder
``<RILIB_CACHE>/zoo/<dataset>-<arch>-<objective>-<hash>/`` holding

- ``model.pt``: the state_dict, loaded with ``torch.load(weights_only=True)`` after checking its sha256;
- ``metrics.json``: the spec, the sha256, clean accuracy, the training history, timings, library versions;
- ``evals.json``: cached robust-accuracy evaluations, keyed by attack;
- ``checkpoint.pt`` while training: an interrupted run resumes from it.

A spec already trained is never retrained. Every write is atomic.

Named specs come from *zoo groups*: functions of a :class:`~rilib.profiles.Profile` registered in
:data:`ZOO_GROUPS` (chapter 1 registers ``chapter1``). ``rilib zoo list --profile cpu`` shows them.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from . import paths
from .attacks import PGD
from .data import load_dataset
from .errors import RilibError
from .models import Classifier, create_model
from .profiles import Profile, get_profile
from .registry import Registry


@dataclass(frozen=True)
class Spec:
    """Everything that determines a trained model. Equal specs hash equal; see :meth:`key`."""

    dataset: str
    arch: str
    objective: str
    params: tuple = ()                 # sorted (name, value) pairs of the objective's parameters
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    eps_warmup: int = 0
    augment: bool = False
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    seed: int = 0
    monitor_eps: Optional[float] = None

    @classmethod
    def make(cls, dataset: str, arch: str, objective: str, params: Optional[dict] = None, **kw) -> "Spec":
        """Build a spec with ``params`` given as a dict."""
        return cls(dataset, arch, objective, tuple(sorted((params or {}).items())), **kw)

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"] = self.param_dict
        return d

    def key(self) -> str:
        """First 12 hex digits of the sha256 of the spec's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def folder(self) -> Path:
        safe = self.dataset.replace(":", "_").replace("/", "_")
        return paths.zoo_dir() / f"{safe}-{self.arch}-{self.objective}-{self.key()}"


ZOO_GROUPS: Registry[Callable[[Profile], dict]] = Registry("zoo group")


def zoo_specs(profile: str | Profile, group: Optional[str] = None) -> dict[str, Spec]:
    """Named specs of every zoo group (or of ``group``) under ``profile``."""
    prof = get_profile(profile)
    groups = [group] if group else list(ZOO_GROUPS)
    specs: dict[str, Spec] = {}
    for g in groups:
        specs.update(ZOO_GROUPS[g](prof))
    return specs


def resolve(name_or_spec: str | Spec, profile: str | Profile = "cpu") -> Spec:
    """A spec, given itself or its zoo name under ``profile``."""
    if isinstance(name_or_spec, Spec):
        return name_or_spec
    specs = zoo_specs(profile)
    if name_or_spec not in specs:
        raise RilibError(f"Unknown model {name_or_spec!r} in the {get_profile(profile).name} zoo. Valid names: {', '.join(specs)}.")
    return specs[name_or_spec]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict:
    import torchvision
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def is_trained(spec: Spec) -> bool:
    return (spec.folder() / "model.pt").exists() and (spec.folder() / "metrics.json").exists()


def train(spec: Spec, *, progress: bool = True, on_epoch_end=None) -> Path:
    """Train ``spec`` unless it is already in the zoo; return its folder.

    An interrupted run (a ``checkpoint.pt`` without ``model.pt``) resumes after its last complete epoch.
    """
    from .train import fit, save_atomic

    folder = spec.folder()
    if is_trained(spec):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_text(folder / "spec.json", json.dumps(spec.to_dict(), indent=2))
    ds = load_dataset(spec.dataset, spec.n_train, spec.n_test)
    torch.manual_seed(spec.seed)
    model = create_model(spec.arch, ds.shape, ds.num_classes, ds.mean, ds.std)
    t0 = time.perf_counter()
    history = fit(model, ds, objective=spec.objective, params=spec.param_dict, epochs=spec.epochs,
                  batch_size=spec.batch_size, optimizer=spec.optimizer, lr=spec.lr,
                  weight_decay=spec.weight_decay, schedule=spec.schedule, eps_warmup=spec.eps_warmup,
                  augment=spec.augment, seed=spec.seed, monitor_eps=spec.monitor_eps,
                  checkpoint=folder / "checkpoint.pt", progress=progress, on_epoch_end=on_epoch_end,
                  device=device())
    weights = save_atomic({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                          folder / "model.pt")
    metrics = {
        "spec": spec.to_dict(),
        "key": spec.key(),
        "sha256": hashlib.sha256(weights).hexdigest(),
        "in_shape": list(ds.shape), "num_classes": ds.num_classes,
        "mean": list(ds.mean), "std": list(ds.std), "classes": ds.classes,
        "dataset_description": ds.description,
        "clean_acc": history[-1]["test_acc"] if history else None,
        "history": history,
        "train_seconds": sum(r["seconds"] for r in history),
        "train_seconds_this_run": time.perf_counter() - t0,
        "versions": _versions(),
    }
    paths.atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    return folder


def load_key(key: str) -> Classifier:
    """Load the trained model whose spec hashes to ``key`` (e.g. a distillation teacher)."""
    matches = sorted(paths.zoo_dir().glob(f"*-{key}"))
    if not matches or not (matches[0] / "spec.json").exists():
        raise RilibError(f"No model with key {key} in the zoo at {paths.zoo_dir()}. Train it first "
                         f"(`rilib zoo list` shows every model and its key; `rilib zoo train NAME`).")
    d = json.loads((matches[0] / "spec.json").read_text())
    return load(Spec(**{**d, "params": tuple(sorted(d["params"].items()))}))


def metrics(spec: Spec) -> dict:
    """The ``metrics.json`` of a trained spec."""
    path = spec.folder() / "metrics.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RilibError(f"Model {spec.key()} is not trained yet ({path} is missing). "
                         f"Train it with `rilib zoo train` or rilib.zoo.get(...).") from None
    except json.JSONDecodeError as exc:
        raise RilibError(f"{path} is not valid JSON ({exc}). Delete {path.parent} and train again.") from None


def load(spec: Spec) -> Classifier:
    """Load a trained spec: verify ``model.pt`` against its recorded sha256, then load weights only."""
    folder = spec.folder()
    info = metrics(spec)
    weights = folder / "model.pt"
    retrain = (f"Delete {folder} (or run `rilib zoo train --retrain ...`) and the model is trained again "
               f"from its spec.")
    found = _sha256(weights)
    if found != info["sha256"]:
        raise RilibError(f"Checkpoint {weights} is corrupt or was modified: its sha256 is {found[:16]}…, "
                         f"but metrics.json recorded {info['sha256'][:16]}…. {retrain}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model = create_model(spec.arch, info["in_shape"], info["num_classes"], info["mean"], info["std"])
        model.load_state_dict(state)
    except Exception as exc:  # unpickling or shape errors: say what and how to fix
        raise RilibError(f"Could not load {weights} as a {spec.arch} state_dict ({exc}). {retrain}") from None
    # channels_last: faster 3×3 convolutions on the CPU (benchmarks/channels_last.py).
    return model.to(device=device(), memory_format=torch.channels_last).eval()


def get(name_or_spec: str | Spec, profile: str | Profile = "cpu", *, progress: bool = True) -> Classifier:
    """The trained model for a zoo name (under ``profile``) or a spec: trained on first use, then cached."""
    spec = resolve(name_or_spec, profile)
    train(spec, progress=progress)
    return load(spec)


def delete(spec: Spec) -> None:
    """Remove a spec's folder from the zoo, so that it is trained again."""
    shutil.rmtree(spec.folder(), ignore_errors=True)


def evaluate(name_or_spec: str | Spec, attack, profile: str | Profile = "cpu", n: Optional[int] = None,
             progress: bool = True) -> float:
    """Robust accuracy of a zoo model under ``attack`` on the first ``n`` test images, cached in evals.json.

    ``attack`` is a :class:`rilib.attacks.PGD` (its fields form the cache key) or any attack with a
    ``describe()`` that names all its settings (e.g. :class:`rilib.attacks.WorstOf`). ``n=None`` uses all test
    images.
    """
    from .evaluate import robust_accuracy

    spec = resolve(name_or_spec, profile)
    model = get(spec, profile, progress=progress)
    if isinstance(attack, PGD):
        fields = {k: v for k, v in vars(attack).items() if k != "loss"}
        if attack.loss is not None:  # a custom loss (e.g. the margin loss) is part of the key
            fields["loss"] = attack.loss.__name__
    else:  # e.g. WorstOf: its description names every attack and setting
        fields = {"describe": attack.describe()}
    key = json.dumps({"attack": type(attack).__name__, **fields, "n": n}, sort_keys=True)
    path = spec.folder() / "evals.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key in cache:
        return cache[key]["robust_acc"]
    ds = load_dataset(spec.dataset, spec.n_train, spec.n_test)
    x, y = ds.x_test[:n].to(device()), ds.y_test[:n].to(device())
    torch.manual_seed(0)
    t0 = time.perf_counter()
    acc = robust_accuracy(model, x, y, attack, progress=progress, desc=attack.describe())
    cache = json.loads(path.read_text()) if path.exists() else {}
    cache[key] = {"robust_acc": acc, "attack": attack.describe(), "n": len(y),
                  "seconds": time.perf_counter() - t0}
    paths.atomic_write_text(path, json.dumps(cache, indent=2))
    return acc
