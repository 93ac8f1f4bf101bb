"""Architectures by name. Inputs are images in [0, 1]; normalisation happens inside the model.

Every model is a :class:`Classifier`: ``normalize`` → ``features`` (image → penultimate vector, the
"representation" of Engstrom et al. 2019) → ``head`` (a linear layer to logits). Convolutions are 3×3
wherever the architecture allows, so the filter statistics of Gavrikov & Keuper (2022) apply.

Registered names: ``small-cnn`` (28×28×1 or 32×32×3), ``canvas-cnn`` (objects anywhere on a larger canvas),
``wong-mnist`` (Wong et al. 2020's MNIST network, 4×4 convolutions), ``tiny-cnn`` (for tests), ``lenet`` (LeCun et
al. 1998; the inversion chapter's independent judge), ``preact-resnet18`` (He et al. 2016, as used by Wong et al. 2020 and
Rice et al. 2020 for CIFAR-10).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .registry import Registry

ARCHITECTURES: Registry[Callable[..., "Classifier"]] = Registry("architecture")


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` for inputs shaped (N, C, H, W) in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``logits = head(features(normalize(x)))`` for x shaped (N, C, H, W) in [0, 1]."""

    def __init__(self, normalize: Normalize, features: nn.Module, head: nn.Linear):
        super().__init__()
        self.normalize = normalize
        self.features = features
        self.head = head

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer vector (N, D) for x in [0, 1]."""
        return self.features(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.representation(x))


#: Images per pass of the measurements that choose their own batches (the attacks of :mod:`rilib.evaluate`, the
#: alignments, Integrated Gradients' internal batches, deletion/insertion, the perceptual ball). On a 2-core CPU,
#: passes over thousands of MNIST images spill the cache: per image they cost 1.4× (2,500 images, forward and
#: backward) and 1.7× (4,096, forward only) what passes of 500 cost
#: (``benchmarks/batch_size.py``, two processes side by side as the book runs them). 500 is still a full batch for
#: a GPU.
PASS_BATCH = 500


def to_model(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``x`` on the device of ``model`` and, for floating-point ``x``, in its floating dtype: what every lens and
    chapter calls before it feeds a model, so that a model on a GPU (or in double precision) gets inputs it can
    use. Integer tensors (labels) keep their dtype."""
    ref = next(model.parameters(), None)
    if ref is None:
        ref = next(model.buffers(), None)
    if ref is None:
        return x
    dtype = ref.dtype if x.is_floating_point() and ref.is_floating_point() else x.dtype
    return x.to(device=ref.device, dtype=dtype)


def list_architectures(pattern: str = "*") -> list[str]:
    return ARCHITECTURES.names(pattern)


def create_model(name: str, in_shape: Sequence[int], num_classes: int,
                 mean: Sequence[float], std: Sequence[float]) -> Classifier:
    """Build architecture ``name`` for images shaped ``in_shape`` = (C, H, W) with ``num_classes`` outputs."""
    return ARCHITECTURES[name](tuple(in_shape), num_classes, mean, std)


def _conv_stack(in_ch: int, widths: Sequence[int]) -> list[nn.Module]:
    """3×3 convolutions with ReLU; every second one has stride 2."""
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(in_ch, w, 3, stride=2 if i % 2 else 1, padding=1), nn.ReLU(inplace=True)]
        in_ch = w
    return layers


def _cnn(in_shape, num_classes, mean, std, widths, hidden) -> Classifier:
    c, h, w = in_shape
    convs = nn.Sequential(*_conv_stack(c, widths))
    with torch.no_grad():
        flat = convs(torch.zeros(1, c, h, w)).numel()
    features = nn.Sequential(*convs, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True))
    return Classifier(Normalize(mean, std), features, nn.Linear(hidden, num_classes))


@ARCHITECTURES.register("small-cnn")
def small_cnn(in_shape, num_classes, mean, std) -> Classifier:
    """Four 3×3 convolutions (16, 32, 32, 64 channels; stride 2 in the 2nd and 4th), FC-128, FC-classes.

    About 0.43 M parameters on 28×28×1 input; half the widths of the usual (32, 32, 64, 64) in the first
    three layers, so that the chapter-1 zoo trains on a 2-core CPU in about ten minutes (see the README).
    """
    return _cnn(in_shape, num_classes, mean, std, (16, 32, 32, 64), 128)


@ARCHITECTURES.register("canvas-cnn")
def canvas_cnn(in_shape, num_classes, mean, std) -> Classifier:
    """Five 3×3 convolutions (16, 32, 32, 64, 64 channels; stride 2 in the 2nd to 4th), each followed by batch
    normalisation and ReLU as in VGG-BN, a global max-pool, FC-128, FC-classes: for objects anywhere on a larger
    canvas (``mnist-canvas``, 64×64).

    The receptive field of the last convolution is 33 pixels, the size of the largest digit, and the global
    max-pool makes the decision independent of where the digit lies (``small-cnn``'s position-specific fully
    connected layer reached 38 % test accuracy on the 4,000 training canvases). Without batch normalisation the
    network learnt slowly (85 % after 15 epochs) and PGD-AT stayed at chance; with it, 89 % after 4 epochs. Six
    ReLU layers: the candidates the perceptual-ball chapter regularises.
    """
    c = in_shape[0]
    layers: list[nn.Module] = []
    for w, stride in zip((16, 32, 32, 64, 64), (1, 2, 2, 2, 1)):
        layers += [nn.Conv2d(c, w, 3, stride=stride, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c = w
    features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, 128), nn.ReLU(inplace=True))
    return Classifier(Normalize(mean, std), features, nn.Linear(128, num_classes))


