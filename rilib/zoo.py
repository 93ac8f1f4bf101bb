"""The model zoo: a model is a *spec*, trained once and cached.

A :class:`Spec` (dataset, architecture, objective and its parameters, epochs, seed, ...) hashes to a folder
``<RILIB_CACHE>/zoo/<dataset>-<arch>-<objective>-<hash>/`` holding

- ``model.pt``: the state_dict, loaded with ``torch.load(weights_only=True)`` after checking its sha256;
- ``metrics.json``: the spec, the sha256, clean accuracy, the training history, timings, library versions;
- ``evals.json``: cached robust-accuracy evaluations, keyed by every setting of the attack;
- ``checkpoint.pt`` while training: an interrupted run resumes from it.

A spec already trained is never retrained. Every write is atomic. A spec may depend on another: a distillation
student's spec holds its teacher's spec (``teacher``), and :func:`train` trains or loads the teacher first.

Named specs come from *zoo groups*: functions of a :class:`~rilib.profiles.Profile` registered in
:data:`ZOO_GROUPS`. The book's groups are registered by ``import rilib.chapters`` (the command line does it);
``rilib zoo list --profile cpu`` shows them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Optional

import torch

from . import paths, stopping, timing
from .data import load_dataset
from .errors import RilibError, UnknownNameError
from .evaluate import robust_accuracy, staged_robust_accuracy
from .models import Classifier, create_model
from .profiles import Profile, get_profile
from .registry import Registry
from .rng import seeded
from .train import fit


def _stored(params: dict) -> tuple:
    """An objective's parameters as a :class:`Spec` stores them: sorted (name, value) pairs, hashable."""
    return tuple(sorted(params.items()))


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
    teacher: Optional["Spec"] = None   # a model this one learns from (defensive distillation)
    grad_clip: Optional[float] = None  # clip the loss gradient's L2 norm to this before each step
    precision: str = "fp32"            # a name in rilib.train.PRECISIONS

    @classmethod
    def make(cls, dataset: str, arch: str, objective: str, params: Optional[dict] = None, **kw) -> "Spec":
        """Build a spec with ``params`` given as a dict."""
        return cls(dataset, arch, objective, _stored(params or {}), **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        """The spec :meth:`to_dict` wrote (a teacher's spec included)."""
        d = dict(d)
        teacher = cls.from_dict(d.pop("teacher")) if d.get("teacher") else None
        return cls(**{**d, "params": _stored(d["params"]), "teacher": teacher})

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    def with_params(self, **changes) -> "Spec":
        """This spec with the objective's parameters ``changes`` set (the others kept), stored as :meth:`make`
        stores them."""
        return replace(self, params=_stored({**self.param_dict, **changes}))

    def to_dict(self) -> dict:
        """Every field as plain JSON, the teacher's spec nested. ``teacher``, ``grad_clip`` and ``precision`` appear
        only when set (a precision other than ``fp32``), so that a spec without them hashes as it always has."""
        optional = ("params", "teacher", "grad_clip", "precision")
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in optional}
        if self.grad_clip is not None:
            d["grad_clip"] = self.grad_clip
        if self.precision != "fp32":
            d["precision"] = self.precision
        d["params"] = self.param_dict
        if self.teacher is not None:
            d["teacher"] = self.teacher.to_dict()
        return d

    def optimizer_label(self) -> str:
        """The optimiser as a reader names it, with its settings: ``AdamW`` (decoupled weight decay), ``Adam`` (no
        decay) or ``SGD`` (momentum 0.9, weight decay coupled into the gradient; ``SGD-Nesterov`` with Nesterov
        momentum), e.g. ``"AdamW lr 0.001 constant, wd 0.01"``, then the gradient clip if there is one and the
        precision if it is not float32 (``bf16 mixed precision``)."""
        name = {"adam": "AdamW" if self.weight_decay else "Adam", "sgd": "SGD",
                "sgd-nesterov": "SGD-Nesterov"}.get(self.optimizer, self.optimizer)
        clip = f", gradient norm clipped at {self.grad_clip:g}" if self.grad_clip is not None else ""
        mixed = f", {self.precision} mixed precision" if self.precision != "fp32" else ""
        return f"{name} lr {self.lr:g} {self.schedule}, wd {self.weight_decay:g}{clip}{mixed}"

    def key(self) -> str:
        """First 12 hex digits of the sha256 of the spec's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def folder_name(self) -> str:
        """The name of the spec's folder in the zoo: dataset, architecture, objective and key."""
        safe = self.dataset.replace(":", "_").replace("/", "_")
        return f"{safe}-{self.arch}-{self.objective}-{self.key()}"

    def folder(self) -> Path:
        return paths.zoo_dir() / self.folder_name()


