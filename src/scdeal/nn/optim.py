"""Adam for scdeal's training loops: torch's fused kernel without torch's compiler hooks."""

from __future__ import annotations

import torch
from torch.optim.adam import _fused_adam

__all__ = ["FusedAdam"]


class FusedAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)``, stepped without importing ``torch._dynamo``.

    torch's optimizers import the compiler (``torch._dynamo``) the first time a parameter group
    is added, a step is taken or gradients are zeroed, to cooperate with ``torch.compile``,
    which scdeal does not use: 1.7 s per process, an eighth of a run that reuses the cache
    (benchmarks/README.md, "Fast runs"). This class calls torch's own undecorated methods
    (``__wrapped__``) and, for the step, torch's state layout (``_init_group``) and the same
    fused kernel (``torch.optim.adam._fused_adam``) with the same arguments, so the parameters
    it produces are identical to torch's (tests/test_nn.py). Only plain use is supported: no
    closure, no gradient scaling, no ``differentiable``.

    Examples
    --------
    >>> import torch
    >>> from scdeal.nn.optim import FusedAdam
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = FusedAdam([w], lr=0.1)
    >>> (w ** 2).sum().backward()
    >>> opt.step()
    >>> opt.zero_grad()
    >>> [round(v, 4) for v in w.tolist()], w.grad is None
    ([0.9, 0.9, 0.9], True)
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, fused=True)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - as torch.optim.Adam.step
        if closure is not None:
            raise ValueError("FusedAdam.step takes no closure")
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = [], [], [], [], [], []
            has_complex = self._init_group(group, params, grads, exp_avgs, exp_avg_sqs,
                                           max_exp_avg_sqs, steps)
            beta1, beta2 = group["betas"]
            _fused_adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, None, None,
                        amsgrad=group["amsgrad"], has_complex=has_complex, beta1=beta1,
                        beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=group["maximize"],
                        capturable=group["capturable"], differentiable=False,
                        decoupled_weight_decay=group["decoupled_weight_decay"])
        return None

    # torch's own bodies, without the lazy ``import torch._dynamo`` of their decorator.
    def add_param_group(self, param_group: dict) -> None:  # noqa: D102 - as torch's
        torch.optim.Optimizer.add_param_group.__wrapped__(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: D102 - as torch's
        torch.optim.Optimizer.zero_grad.__wrapped__(self, set_to_none)
