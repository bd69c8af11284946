"""The torch MLP and its training loop, free of any logging.

Progress leaves through callbacks (``on_step``, ``on_epoch``), so the same
loop serves the demo, tests and anyone reading it as an example. torch is
imported inside the functions: ``mlbox`` must start fast without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.demo.digits import N_CLASSES, N_FEATURES, Split
from mlbox.demo.evaluation import Evaluation, evaluate

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class MlpConfig:
    hidden: int
    lr: float
    epochs: int
    batch_size: int = 64
    weight_decay: float = 1e-4
    seed: int = 0


def limit_threads(n: int) -> int:
    """Cap torch's intra-op threads (a model this small only loses time to more); returns the cap."""
    import torch

    n = max(1, min(n, torch.get_num_threads()))
    torch.set_num_threads(n)
    return n


def build_mlp(hidden: int, n_in: int = N_FEATURES, n_classes: int = N_CLASSES) -> nn.Sequential:
    """Linear → ReLU → Linear; rebuild it with the logged ``hidden`` to load a state_dict."""
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def build_classifier(hidden: int, n_in: int = N_FEATURES, n_classes: int = N_CLASSES) -> nn.Sequential:
    """`build_mlp` plus softmax and argmax: what the registry loads a logged state dict into.

    The added layers hold no weights, so the trained MLP's state dict loads as
    is, and the served model answers class labels like the scikit-learn ones
    (softmax first, so its ties break exactly as `predict_proba`'s argmax).
    """
    from torch import nn

    class Argmax(nn.Module):
        def forward(self, x: Any) -> Any:
            return x.argmax(dim=1)

    return nn.Sequential(*build_mlp(hidden, n_in, n_classes), nn.Softmax(dim=1), Argmax())


def predict_proba(model: nn.Module, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()


@dataclass
class Adam:
    """Adam with L2 weight decay, as ``torch.optim.Adam(lr, weight_decay=...)`` computes it.

    Written out because each demo trial runs in a fresh job process, and the
    first use of any ``torch.optim`` optimizer imports ``torch._dynamo``: as
    long as importing torch itself (2-6 s on a busy 2-core machine), paid again
    by every job for a model that trains in half a second.
    """

    params: list[Any]
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    steps: int = 0

    def __post_init__(self) -> None:
        import torch

        self._m = [torch.zeros_like(p) for p in self.params]
        self._v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        self.steps += 1
        b1, b2 = self.betas
        correction1 = 1 - b1**self.steps
        correction2_sqrt = (1 - b2**self.steps) ** 0.5
        with torch.no_grad():
            for p, m, v in zip(self.params, self._m, self._v, strict=True):
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
                m.lerp_(grad, 1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                denom = (v.sqrt() / correction2_sqrt).add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / correction1)


def train_mlp(
    config: MlpConfig,
    split: Split,
    *,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int, float, Evaluation], None] | None = None,
) -> nn.Sequential:
    """Adam on cross-entropy; ``on_step(step, loss)`` per batch, ``on_epoch(epoch, train_loss, val)``.

    Seeded (weights and batch order), so the same config gives the same model.
    """
    import torch
    from torch import nn

    torch.manual_seed(config.seed)
    order_gen = torch.Generator().manual_seed(config.seed)
    x = torch.from_numpy(split.x_train)
    y = torch.from_numpy(split.y_train)
    model = build_mlp(config.hidden)
    optimizer = Adam(list(model.parameters()), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = len(x)
    step = 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=order_gen)
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            value = float(loss.item())
            total += value * len(idx)
            if on_step is not None:
                on_step(step, value)
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, total / n, evaluate(split.y_val, predict_proba(model, split.x_val)))
    return model
