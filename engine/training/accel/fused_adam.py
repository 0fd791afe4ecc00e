"""Fused Adam(W) called directly: the kernel `optimizer.step()` calls, without its per-step Python.

`torch._fused_adam_` is a private PyTorch API: it may change or go in any release. It is used only when it
is there with the signature this call was written for (`private_kernel`); otherwise the step calls the public
`optimizer.step()`, with the same numbers.
"""

from __future__ import annotations

from typing import Callable

import torch

# the arguments this module passes, by name, as aten's schema lists them (torch 2.4 to 2.14 at least)
EXPECTED_ARGUMENTS = (
    "self grads exp_avgs exp_avg_sqs max_exp_avg_sqs state_steps "
    "lr beta1 beta2 weight_decay eps amsgrad maximize grad_scale found_inf"
).split()


def private_kernel(name: str) -> Callable | None:
    """`torch.<name>` where it exists with the expected arguments; None where it is missing or changed."""
    kernel = getattr(torch, name, None)
    try:
        schema = getattr(torch.ops.aten, name).default._schema
        names = [argument.name for argument in schema.arguments]
    except (AttributeError, RuntimeError):
        return None
    return kernel if kernel is not None and names == EXPECTED_ARGUMENTS else None


def direct_fused_adam(optimizer: torch.optim.Optimizer) -> Callable[[], None] | None:
    """A call of the fused Adam(W) kernel that `optimizer.step()` would make, without its per-step Python.

    Only for the plain case: one param group, fused, no amsgrad, maximize,
    capturable or differentiable. None otherwise (the step then calls
    `optimizer.step()`). Tests check it against `optimizer.step()`.
    """
    kernel = private_kernel("_fused_adamw_" if isinstance(optimizer, torch.optim.AdamW) else "_fused_adam_")
    if (
        kernel is None
        or type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW)
        or len(optimizer.param_groups) != 1
    ):
        return None
    group = optimizer.param_groups[0]
    if not group.get("fused") or any(group.get(k) for k in ("amsgrad", "maximize", "capturable", "differentiable")):
        return None
    if isinstance(optimizer, torch.optim.Adam) and group.get("decoupled_weight_decay"):
        kernel = private_kernel("_fused_adamw_")
        if kernel is None:
            return None

    one = torch.ones(
        (), device=group["params"][0].device
    )  # add_(a tensor): a third of the cost of add_(1) on a 0-d tensor

    def step() -> None:
        group = optimizer.param_groups[
            0
        ]  # read at each step: load_state_dict (a resume) replaces the groups and the state
        params, state = group["params"], optimizer.state
        states = [state[p] for p in params]
        steps = [s["step"] for s in states]
        for s in steps:
            s.add_(one)
        beta1, beta2 = group["betas"]
        kernel(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    return step
