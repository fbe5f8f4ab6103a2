"""Bring your own PyTorch model: describe it, apply a policy to it, evaluate policies on it.

Needs only ``torch`` (imported here, never by ``import mpq``)::

    import mpq, mpq.torch
    model = mpq.torch.describe(net, torch.zeros(1, 1, 28, 28))     # an mpq.Model
    ev = mpq.torch.evaluator(net, val_loader, calibration=train_loader)
    search = mpq.Search(model, mpq.Hardware("bismo-edge"), ev, method="haq",
                        budget="latency:0.5", episodes=60, warmup=10)
    best = search.run()
    with mpq.torch.quantized(net, best, calibration=train_loader):
        ...                                         # net now runs fake-quantized

What is quantized, and how (the built-in oneDNN runtime does exactly the same, and the tests
check it bit for bit):

* **Weights** of every ``Conv2d`` / ``Linear`` the policy names, per kernel (output channel),
  through libmpq's quantizer with its defaults: a *symmetric signed* grid per kernel,
  ``scale = max|w| / (2^(b-1) - 1)``, round half to even (HAQ's ``QModule._quantize_weight``).
  32 bits means float.
* **Activations**: the *input* of each of those layers, per layer, over the range calibrated on
  ``calibration`` (min-max over ``calib_batches`` batches of the float network, as the runtime's
  ``calib_batches=4``). Signedness follows the observed range: a non-negative range (post-ReLU
  maps, pixels in [0, 1]) gets an *unsigned* grid ``[0, hi]`` with ``2^b - 1`` steps, anything
  else a symmetric signed grid over ``max(|lo|, |hi|)``. (The plain ``mpq.fake_quant*`` functions
  default to symmetric *signed*, which wastes half the grid on post-ReLU data: pass
  ``signed=False`` there.)
* **BatchNorm** is not folded into the convolution (HAQ's ``QConv2d`` does not fold it, nor
  does the built-in runtime): the conv weights are quantized and BN runs in float with its
  running statistics. During a fine-tune BN is in training mode and updates those statistics;
  they are restored with everything else.
* Bias stays float.

Every tensor of ``module.state_dict()`` (weights, biases, BN statistics) is snapshotted on entry
and copied back on exit: after the ``with`` block the module is bit for bit what it was, also
after a fine-tune and also when the block raised.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import fakequant as _fq
from ._lib import InvalidArgumentError, MismatchError
from .model import Model, Policy, Quantizer

__all__ = ["describe", "quantized", "evaluator", "calibrate", "top1", "act_grid",
           "QuantizedModule", "TorchEvaluator", "FLOAT_BITS", "DEFAULT_CALIB_BATCHES"]

#: Bit width meaning "leave in float" (libmpq's MPQ_BITS_FLOAT).
FLOAT_BITS = 32
#: Calibration batches when not given: the built-in evaluator's ``calib_batches`` default.
DEFAULT_CALIB_BATCHES = 4

Batches = Iterable[Any]


# ---------------------------------------------------------------------------------------------
# describe


def _pair(v: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[1])


def describe(module: nn.Module, example_input: Any, name: Optional[str] = None,
             weights: bool = False) -> Model:
    """Traces one forward pass of ``module`` on ``example_input`` and returns the
    :class:`mpq.Model` of its quantizable layers, in execution order.

    * ``Conv2d`` (any ``groups``: depthwise convs are ``groups == in_channels``) and ``Linear``
      become layers named by their module path (``"layer1.0.conv1"``), the names
      :func:`quantized` uses to find them again. Input sizes are those seen in the trace
      (the batch is 1, as in the zoo).
    * A ``BatchNorm2d`` fed directly by a conv sets that layer's ``has_batchnorm``; which
      layers a ``ReLU`` (or ReLU6) follows is kept in ``model.torch_info[name]["relu"]``.
    * A module called more than once (weight sharing) is described at its first call.
    * ``weights=True`` also copies the current float weights into the model.

    For torchvision's resnet18/50, mobilenet_v2 and squeezenet1_0/1_1 at 224x224 the result
    equals ``mpq.Model.zoo(...)`` layer by layer (tested).
    """
    if not isinstance(module, nn.Module):
        raise InvalidArgumentError("describe: module must be a torch.nn.Module, got %s"
                                   % type(module).__name__)
    names = {m: n for n, m in module.named_modules()}
    layers: List[Tuple[str, nn.Module, Tuple[int, ...]]] = []
    seen = set()
    outputs: Dict[int, Tuple[torch.Tensor, str]] = {}
    bn_of: Dict[str, str] = {}
    relu_after: Dict[str, bool] = {}

    def layer_hook(mod, inputs, output):
        if mod in seen:
            return
        seen.add(mod)
        lname = names[mod]
        layers.append((lname, mod, tuple(inputs[0].shape)))
        outputs[id(output)] = (output, lname)  # the tensor kept alive: ids stay unique

    def follower_hook(mod, inputs, output):
        src = outputs.get(id(inputs[0]))
        if src is None or src[0] is not inputs[0]:
            return
        if isinstance(mod, nn.BatchNorm2d):
            bn_of.setdefault(src[1], names[mod])
            outputs[id(output)] = (output, src[1])  # conv -> BN -> ReLU still counts
        else:
            relu_after[src[1]] = True

    hooks = []
    for mod in module.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            hooks.append(mod.register_forward_hook(layer_hook))
        elif isinstance(mod, (nn.BatchNorm2d, nn.ReLU, nn.ReLU6)):
            hooks.append(mod.register_forward_hook(follower_hook))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            if isinstance(example_input, (tuple, list)):
                module(*example_input)
            else:
                module(example_input)
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
        outputs.clear()
    if not layers:
        raise InvalidArgumentError("describe: no Conv2d or Linear layer ran in the forward pass")

    model = Model(name or type(module).__name__.lower())
    info: Dict[str, Dict[str, Any]] = {}
    for lname, mod, shape in layers:
        bias = mod.bias is not None
        if isinstance(mod, nn.Conv2d):
            if len(shape) != 4:
                raise InvalidArgumentError("describe: %s: conv input of shape %s is not NCHW"
                                           % (lname, shape))
            kh, kw = _pair(mod.kernel_size)
            sh, sw = _pair(mod.stride)
            dh, dw = _pair(mod.dilation)
            if isinstance(mod.padding, str):  # "valid" / "same" (stride 1 only in torch)
                ph, pw = ((0, 0) if mod.padding == "valid"
                          else ((kh - 1) * dh // 2, (kw - 1) * dw // 2))
            else:
                ph, pw = _pair(mod.padding)
            model.add_layer(lname, kind="conv", in_channels=mod.in_channels,
                            out_channels=mod.out_channels, kernel_h=kh, kernel_w=kw,
                            stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw, dilation_h=dh,
                            dilation_w=dw, groups=mod.groups, in_h=shape[2], in_w=shape[3],
                            batch=1, has_bias=int(bias), has_batchnorm=int(lname in bn_of))
        else:
            model.add_fc(lname, mod.in_features, mod.out_features, bias=bias)
        info[lname] = {"module": type(mod).__name__, "batchnorm": bn_of.get(lname),
                       "relu": relu_after.get(lname, False)}
        if weights:
            _set_model_weights(model, lname, mod)
    model.torch_info = info
    return model


def _numpy_f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _set_model_weights(model: Model, lname: str, mod: nn.Module) -> None:
    b = None if mod.bias is None else _numpy_f32(mod.bias)
    model.set_weights(lname, _numpy_f32(mod.weight), b)


# ---------------------------------------------------------------------------------------------
# activation fake-quant with a straight-through gradient


def act_grid(lo: float, hi: float, bits: int) -> Tuple[float, int, bool]:
    """(scale, zero_point, signed) of the activation grid over a calibrated ``[lo, hi]``: the
    runtime's rule (``rt_fake_quant_act``): unsigned ``[0, hi]`` when ``lo >= 0``, else
    symmetric signed over ``max(|lo|, |hi|)``."""
    signed = lo < 0.0
    lo32, hi32 = np.float32(lo), np.float32(hi)
    scale, zp = _fq.params_from_range(min(lo32, np.float32(0)), max(hi32, np.float32(0)), bits,
                                      signed=signed)
    return scale, zp, signed


def _fq_act_numpy(x: np.ndarray, bits: int, grid: Tuple[float, int, bool]) -> np.ndarray:
    scale, zp, signed = grid
    return _fq.fake_quant(x, bits, scale, zp, signed=signed)


class _ActFakeQuant(torch.autograd.Function):
    """Forward: libmpq's kernel, bit for bit. Backward: straight-through inside the grid's
    range, zero outside (the clipped STE of mpq_fq_ste_backward)."""

    @staticmethod
    def forward(ctx, x, bits, grid, lo_hi):  # noqa: D401 - torch API
        xn = _numpy_f32(x)
        y = torch.from_numpy(_fq_act_numpy(xn, bits, grid)).to(x.device, x.dtype)
        ctx.save_for_backward(x)
        ctx.lo_hi = lo_hi
        return y

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.lo_hi
        mask = (x >= lo) & (x <= hi)
        return grad * mask.to(grad.dtype), None, None, None


# ---------------------------------------------------------------------------------------------
# quantized


def calibrate(module: nn.Module, layers: Sequence[Tuple[str, nn.Module]], calibration: Batches,
              calib_batches: Optional[int] = DEFAULT_CALIB_BATCHES
              ) -> Dict[str, Tuple[float, float]]:
    """{name: (lo, hi)}: min-max over ``calib_batches`` batches of the input of each
    ``(name, submodule)`` in ``layers``, running ``module`` in float and eval mode (the
    built-in runtime's ``mpq_net_calibrate`` with ``calib_method`` min-max)."""
    lo: Dict[str, float] = {}
    hi: Dict[str, float] = {}

    def hook(name):
        def fn(mod, inputs):
            x = inputs[0].detach()
            a, b = float(x.min()), float(x.max())
            lo[name] = min(lo.get(name, a), a)
            hi[name] = max(hi.get(name, b), b)
        return fn

    hooks = [m.register_forward_pre_hook(hook(n)) for n, m in layers]
    was_training = module.training
    dev = _device(module)
    batches = 0
    try:
        module.eval()
        with torch.no_grad():
            for x in _batches(calibration, calib_batches):
                module(x.to(dev))
                batches += 1
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    if not batches:
        raise InvalidArgumentError("calibration: the loader yielded no batch")
    for n, _ in layers:
        if n not in lo:
            raise InvalidArgumentError("calibration: layer '%s' did not run" % n)
    return {n: (lo[n], hi[n]) for n, _ in layers}


def _batches(data: Any, limit: Optional[int]) -> Iterable[torch.Tensor]:
    """Inputs of a loader / iterable of batches / a single tensor; ``(x, y, ...)`` tuples give
    their first element."""
    if isinstance(data, torch.Tensor):
        data = [data]
    for i, batch in enumerate(data):
        if limit is not None and i >= limit:
            break
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield batch


def _device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


class QuantizedModule:
    """The state of :func:`quantized` (what the ``with`` statement binds).

    Attributes: ``module``, ``policy``, ``ranges`` ({layer name: (lo, hi)} of the calibrated
    activation inputs), ``signed`` ({layer name: bool}, the activation grid chosen per layer).
    """

    def __init__(self, module: nn.Module, policy: Policy, calibration: Optional[Batches] = None,
                 calib_batches: Optional[int] = DEFAULT_CALIB_BATCHES,
                 ranges: Optional[Dict[str, Tuple[float, float]]] = None):
        if not isinstance(module, nn.Module):
            raise InvalidArgumentError("quantized: module must be a torch.nn.Module, got %s"
                                       % type(module).__name__)
        if not isinstance(policy, Policy):
            raise InvalidArgumentError("quantized: policy must be an mpq.Policy, got %s"
                                       % type(policy).__name__)
        self.module = module
        self.policy = policy
        mods = dict(module.named_modules())
        self._layers: List[Tuple[str, nn.Module]] = []
        missing = []
        for lname in policy.model.layer_names():
            mod = mods.get(lname)
            if mod is None or not isinstance(mod, (nn.Conv2d, nn.Linear)):
                missing.append(lname)
            else:
                self._layers.append((lname, mod))
        if missing:
            raise MismatchError("quantized: the policy's model names layers the module lacks "
                                "(or that are not Conv2d/Linear): %s; describe the module with "
                                "mpq.torch.describe() so that names are module paths"
                                % ", ".join(missing[:5]))
        self._wbits = policy.kernel_bits
        self._abits = [int(a) for a in policy.act_bits]
        self._calibration = calibration
        self._calib_batches = calib_batches
        self.ranges: Dict[str, Tuple[float, float]] = dict(ranges or {})
        self.signed: Dict[str, bool] = {}
        self._grids: Dict[str, Tuple[float, int, bool]] = {}
        self._hooks: List[Any] = []
        self._snapshot: Optional[Dict[str, torch.Tensor]] = None
        self._masters: Dict[str, torch.Tensor] = {}
        self._qmodel: Optional[Model] = None
        self._quantizer: Optional[Quantizer] = None

    # -- calibration --------------------------------------------------------------------------
    def calibrate(self, calibration: Batches, calib_batches: Optional[int] = None) -> None:
        """Min-max ranges of every quantized layer's input on the float network (eval mode)."""
        needed = [(n, m) for (n, m), a in zip(self._layers, self._abits) if a < FLOAT_BITS]
        self.ranges.update(calibrate(self.module, needed, calibration, calib_batches))

    # -- weights ------------------------------------------------------------------------------
    def requantize(self) -> None:
        """Writes the fake-quantized weights, computed from the current float ones (after a
        fine-tune step), into the module's parameters."""
        assert self._qmodel is not None and self._quantizer is not None
        with torch.no_grad():
            for i, (lname, mod) in enumerate(self._layers):
                if int(self._wbits[i].min()) >= FLOAT_BITS:
                    continue
                master = self._masters[lname]
                w = _numpy_f32(master)
                self._qmodel.set_weights(i, w)
                q = self._quantizer.apply_layer(self.policy, i, model=self._qmodel)
                mod.weight.data.copy_(torch.from_numpy(q.reshape(w.shape)))

    def _swap_in_masters(self) -> None:
        with torch.no_grad():
            for lname, mod in self._layers:
                if lname in self._masters:
                    mod.weight.data.copy_(self._masters[lname])

    def _save_masters(self) -> None:
        for lname, mod in self._layers:
            self._masters[lname] = mod.weight.detach().clone()

    # -- context ------------------------------------------------------------------------------
    def __enter__(self) -> "QuantizedModule":
        sd = self.module.state_dict()
        self._snapshot = {k: v.detach().clone() for k, v in sd.items()}
        self._was_training = self.module.training
        try:
            need_ranges = [n for (n, _), a in zip(self._layers, self._abits)
                           if a < FLOAT_BITS and n not in self.ranges]
            if need_ranges:
                if self._calibration is None:
                    raise InvalidArgumentError(
                        "quantized: activation bits < %d need calibration=<loader or batches> "
                        "(or ranges=) for layers %s" % (FLOAT_BITS, ", ".join(need_ranges[:5])))
                self.calibrate(self._calibration, self._calib_batches)
            for (lname, mod), a in zip(self._layers, self._abits):
                if a >= FLOAT_BITS:
                    continue
                lo, hi = self.ranges[lname]
                grid = act_grid(lo, hi, a)
                self._grids[lname] = grid
                self.signed[lname] = grid[2]
                self._hooks.append(mod.register_forward_pre_hook(self._act_hook(a, grid)))
            self._qmodel = self.policy.model.clone()
            self._quantizer = Quantizer(self._qmodel)
            self._save_masters()
            self.requantize()
        except BaseException:
            self._restore()
            raise
        return self

    def _act_hook(self, bits: int, grid: Tuple[float, int, bool]):
        scale, zp, signed = grid
        qmin, qmax = _fq.code_range(bits, signed=signed)
        lo_hi = (float(scale) * (qmin - zp), float(scale) * (qmax - zp))

        def fn(mod, inputs):
            x = inputs[0]
            if torch.is_grad_enabled() and x.requires_grad:
                y = _ActFakeQuant.apply(x, bits, grid, lo_hi)
            else:
                xn = _numpy_f32(x)
                y = torch.from_numpy(_fq_act_numpy(xn, bits, grid)).to(x.device, x.dtype)
            return (y,) + tuple(inputs[1:])
        return fn

    def _restore(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._snapshot is not None:
            with torch.no_grad():
                for k, v in self.module.state_dict().items():
                    v.copy_(self._snapshot[k])
            self._snapshot = None
        self.module.train(self._was_training)
        if self._quantizer is not None:
            self._quantizer.close()
            self._quantizer = None
        if self._qmodel is not None:
            self._qmodel.close()
            self._qmodel = None
        self._masters = {}

    def __exit__(self, *exc: Any) -> bool:
        self._restore()
        return False

    # -- fine-tune ----------------------------------------------------------------------------
    def finetune(self, loader: Batches, batches: int, lr: float = 1e-3, momentum: float = 0.9,
                 loss_fn: Optional[Callable[..., torch.Tensor]] = None) -> float:
        """A short straight-through-estimator fine-tune of the quantized module: ``batches``
        SGD steps (``lr`` 1e-3, ``momentum`` 0.9: AutoQ's, the built-in evaluator's defaults)
        on ``(input, target)`` batches. Forward and backward see the quantized weights; the
        gradient updates float master weights, which are quantized again after every step.
        Returns the mean loss. Everything is undone when the ``with`` block ends."""
        loss_fn = loss_fn or nn.functional.cross_entropy
        params = [p for p in self.module.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
        dev = _device(self.module)
        self.module.train()
        total, steps = 0.0, 0
        try:
            while steps < batches:
                before = steps
                for batch in loader:
                    if steps >= batches:
                        break
                    x, y = batch[0].to(dev), batch[1].to(dev)
                    opt.zero_grad()
                    loss = loss_fn(self.module(x), y)
                    loss.backward()
                    self._swap_in_masters()  # the step applies to the float weights
                    opt.step()
                    self._save_masters()
                    self.requantize()
                    total += float(loss)
                    steps += 1
                if steps == before:
                    raise InvalidArgumentError("finetune: the loader yielded no batch")
        finally:
            self.module.eval()
        return total / max(steps, 1)


def quantized(module: nn.Module, policy: Policy, calibration: Optional[Batches] = None,
              calib_batches: Optional[int] = DEFAULT_CALIB_BATCHES,
              ranges: Optional[Dict[str, Tuple[float, float]]] = None) -> QuantizedModule:
    """Context manager running ``module`` under ``policy`` (made for a model from
    :func:`describe`, whose layer names are module paths)::

        with mpq.torch.quantized(net, policy, calibration=train_loader) as q:
            accuracy = top1(net, val_loader)
            q.ranges, q.signed        # calibrated input ranges, signedness per layer

    On entry the activation ranges are calibrated on the first ``calib_batches`` batches of
    ``calibration`` (a DataLoader, an iterable of tensors or ``(x, y)`` tuples, or one tensor;
    ``None`` = all of them) with the float network; then weights are replaced by their
    kernel-wise fake-quantized values and forward pre-hooks fake-quantize each layer's input.
    See the module documentation for the grids. On exit every tensor of the state dict is
    restored bit for bit and the hooks are removed.
    """
    return QuantizedModule(module, policy, calibration, calib_batches, ranges)


# ---------------------------------------------------------------------------------------------
# evaluator


def top1(module: nn.Module, loader: Batches, limit_batches: Optional[int] = None) -> float:
    """Top-1 accuracy of ``module`` (eval mode, no grad) over ``(input, target)`` batches."""
    dev = _device(module)
    correct = total = 0
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if limit_batches is not None and i >= limit_batches:
                    break
                x, y = batch[0].to(dev), batch[1].to(dev)
                correct += int((module(x).argmax(1) == y).sum())
                total += int(y.numel())
    finally:
        module.train(was_training)
    if not total:
        raise InvalidArgumentError("top1: the validation loader yielded no sample")
    return correct / total


class TorchEvaluator:
    """``evaluator(policy) -> top-1`` for :class:`mpq.Search` (see :func:`evaluator`).

    ``calls`` counts evaluations. The search itself caches accuracies by policy (an identical
    policy is measured once per search), so nothing is cached here."""

    def __init__(self, module: nn.Module, val_loader: Batches, finetune: Optional[Batches],
                 calibration: Optional[Batches], calib_batches: Optional[int],
                 finetune_batches: int, finetune_lr: float, finetune_momentum: float,
                 limit_batches: Optional[int]):
        self.module = module
        self.val_loader = val_loader
        self.finetune = finetune
        self.calibration = calibration if calibration is not None else (
            finetune if finetune is not None else val_loader)
        self.calib_batches = calib_batches
        self.finetune_batches = finetune_batches
        self.finetune_lr = finetune_lr
        self.finetune_momentum = finetune_momentum
        self.limit_batches = limit_batches
        self.calls = 0
        self._ranges: Optional[Dict[str, Tuple[float, float]]] = None
        self._ranges_for: Optional[Tuple[str, ...]] = None

    def __call__(self, policy: Policy) -> float:
        self.calls += 1
        names = tuple(policy.model.layer_names())
        if self._ranges_for != names:  # the float network's ranges: measured once
            mods = dict(self.module.named_modules())
            layers = [(n, mods[n]) for n in names if n in mods]
            self._ranges = calibrate(self.module, layers, self.calibration, self.calib_batches)
            self._ranges_for = names
        with QuantizedModule(self.module, policy, None, None, self._ranges) as q:
            if self.finetune is not None and self.finetune_batches > 0:
                q.finetune(self.finetune, self.finetune_batches, self.finetune_lr,
                           self.finetune_momentum)
            return top1(self.module, self.val_loader, self.limit_batches)


def evaluator(module: nn.Module, val_loader: Batches, finetune: Optional[Batches] = None,
              calibration: Optional[Batches] = None,
              calib_batches: Optional[int] = DEFAULT_CALIB_BATCHES, finetune_batches: int = 0,
              finetune_lr: float = 1e-3, finetune_momentum: float = 0.9,
              limit_batches: Optional[int] = None) -> TorchEvaluator:
    """A ready evaluator for :class:`mpq.Search`: ``ev(policy)`` runs ``module`` under
    :func:`quantized` and returns top-1 accuracy on ``val_loader`` (``(input, target)``
    batches; ``limit_batches`` of them when set).

    * Activation ranges are calibrated once, on the float network, on ``calib_batches`` batches
      of ``calibration`` (default: the ``finetune`` loader, else ``val_loader``).
    * ``finetune=train_loader`` with ``finetune_batches > 0`` adds a short STE fine-tune per
      evaluation (SGD, ``finetune_lr`` 1e-3, momentum 0.9 as AutoQ and the built-in evaluator);
      HAQ fine-tunes briefly during its search, which costs time per episode. Off by default.
    * The module is restored bit for bit after every evaluation.
    """
    if not isinstance(module, nn.Module):
        raise InvalidArgumentError("evaluator: module must be a torch.nn.Module")
    if finetune_batches and finetune is None:
        raise InvalidArgumentError("evaluator: finetune_batches=%d needs finetune=<train loader>"
                                   % finetune_batches)
    if finetune is not None and not finetune_batches:
        finetune_batches = 100
    return TorchEvaluator(module, val_loader, finetune, calibration, calib_batches,
                          int(finetune_batches), float(finetune_lr), float(finetune_momentum),
                          limit_batches)