@ARCHITECTURES.register("deep-cnn")
def deep_cnn(in_shape, num_classes, mean, std) -> Classifier:
    """Eight 3×3 convolutions with ReLU (8, 8, 16, 16, 32, 32, 32, 32 channels; stride 2 in the 3rd, 5th and 7th),
    FC-128, FC-classes, without normalisation layers: the filter chapter's network for Gavrikov & Keuper's (2022)
    SGD recipe, deep enough that their depth bins hold more than one layer.

    About 0.1 M parameters, narrow so that PGD adversarial training at several seeds fits the cpu profile. Kaiming
    (He et al. 2015) initialisation: with PyTorch's default initialisation the plain stack stayed at chance under
    SGD in a probe. No batch normalisation: with it (in a probe, SGD at lr 0.1, coupled decay 0.01, 15 epochs) no
    kernel became sparse, while the paper's sparse kernels are what weight decay leaves of kernels that stopped
    receiving gradient.
    """
    c = in_shape[0]
    layers: list[nn.Module] = []
    for i, w in enumerate((8, 8, 16, 16, 32, 32, 32, 32)):
        layers += [nn.Conv2d(c, w, 3, stride=2 if i in (2, 4, 6) else 1, padding=1), nn.ReLU(inplace=True)]
        c = w
    convs = nn.Sequential(*layers)
    with torch.no_grad():
        flat = convs(torch.zeros(1, *in_shape)).numel()
    features = nn.Sequential(*convs, nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(inplace=True))
    model = Classifier(Normalize(mean, std), features, nn.Linear(128, num_classes))
    for m in model.modules():  # He et al. (2015): keeps the signal's scale through eight ReLU layers
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


@ARCHITECTURES.register("wong-mnist")
def wong_mnist(in_shape, num_classes, mean, std) -> Classifier:
    """The MNIST network of Wong et al. (2020), ``mnist_net`` in their ``fast_adversarial`` code (the network of
    Wong & Kolter 2018 too): two 4×4 convolutions with stride 2 (16, 32 channels), FC-100, FC-classes, on the raw
    [0, 1] image (their code normalises nothing, so ``mean`` and ``std`` are ignored). The network on which they
    report that FGSM with a random start matches PGD adversarial training on MNIST."""
    c, h, w = in_shape
    convs = nn.Sequential(nn.Conv2d(c, 16, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True))
    with torch.no_grad():
        flat = convs(torch.zeros(1, c, h, w)).numel()
    features = nn.Sequential(*convs, nn.Flatten(), nn.Linear(flat, 100), nn.ReLU(inplace=True))
    return Classifier(Normalize([0.0] * c, [1.0] * c), features, nn.Linear(100, num_classes))


@ARCHITECTURES.register("tiny-cnn")
def tiny_cnn(in_shape, num_classes, mean, std) -> Classifier:
    """Two 3×3 convolutions (8, 16 channels) and FC-32: for tests that train in seconds."""
    return _cnn(in_shape, num_classes, mean, std, (8, 16), 32)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity Mappings in Deep Residual Networks")."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


@ARCHITECTURES.register("preact-resnet18")
def preact_resnet18(in_shape, num_classes, mean, std) -> Classifier:
    """PreActResNet-18 for 32×32 inputs, the CIFAR-10 model of Wong et al. (2020) and Rice et al. (2020)."""
    c = in_shape[0]
    layers: list[nn.Module] = [nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)]
    in_planes = 64
    for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for s in (stride, 1):
            layers.append(PreActBlock(in_planes, planes, s))
            in_planes = planes
    layers += [nn.BatchNorm2d(512), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(Normalize(mean, std), nn.Sequential(*layers), nn.Linear(512, num_classes))


@ARCHITECTURES.register("lenet")
def lenet(in_shape, num_classes, mean, std) -> Classifier:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling: two 5×5 convolutions (6, 16), FC-120, FC-84.

    A different architecture from ``small-cnn`` (5×5 kernels, pooling instead of strides), used as an
    independent judge of generated and inverted images in the inversion chapter.
    """
    c, h, w = in_shape
    convs = nn.Sequential(nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
    with torch.no_grad():
        flat = convs(torch.zeros(1, c, h, w)).numel()
    features = nn.Sequential(*convs, nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(inplace=True),
                             nn.Linear(120, 84), nn.ReLU(inplace=True))
    return Classifier(Normalize(mean, std), features, nn.Linear(84, num_classes))
