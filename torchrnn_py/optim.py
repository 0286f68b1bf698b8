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
    ``foreach``: update tensors of one device and dtype together with ``torch._foreach_*``
    (bit-identical to one at a time); None uses it where it is faster (see _use_foreach).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 lr_decay=0.0, foreach=None):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid Adam hyper-parameters")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        lr_decay=lr_decay)
        super().__init__(params, defaults)
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not _any_foreach(self.foreach, params):
                self._update_each(group, params)            # the CPU's default: no grouping
                continue
            for (device, _), same_kind in _by_device_and_dtype(params).items():
                if _use_foreach(self.foreach, device):
                    self._update_foreach(group, same_kind)
                else:
                    self._update_each(group, same_kind)
        return loss

    def _state_and_step_size(self, group, p, beta1, beta2):
        """``p``'s state (created at step 0), counting this step, and the step's size."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
        clr = group["lr"] / (1 + state["step"] * group["lr_decay"])
        state["step"] += 1
        t = state["step"]
        return state, clr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)

    def _update_each(self, group, params):
        """The update, one parameter tensor at a time, operation by operation."""
        beta1, beta2 = group["betas"]
        weight_decay, eps = group["weight_decay"], group["eps"]
        for p in params:
            grad = p.grad
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            state, step_size = self._state_and_step_size(group, p, beta1, beta2)
            m, v = state["m"], state["v"]
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = v.sqrt().add_(eps)
            p.addcdiv_(m, denom, value=-step_size)

    def _update_foreach(self, group, params):
        """:meth:`_update_each`'s operations, in the same order, on tensors of one device and
        dtype at once (``torch._foreach_*``: one kernel launch per operation on CUDA)."""
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        if group["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        states, step_sizes = zip(*(self._state_and_step_size(group, p, beta1, beta2)
                                        for p in params))
        ms = [state["m"] for state in states]
        vs = [state["v"] for state in states]
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, grads, alpha=1 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
        denoms = torch._foreach_sqrt(vs)
        torch._foreach_add_(denoms, group["eps"])
        torch._foreach_addcdiv_(params, ms, denoms, [-s for s in step_sizes])

    def reset_state(self):
        """Forget moments and step counts, as train.lua does when it decays the rate
        (it builds a fresh config table, which is where optim.adam keeps its state)."""
        self.state.clear()


def _by_device_and_dtype(tensors):
    """``{(device, dtype): [tensor, ...]}``, in the order given (the foreach ops need one
    device and dtype per call)."""
    groups = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return groups


def _use_foreach(foreach, device):
    """``foreach`` if set; else True on CUDA, where it saves a kernel launch per tensor.
    (On the CPU PyTorch runs the foreach ops one tensor at a time anyway.)"""
    return device.type == "cuda" if foreach is None else bool(foreach)


def _any_foreach(foreach, tensors):
    """Whether :func:`_use_foreach` holds for any of ``tensors`` (checked without grouping)."""
    return any(t.is_cuda for t in tensors) if foreach is None else bool(foreach)


def clamp_gradients_(parameters, grad_clip, foreach=None):
    """Clamp every gradient element to ``[-grad_clip, grad_clip]`` (torch-rnn's
    ``grad_params:clamp``; not norm clipping). Does nothing when grad_clip <= 0.
    ``foreach`` as :class:`TorchAdam`'s (same result either way)."""
    if grad_clip <= 0:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not _any_foreach(foreach, grads):
        for g in grads:
            g.clamp_(-grad_clip, grad_clip)
        return
    for (device, _), same_kind in _by_device_and_dtype(grads).items():
        if _use_foreach(foreach, device):
            torch._foreach_clamp_min_(same_kind, -grad_clip)
            torch._foreach_clamp_max_(same_kind, grad_clip)
        else:
            for g in same_kind:
                g.clamp_(-grad_clip, grad_clip)