ZOO_GROUPS: Registry[Callable[[Profile], dict]] = Registry("zoo group")


def zoo_specs(profile: str | Profile, group: Optional[str] = None) -> dict[str, Spec]:
    """Named specs of every zoo group (or of ``group``) under ``profile``."""
    prof = get_profile(profile)
    groups = [group] if group else list(ZOO_GROUPS)
    specs: dict[str, Spec] = {}
    for g in groups:
        specs.update(ZOO_GROUPS[g](prof))
    return specs


def resolve(name_or_spec: str | Spec, profile: str | Profile) -> Spec:
    """A spec, given itself or its zoo name under ``profile``. The profile is required: one name is a different
    model under every profile."""
    if isinstance(name_or_spec, Spec):
        return name_or_spec
    specs = zoo_specs(profile)
    if name_or_spec not in specs:
        hint = "" if specs else " No zoo group is registered: `import rilib.chapters` registers the book's models."
        raise UnknownNameError(f"Unknown model {name_or_spec!r} in the {get_profile(profile).name} zoo. "
                         f"Valid names: {', '.join(specs)}.{hint}")
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


def hardware() -> dict:
    """Where this process computes, as far as it decides the last bits of the results: the device (``cpu`` or
    ``cuda``; on a GPU its name), the instruction set PyTorch's CPU kernels use (``AVX512``, ``AVX2``, ...) and the
    threads. A spec trained again on the same CPU hardware gives the same weights, bit for bit; on another
    instruction set or thread count the floating-point sums can round differently, so the weights can differ in their
    last bits, and a claim on the edge of its test can move. Each model records it (``metrics.json``), and so does
    the ledger."""
    machine = timing.machine()  # the one place that reads the instruction set and the GPU
    found = {"device": device().type, "cpu_capability": machine["cpu_capability"], "threads": torch.get_num_threads()}
    if "gpu" in machine:
        found["gpu"] = machine["gpu"]
    return found


def describe_hardware(found: dict | None) -> str:
    """:func:`hardware`'s record in words, e.g. ``cpu AVX512, 1 thread(s)``; ``unrecorded hardware`` for None (a model
    trained before models recorded it)."""
    if not found:
        return "unrecorded hardware"
    where = found.get("gpu") or f"{found.get('device', '?')} {found.get('cpu_capability', '?')}"
    return f"{where}, {found.get('threads', '?')} thread(s)"


def device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def is_trained(spec: Spec) -> bool:
    """Whether the spec's folder holds a model and its metrics (see :func:`verify` for whether they are intact)."""
    return (spec.folder() / "model.pt").exists() and (spec.folder() / "metrics.json").exists()


def _retrain_hint(folder: Path) -> str:
    return (f"Run `rilib zoo train --retrain NAME` (`rilib zoo list` shows the names) or "
            f"rilib.zoo.train(spec, retrain=True): {folder} is trained again from its spec (the old folder is kept "
            f"until the new model is complete).")


def verify(spec: Spec) -> dict:
    """Check a trained spec: ``metrics.json`` readable and ``model.pt`` matching the sha256 it recorded. Returns
    the metrics; raises :class:`RilibError` naming the artefact and how to fix it."""
    folder = spec.folder()
    info = metrics(spec)
    weights = folder / "model.pt"
    if not weights.exists():
        raise RilibError(f"Checkpoint {weights} is missing. {_retrain_hint(folder)}")
    found = _sha256(weights)
    if found != info.get("sha256"):
        raise RilibError(f"Checkpoint {weights} is corrupt or was modified: its sha256 is {found[:16]}…, "
                         f"but metrics.json recorded {str(info.get('sha256'))[:16]}…. {_retrain_hint(folder)}")
    return info


