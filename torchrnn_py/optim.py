"""torch/optim's Adam, as train.lua uses it, and torch-rnn's element-wise gradient clamp.

PyTorch's ``torch.optim.Adam`` adds epsilon to the bias-corrected ``sqrt(v_hat)``;
torch/optim adds it to the uncorrected ``sqrt(v)`` and folds both corrections into the
step size. The two differ most in the first steps, enough to move a loss curve by 1e-4
within 100 iterations, so reproducing torch-rnn's runs needs this one.
"""
import math

import torch


class TorchAdam(torch.optim.Optimizer):
    """Adam with torch/optim's update (``optim.adam``), per element:

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``x -= lr_t sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``,
    with ``lr_t = lr / (1 + (t - 1) lr_decay)`` (torch/optim's ``learningRateDecay``).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 lr_decay=0.0):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid Adam hyper-parameters")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        lr_decay=lr_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                clr = group["lr"] / (1 + state["step"] * group["lr_decay"])
                state["step"] += 1
                t = state["step"]
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = v.sqrt().add_(group["eps"])
                step_size = clr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                p.addcdiv_(m, denom, value=-step_size)
        return loss

    def reset_state(self):
        """Forget moments and step counts, as train.lua does when it decays the rate
        (it builds a fresh config table, which is where optim.adam keeps its state)."""
        self.state.clear()


def clamp_gradients_(parameters, grad_clip):
    """Clamp every gradient element to ``[-grad_clip, grad_clip]`` (torch-rnn's
    ``grad_params:clamp``; not norm clipping). Does nothing when grad_clip <= 0."""
    if grad_clip <= 0:
        return
    for p in parameters:
        if p.grad is not None:
            p.grad.clamp_(-grad_clip, grad_clip)