def check(spec: Spec) -> dict:
    """The state of a spec's artefacts, for ``rilib zoo verify``: ``model`` (``ok``, ``not trained``,
    ``interrupted`` or ``corrupt``), ``evaluations`` (``ok (N)``, ``none`` or ``corrupt``), ``detail`` (what is
    wrong and how to fix it) and ``problem`` (bool)."""
    folder = spec.folder()
    out = {"model": "not trained", "evaluations": "none", "detail": "", "problem": False}
    if is_trained(spec):
        try:
            verify(spec)
            out["model"] = "ok"
        except RilibError as exc:
            out.update(model="corrupt", detail=str(exc), problem=True)
    elif _set_aside(folder).exists():
        out["model"] = "interrupted"
        out["detail"] = (f"a retraining was killed; the previous model is set aside in {_set_aside(folder).name}, and "
                         f"`rilib zoo train NAME` puts it back")
    elif (folder / "checkpoint.pt").exists():
        out["model"] = "interrupted"
        out["detail"] = "an interrupted run; `rilib zoo train NAME` resumes it after its last complete epoch"
    evals = folder / "evals.json"
    if evals.exists():
        try:
            out["evaluations"] = f"ok ({len(paths.read_json(evals))})"
        except (ValueError, OSError):
            out["evaluations"] = "corrupt"
            out["problem"] = True
            out["detail"] = (out["detail"] + " " if out["detail"] else "") + (
                f"{evals} cannot be read; the next evaluation sets it aside and recomputes.")
    return out


def _lock_path(spec: Spec) -> Path:
    return paths.zoo_dir() / ".locks" / f"{spec.folder().name}.lock"


def train(spec: Spec, *, progress: bool = True, on_epoch_end=None, retrain: bool = False) -> Path:
    """Train ``spec`` unless it is already in the zoo (verified by :func:`verify`); return its folder.

    - A cached model whose checkpoint does not match its recorded sha256 is never reported as trained: this raises
      :class:`RilibError` saying how to retrain, and ``retrain=True`` deletes the folder and trains afresh.
    - A spec with a ``teacher`` first trains (or finds) the teacher, then hands the loaded teacher to its objective.
    - Training holds a per-spec file lock: a second process asking for the same spec waits, then finds it trained;
      if the first process died, the second resumes its run.
    - An interrupted run (a ``checkpoint.pt`` without ``model.pt``) resumes after its last complete epoch.
    - A retraining keeps the previous model until the new one is complete: an interrupted or failed retraining puts
      it back, and so does the next run after a killed one (:func:`_settle_killed_retraining`).
    - With ``RILIB_TRAIN=0`` a model that is not in the zoo raises :class:`RilibError` instead of training.
    """
    folder = spec.folder()
    killed_retraining = _set_aside(folder).exists()  # settled below, under the lock
    if not retrain and is_trained(spec) and not killed_retraining:
        verify(spec)
        return folder
    if not paths.training_allowed() and not killed_retraining:
        raise _training_forbidden(spec)
    if spec.teacher is not None:
        train(spec.teacher, progress=progress)
    with paths.file_lock(_lock_path(spec), waiting=f"rilib: waiting for another process that trains {folder.name}"):
        _settle_killed_retraining(folder)
        if not retrain and is_trained(spec):  # trained by another process while this one waited for the lock
            verify(spec)
            return folder
        if not paths.training_allowed():
            raise _training_forbidden(spec)
        with _kept_until_replaced(folder) if retrain else contextlib.nullcontext():
            with timing.timed("train", folder.name):
                _train(spec, folder, progress, on_epoch_end)
    return folder


def _training_forbidden(spec: Spec) -> RilibError:
    return RilibError(f"{spec.folder().name} is not in the zoo ({paths.zoo_dir()}), and RILIB_TRAIN=0 forbids "
                      f"training it. Unpack a packed zoo that holds it (`rilib zoo unpack FILE|URL`), or unset "
                      f"RILIB_TRAIN to train it.{_other_precision_hint(spec)}")


def _other_precision_hint(spec: Spec) -> str:
    """A hint when the zoo holds ``spec`` trained in another precision (a zoo packed on a machine that resolved the
    profile's ``auto`` precision differently): the ``RILIB_PRECISION`` that finds it."""
    for other in ("fp32", "bf16"):
        if other != spec.precision and is_trained(replace(spec, precision=other)):
            return (f" The zoo holds it trained in {other} ({replace(spec, precision=other).folder_name()}): set "
                    f"RILIB_PRECISION={other} to use that zoo's models.")
    return ""


def _set_aside(folder: Path) -> Path:
    """Where a retraining keeps the previous ``folder`` until the new model is complete."""
    return folder.with_name(f".{folder.name}.before-retrain")


def _settle_killed_retraining(folder: Path) -> None:
    """Called with the spec's lock held. A folder set aside (:func:`_kept_until_replaced`) that is still there means
    that a retraining was killed (``kill -9``, a power cut) before it could put the previous model back or delete
    it. If the new model was completed, the previous one is obsolete and deleted. Otherwise the previous folder is
    put back, as an interrupted retraining puts it back, and the partial new run is discarded: a killed retraining
    loses nothing, and a second retraining cannot delete the only complete model."""
    old = _set_aside(folder)
    if not old.exists():
        return
    if (folder / "model.pt").exists() and (folder / "metrics.json").exists():
        shutil.rmtree(old)
        return
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(old, folder)
    print(f"rilib: a retraining of {folder.name} was killed before it completed; its previous folder is restored.",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def _kept_until_replaced(folder: Path):
    """For a retraining: move ``folder`` aside, and delete it only once the body (the new training) has completed;
    if the body fails or is interrupted, put the old folder back, so a failed retraining loses nothing (and if the
    process is killed, the next one to take the spec's lock puts it back: :func:`_settle_killed_retraining`)."""
    old = _set_aside(folder)
    if folder.exists():
        os.replace(folder, old)
    try:
        yield
    except BaseException:
        if old.exists():
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(old, folder)
            print(f"rilib: the retraining of {folder.name} did not complete; its previous folder is restored.",
                  file=sys.stderr, flush=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _train(spec: Spec, folder: Path, progress: bool, on_epoch_end) -> None:
    params = spec.param_dict
    if spec.teacher is not None:
        params["teacher"] = load(spec.teacher)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise paths.cannot_write(folder, exc) from None
    paths.atomic_write_text(folder / "spec.json", json.dumps(spec.to_dict(), indent=2))
    ds = load_dataset(spec.dataset, spec.n_train, spec.n_test)
    model = _initial(spec, ds.shape, ds.num_classes, ds.mean, ds.std)
    t0 = time.perf_counter()
    history = fit(model, ds, objective=spec.objective, params=params, epochs=spec.epochs,
                  batch_size=spec.batch_size, optimizer=spec.optimizer, lr=spec.lr,
                  weight_decay=spec.weight_decay, schedule=spec.schedule, eps_warmup=spec.eps_warmup,
                  augment=spec.augment, seed=spec.seed, monitor_eps=spec.monitor_eps,
                  grad_clip=spec.grad_clip, precision=spec.precision, checkpoint=folder / "checkpoint.pt", progress=progress,
                  on_epoch_end=on_epoch_end, device=device())
    weights = paths.save_atomic({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
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
        "hardware": hardware(),
    }
    paths.atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
    (folder / "checkpoint.pt").unlink(missing_ok=True)


def _initial(spec: Spec, in_shape, num_classes: int, mean, std):
    with seeded(spec.seed):
        return create_model(spec.arch, tuple(in_shape), num_classes, mean, std)


def initial_model(spec: Spec) -> Classifier:
    """The weights a trained spec started from: its architecture initialised under its seed, exactly as
    training drew them (for measuring how far training moved the filters)."""
    info = metrics(spec)
    return _initial(spec, info["in_shape"], info["num_classes"], info["mean"], info["std"]).eval()


def metrics(spec: Spec) -> dict:
    """The ``metrics.json`` of a trained spec."""
    path = spec.folder() / "metrics.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RilibError(f"Model {spec.key()} is not trained yet ({path} is missing). "
                         f"Train it with `rilib zoo train` or rilib.zoo.get(...).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RilibError(f"{path} is not valid JSON ({exc}). {_retrain_hint(path.parent)}") from None


def load(spec: Spec) -> Classifier:
    """Load a trained spec: :func:`verify` ``model.pt`` against its recorded sha256, then load weights only."""
    folder = spec.folder()
    info = verify(spec)
    weights = folder / "model.pt"
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        with seeded(0):  # the initial weights are overwritten; drawing them must not move the caller's generator
            model = create_model(spec.arch, info["in_shape"], info["num_classes"], info["mean"], info["std"])
        model.load_state_dict(state)
    except Exception as exc:  # unpickling or shape errors: say what and how to fix
        raise RilibError(f"Could not load {weights} as a {spec.arch} state_dict ({exc}). "
                         f"{_retrain_hint(folder)}") from None
    # channels_last: faster 3×3 convolutions on the CPU (benchmarks/channels_last.py).
    return model.to(device=device(), memory_format=torch.channels_last).eval()


def get(name_or_spec: str | Spec, profile: str | Profile, *, progress: bool = True) -> Classifier:
    """The trained model for a zoo name (under ``profile``) or a spec: trained on first use, then cached."""
    spec = resolve(name_or_spec, profile)
    train(spec, progress=progress)
    return load(spec)


def delete(spec: Spec) -> bool:
    """Remove a spec's folder from the zoo, so that it is trained again; False if there was nothing to remove.
    Raises :class:`RilibError` if the folder exists but cannot be removed."""
    folder = spec.folder()
    # with what a killed retraining set aside, which the next training would otherwise put back
    present = [f for f in (folder, _set_aside(folder)) if f.exists()]
    if not present:
        return False
    try:
        for f in present:
            shutil.rmtree(f)
    except OSError as exc:
        raise RilibError(f"Could not delete {folder} ({type(exc).__name__}: {exc}). Check its permissions, "
                         f"remove it by hand, and train again.") from None
    return True


def evaluate(name_or_spec: str | Spec, attack, profile: str | Profile, n: Optional[int] = None,
             progress: bool = True) -> float:
    """Robust accuracy of a zoo model under ``attack`` on the first ``n`` test images, cached in evals.json.

    ``attack`` follows the protocol of :mod:`rilib.attacks`: ``attack(model, x, y)``, ``describe()`` and
    ``cache_key()``, the key naming every setting (a custom loss by its code). ``n=None`` uses all test images.
    The attack's random starts are seeded (seed 0) in a fork, so the caller's random state is untouched. A corrupt
    ``evals.json`` is set aside with a warning and the evaluation is recomputed.
    """
    return evaluation(name_or_spec, attack, profile, n, progress)["robust_acc"]


def _evaluation_key(attack, n: Optional[int]) -> str:
    """The key of ``attack``'s evaluation on the first ``n`` test images in a model's ``evals.json``; it holds
    :data:`rilib.paths.DATA_VERSION`, so an evaluation of other test images is not read back."""
    return json.dumps({**attack.cache_key(), "n": n, "data version": paths.DATA_VERSION}, sort_keys=True)


def evaluation(name_or_spec: str | Spec, attack, profile: str | Profile, n: Optional[int] = None,
               progress: bool = True) -> dict:
    """The cached record behind :func:`evaluate`: ``robust_acc``, ``attack`` (its description), ``n`` and
    ``seconds``. For a chain of attacks (:class:`rilib.attacks.WorstOf`) also ``stages``: per attack of the chain,
    its description, the accuracy left after it and every earlier one, and its seconds.

    A chain's first attack runs exactly as it would alone (:func:`rilib.evaluate.staged_robust_accuracy`), so its
    result is cached as that attack's own record too, marked ``from`` the chain: asking for it later (chapter 1's
    strong PGD beside its headline chain) reads the same number instead of running the attack again."""
    spec = resolve(name_or_spec, profile)
    train(spec, progress=progress)  # trained on first use; a cached model is verified by its sha256
    key = _evaluation_key(attack, n)
    path = spec.folder() / "evals.json"
    cached = paths.load_cache(path, paths.read_json) or {}
    if key in cached:  # the model is loaded only when there is something to compute
        return cached[key]
    model = load(spec)
    ds = load_dataset(spec.dataset, spec.n_train, spec.n_test)
    x, y = ds.x_test[:n], ds.y_test[:n]
    t0 = time.perf_counter()
    record, first = {"attack": attack.describe(), "n": len(y)}, {}
    with seeded(0), timing.timed("evaluate", f"{spec.folder().name}: {attack.describe()}"):
        if hasattr(attack, "run"):
            shares, seconds = staged_robust_accuracy(model, x, y, attack, progress=progress, desc=attack.describe())
            record["robust_acc"] = shares[-1]
            record["stages"] = [{"attack": a.describe(), "robust_acc": s, "seconds": t}
                                for a, s, t in zip(attack.attacks, shares, seconds)]
            a = attack.attacks[0]
            first = {_evaluation_key(a, n): {
                "attack": a.describe(), "n": len(y), "robust_acc": shares[0], "seconds": seconds[0],
                "from": f"the first attack of {attack.describe()}"}}
        else:
            record["robust_acc"] = robust_accuracy(model, x, y, attack, progress=progress, desc=attack.describe())
    record["seconds"] = time.perf_counter() - t0
    # Another process (a chapter running beside this one) may have added entries meanwhile: re-read and merge under
    # a lock, so neither one's entry is lost.
    with paths.file_lock(paths.zoo_dir() / ".locks" / f"{spec.folder().name}.evals.lock", required=False):
        cached = {**first, **(paths.load_cache(path, paths.read_json) or {})}
        cached[key] = record
        paths.store_cache(path, json.dumps(cached, indent=2).encode())
    return record


def default_jobs() -> int:
    """How many models :func:`train_many` trains (and chapters :func:`rilib.book.runner.run` executes) at once by
    default: one per CPU core on a CPU, one on a GPU (the processes would share it). The book's small networks
    train 1.0–1.3 times faster as one single-threaded process per core than as one process on every core
    (``benchmarks/processes.py``), and processes that each take every core slow each other down."""
    import os
    return 1 if device().type != "cpu" else max(1, os.cpu_count() or 1)


def _cost(spec: Spec) -> float:
    """A rough relative cost of training ``spec``, to start the longest runs first: epochs × training images ×
    forward-backward passes per batch (the attack's steps + 1 for adversarial objectives)."""
    p = spec.param_dict
    passes = 1 + (p.get("steps", 10) if spec.objective in ("pgd", "trades") else 1 if spec.objective == "fgsm_rs"
                  else 0)
    return spec.epochs * (spec.n_train or 60000) * passes


def _worker_init(threads: int, parent: int) -> None:
    """Set up a :func:`train_many` worker: ``threads`` threads, and a way to stop when the run is stopped.

    - SIGINT and SIGTERM raise KeyboardInterrupt in the model being trained, once (:func:`stopping.interrupt_once`):
      it stops as under Ctrl-C (a retraining puts the old model back; the checkpoint of the last complete epoch
      stays).
    - If the process that started it (``parent``) is gone, killed however it was killed, the worker interrupts
      itself the same way and exits 10 s later (:func:`stopping.stop_with_parent`): a worker never trains on for
      nobody, holding its model's lock."""
    torch.set_num_threads(threads)
    stopping.interrupt_once()
    stopping.stop_with_parent(parent, then="The model resumes from its last epoch checkpoint next time.")


def _interrupt_workers() -> None:
    """Signal every worker process of this process's pool (its live children) to stop, as Ctrl-C would: the
    interrupt may have reached only this process (``kill PID`` sends SIGTERM to one process)."""
    import multiprocessing
    import signal
    for child in multiprocessing.active_children():
        with contextlib.suppress(OSError):
            os.kill(child.pid, signal.SIGINT)


def _epoch_line(name: str, epochs: int):
    """An ``on_epoch_end`` that prints one line per epoch, tagged with the model's name (parallel runs share a
    terminal, so no progress bars)."""
    def report(epoch: int, record: dict) -> None:
        robust = record.get("monitor_robust_acc")
        monitor = (f", PGD-10 monitor {robust:.3f} (first {record.get('monitor_n') or '?'} test images)"
                   if robust is not None else "")
        print(f"[rilib] {name}: epoch {epoch + 1}/{epochs}, train loss {record['train_loss']:.3f}, test acc "
              f"{record['test_acc']:.3f}{monitor}, {record['seconds']:.0f} s", flush=True)
    return report


def _train_one(name: str, spec: Spec, retrain: bool) -> tuple[str, bool, float]:
    """Train one spec in a worker; return (name, whether it was cached, seconds)."""
    cached = not retrain and is_trained(spec)
    t0 = time.perf_counter()
    train(spec, retrain=retrain, progress=False, on_epoch_end=None if cached else _epoch_line(name, spec.epochs))
    return name, cached, time.perf_counter() - t0


@contextlib.contextmanager
def _stopping_workers_on_interrupt():
    """Around the loop of :func:`train_many`, inside its pool: on an interrupt (or any error raised by the loop
    itself), signal the workers before the pool waits for them, so that it waits seconds, not until their models
    are trained. A model's own failure is not raised here: the loop keeps it until the running ones finish."""
    try:
        yield
    except BaseException:
        _interrupt_workers()
        raise


def train_many(specs: dict[str, Spec], *, jobs: Optional[int] = None, retrain: bool = False,
               report: Callable[[str, Spec, bool, float], None] = lambda *a: None) -> None:
    """Train every spec of ``specs`` (name → spec) that is not cached, ``jobs`` at a time (default
    :func:`default_jobs`), each process with ``cores // jobs`` threads; call ``report(name, spec, cached,
    seconds)`` as each one finishes.

    - The longest runs start first (:func:`_cost`), so the last one to finish is short.
    - A distillation student starts only once its teacher (if it is in ``specs``) has finished.
    - Each spec is trained by :func:`train`, with its per-spec lock and checkpoint: a run interrupted here resumes
      next time, and another process training the same spec meanwhile is waited for, not duplicated.
    - The first failure stops the models not yet started and is raised once the running ones have finished.
    - An interrupt (Ctrl-C, or SIGTERM turned into one by the command line) stops the running ones too, each at
      its last epoch checkpoint; so does the death of this process (:func:`_worker_init`).
    ``jobs=1`` trains in this process, one after the other, with a progress bar.
    """
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise RilibError(f"jobs must be 1 or more, not {jobs}.")
    order = sorted(specs, key=lambda n: -_cost(specs[n]))
    if not retrain:  # cached models are verified and reported here, without starting a process
        for name in [n for n in order if is_trained(specs[n])]:
            t0 = time.perf_counter()
            train(specs[name])
            report(name, specs[name], True, time.perf_counter() - t0)
            order.remove(name)
    if jobs == 1 or len(order) < 2:
        for name in order:
            cached = not retrain and is_trained(specs[name])
            t0 = time.perf_counter()
            train(specs[name], retrain=retrain)
            report(name, specs[name], cached, time.perf_counter() - t0)
        return
    jobs = min(jobs, len(order))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending = {specs[n] for n in order}  # not trained yet: a student waits while its teacher is among these
    waiting, running, failure = list(order), {}, None
    # spawn, not fork: a forked child of a process whose OpenMP pool already ran can hang in its first parallel op.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                             initargs=(threads, os.getpid())) as pool, _stopping_workers_on_interrupt():
        while waiting or running:
            if failure is None:
                for name in [n for n in waiting if specs[n].teacher is None or specs[n].teacher not in pending]:
                    if len(running) >= jobs:
                        break
                    waiting.remove(name)
                    running[pool.submit(_train_one, name, specs[name], retrain)] = name
            else:
                waiting.clear()
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                pending.discard(specs[name])
                try:
                    _, cached, seconds = fut.result()
                except Exception as exc:  # noqa: BLE001 - re-raised below, after the running ones finish
                    failure = failure or exc
                    continue
                report(name, specs[name], cached, seconds)
    if failure is not None:
        raise failure
    if waiting:  # cannot happen unless a teacher is neither trained nor pending: never skip a model silently
        raise RilibError(f"Models not trained: {', '.join(waiting)}; their teachers did not train.")
