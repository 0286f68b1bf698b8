"""The ``nn.LanguageModel`` object graph of a ``.t7`` checkpoint <-> :class:`LanguageModel`.

The graph is ``net`` = ``nn.Sequential`` of LookupTable, LSTM, VanillaRNN or GRU (the
``nn.GRU`` of torch-rnn's forks), View/BatchNormalization/View, Dropout, View/Linear/View
(docs/compatibility.md, checkpoints):

- reading takes the architecture from the modules actually present (so any torch-rnn
  checkpoint loads, whatever its fields say), accepts old ``nn`` versions
  (``running_std`` instead of ``running_var``, "v1" Dropout) and CUDA tensor types;
- writing emits every field train.lua's objects carry, with the class names and
  serialisation versions of real files, float tensors, and all parameters (and gradients)
  as views of one storage each, as train.lua's ``getParameters`` leaves them, so the
  original ``sample.lua`` loads what we write.
"""
import math

import torch

from ..errors import TorchRNNError
from ..model import LanguageModel
from ..t7 import Storage, TorchObject
from ..vocab import Vocab

# Serialisation versions that real checkpoints carry (torch.version(obj) of each class).
CLASS_VERSIONS = {"nn.LookupTable": 4, "nn.BatchNormalization": 2}
RNN_CLASSES = {"nn.LSTM": "lstm", "nn.VanillaRNN": "rnn", "nn.GRU": "gru"}
GATES = {"lstm": 4, "rnn": 1, "gru": 3}          # G / H of each layer type's weight


# -- reading ------------------------------------------------------------------------------

def model_from_t7(lm, source="checkpoint"):
    """Build a LanguageModel from an ``nn.LanguageModel`` TorchObject."""
    def fail(message):
        raise TorchRNNError(f"{source}: not a usable torch-rnn model: {message}")

    vocab = Vocab(_idx_to_token(lm.get("idx_to_token"), fail), source=source)
    embedding, layers, linear = _graph_layers(lm.get("net"), fail)
    kinds = {layer["type"] for layer in layers}
    if len(kinds) != 1:
        fail("mixes recurrent layers of different types ("
             + ", ".join(sorted({layer["rnn"].class_name for layer in layers})) + ")")
    model_type = kinds.pop()
    D, H = _check_shapes(embedding, layers, linear, len(vocab), model_type, fail)
    dropouts = [layer.get("dropout") for layer in layers]
    if any((d is None) != (dropouts[0] is None) for d in dropouts):
        fail("dropout after some recurrent layers but not others")
    ps = [_dropout_p(d, fail) for d in dropouts if d is not None]
    has_bn = ["bn" in layer for layer in layers]
    if any(b != has_bn[0] for b in has_bn):
        fail("batch normalisation after some recurrent layers but not others")
    model = LanguageModel(vocab, model_type, D, H, len(layers), max(ps, default=0.0),
                          int(has_bn[0]), init=False)     # every weight is copied below
    with torch.no_grad():
        model.embedding.weight.copy_(embedding)
        for index, (layer, rnn) in enumerate(zip(layers, model.rnns)):
            where = f"net.modules ({layer['rnn'].class_name} number {index + 1})"
            _copy(rnn.weight, _tensor(layer["rnn"], "weight", 2, fail), where + ".weight", fail)
            _copy(rnn.bias, _tensor(layer["rnn"], "bias", 1, fail), where + ".bias", fail)
            if "bn" in layer:
                _load_batchnorm(model.batchnorms[index], layer["bn"], fail)
            if dropouts[index] is not None and model.dropouts:
                model.dropouts[index].p = _dropout_p(dropouts[index], fail)
                model.dropouts[index].v2 = bool(dropouts[index].get("v2", False))
        _copy(model.linear.weight, _tensor(linear, "weight", 2, fail), "Linear.weight", fail)
        _copy(model.linear.bias, _tensor(linear, "bias", 1, fail), "Linear.bias", fail)
    model.train(bool(lm.get("train", True)))
    return model


def _graph_layers(net, fail):
    """(embedding weight, layers, Linear module) of ``model.net``, each layer a dict of its
    ``rnn`` module, ``type`` and optional ``bn``/``dropout`` modules, in net order."""
    if not isinstance(net, TorchObject) or not isinstance(net.get("modules"), dict):
        fail(f"expected model.net to be an nn.Sequential with modules, found {describe(net)}")
    modules = _lua_array(net["modules"], "model.net.modules", fail)
    names = [m.class_name if isinstance(m, TorchObject) else describe(m) for m in modules]

    def expect(k, class_name):
        if k >= len(modules) or names[k] != class_name:
            found = names[k] if k < len(modules) else "the end of the list"
            fail(f"expected {class_name} at net.modules[{k + 1}], found {found}")
        return modules[k]

    embedding = _tensor(expect(0, "nn.LookupTable"), "weight", 2, fail)
    k, layers = 1, []
    while k < len(modules) and names[k] in RNN_CLASSES:
        layer = {"rnn": modules[k], "type": RNN_CLASSES[names[k]]}
        k += 1
        if k < len(modules) and names[k] == "nn.View" and k + 1 < len(modules) \
                and names[k + 1] == "nn.BatchNormalization":
            layer["bn"] = expect(k + 1, "nn.BatchNormalization")
            expect(k + 2, "nn.View")
            k += 3
        if k < len(modules) and names[k] == "nn.Dropout":
            layer["dropout"] = modules[k]
            k += 1
        layers.append(layer)
    if not layers:
        fail(f"expected an nn.LSTM, nn.VanillaRNN or nn.GRU at net.modules[2], found "
             f"{names[1] if len(names) > 1 else 'nothing'}")
    expect(k, "nn.View")
    linear = expect(k + 1, "nn.Linear")
    expect(k + 2, "nn.View")
    if k + 3 != len(modules):
        fail(f"unexpected {names[k + 3]} at net.modules[{k + 4}] after the output layer")
    return embedding, layers, linear


def _check_shapes(embedding, layers, linear, V, model_type, fail):
    """``(D, H)`` once every weight has the shape the embedding and the first bias imply
    and the file stores at least as many numbers as the model would hold: checked before
    the model is built, so a hostile file cannot make it allocate more than it contains
    (stride-0 views can declare huge tensors over a tiny storage)."""
    gates = GATES[model_type]
    if embedding.shape[0] != V:
        fail(f"the embedding has {embedding.shape[0]} rows but idx_to_token has {V} tokens")
    D = embedding.shape[1]
    bias0 = _tensor(layers[0]["rnn"], "bias", 1, fail)
    H = bias0.shape[0] // gates
    if H < 1 or D < 1 or bias0.shape[0] != gates * H:
        fail(f"{layers[0]['rnn'].class_name}.bias has {bias0.shape[0]} elements, expected "
             f"a positive multiple of {gates}; the embedding is {V} x {D}")
    expected = [(embedding, (V, D), "LookupTable.weight")]
    for index, layer in enumerate(layers):
        rnn, where = layer["rnn"], f"{layer['rnn'].class_name} number {index + 1}"
        expected += [(_tensor(rnn, "weight", 2, fail), ((D if index == 0 else H) + H, gates * H),
                      where + ".weight"),
                     (_tensor(rnn, "bias", 1, fail), (gates * H,), where + ".bias")]
        if "bn" in layer:
            bn = layer["bn"]
            if bn.get("affine", True) is False or bn.get("weight") is None:
                fail("BatchNormalization without affine parameters is not supported")
            names = ["weight", "bias", "running_mean"] + [
                name for name in ("running_var", "running_std") if name in bn][:1]
            expected += [(_tensor(bn, name, 1, fail), (H,), f"BatchNormalization.{name}")
                         for name in names]
    expected += [(_tensor(linear, "weight", 2, fail), (V, H), "Linear.weight"),
                 (_tensor(linear, "bias", 1, fail), (V,), "Linear.bias")]
    for tensor, shape, what in expected:
        if tuple(tensor.shape) != shape:
            fail(f"{what} has shape {tuple(tensor.shape)}, expected {shape} (vocabulary {V}, "
                 f"wordvec_size {D}, rnn_size {H})")
    _check_stored(expected, fail)
    return D, H


def _check_stored(expected, fail):
    """Refuse weights that hold more numbers than the storages behind them (overlapping,
    stride-0 views): a tensor larger than its own storage, or more parameters in all
    than the distinct storages hold."""
    storages, total = {}, 0
    for tensor, _, what in expected:
        stored = tensor.untyped_storage().nbytes() // tensor.element_size()
        if tensor.numel() > stored:
            fail(f"{what} declares {tensor.numel()} numbers but its storage holds only "
                 f"{stored} (an overlapping, stride-0 view)")
        storages[tensor.untyped_storage().data_ptr()] = stored
        total += tensor.numel()
    if total > sum(storages.values()):
        fail(f"the weights declare {total} numbers but the file stores only "
             f"{sum(storages.values())} (overlapping views)")


def _dropout_p(module, fail):
    p = _number(module, "p", fail)
    if not 0 <= p < 1:
        fail(f"nn.Dropout.p should be in [0, 1), found {p}")
    return p


def _load_batchnorm(bn, module, fail):
    """Parameters and running statistics of an nn.BatchNormalization, old or new."""
    if module.get("affine", True) is False or module.get("weight") is None:
        fail("BatchNormalization without affine parameters is not supported")
    bn.eps = _number(module, "eps", fail) if "eps" in module else 1e-5
    bn.momentum = _number(module, "momentum", fail) if "momentum" in module else 0.1
    _copy(bn.weight, _tensor(module, "weight", 1, fail), "BatchNormalization.weight", fail)
    _copy(bn.bias, _tensor(module, "bias", 1, fail), "BatchNormalization.bias", fail)
    _copy(bn.running_mean, _tensor(module, "running_mean", 1, fail),
          "BatchNormalization.running_mean", fail)
    if "running_var" in module:
        running_var = _tensor(module, "running_var", 1, fail)
    elif "running_std" in module:
        # nn before 2016-02 kept 1/sqrt(var + eps); nn's own loader converts it this way.
        running_var = _tensor(module, "running_std", 1, fail).double().pow(-2) - bn.eps
    else:
        fail("BatchNormalization has neither running_var nor running_std")
    _copy(bn.running_var, running_var, "BatchNormalization.running_var", fail)


def _idx_to_token(table, fail):
    if not isinstance(table, dict) or not table:
        fail(f"expected model.idx_to_token to be a table of tokens, found {describe(table)}")
    tokens = _lua_array(table, "model.idx_to_token", fail)
    for idx, token in enumerate(tokens, 1):
        if not isinstance(token, str):
            fail(f"model.idx_to_token[{idx}] should be a string, found {describe(token)}")
    return {idx: token for idx, token in enumerate(tokens, 1)}


def _lua_array(table, what, fail):
    """The values of a Lua table with keys 1..n, in order."""
    n = len(table)
    if set(table) != set(range(1, n + 1)):
        fail(f"expected {what} to have keys 1..{n}")
    return [table[k] for k in range(1, n + 1)]


def _tensor(module, field, ndim, fail):
    value = module.get(field) if isinstance(module, TorchObject) else None
    if not isinstance(value, torch.Tensor) or value.dim() != ndim:
        fail(f"{module.class_name}.{field} should be a {ndim}-D tensor, found {describe(value)}")
    return value


def _number(module, field, fail):
    value = module.get(field)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        fail(f"{module.class_name}.{field} should be a number, found {describe(value)}")
    return float(value)


def _copy(param, value, what, fail):
    if tuple(param.shape) != tuple(value.shape):
        fail(f"{what} has shape {tuple(value.shape)}, expected {tuple(param.shape)}")
    param.copy_(value.to(param.dtype))


def describe(value):
    """A short description of a Lua value for error messages."""
    if isinstance(value, TorchObject):
        return f"a {value.class_name}"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


# -- writing ------------------------------------------------------------------------------

def model_to_t7(model, batch_size=1, seq_length=1):
    """The ``nn.LanguageModel`` TorchObject train.lua would save for ``model``."""
    N, T = int(batch_size), int(seq_length)
    params = _flat_views([p for p in _torch7_parameters(model)], grads=False)
    grads = _flat_views([p for p in _torch7_parameters(model)], grads=True)
    take = iter(zip(params, grads))

    modules = []
    lookup_w, lookup_g = next(take)
    modules.append(_module("nn.LookupTable", weight=lookup_w, gradWeight=lookup_g,
                           _count=_empty(torch.int32), _input=_empty(torch.int64),
                           copiedInput=True, paddingValue=0, shouldScaleGradByFreq=False))
    rnns, bn_view_in, bn_view_out = [], [], []
    for layer, rnn in enumerate(model.rnns):
        (w, gw), (b, gb) = next(take), next(take)
        rnns.append(_rnn_module(model.model_type, rnn, w, gw, b, gb))
        modules.append(rnns[-1])
        if model.batchnorm:
            (bw, gbw), (bb, gbb) = next(take), next(take)
            bn = model.batchnorms[layer]
            view_in, view_out = _view((N * T, -1), 3, N * T), _view((N, T, -1), 2, N * T)
            bn_view_in.append(view_in)
            bn_view_out.append(view_out)
            modules += [view_in, _module(
                "nn.BatchNormalization", weight=bw, bias=bb, gradWeight=gbw, gradBias=gbb,
                running_mean=cpu_float(bn.running_mean), running_var=cpu_float(bn.running_var),
                save_mean=_empty(), save_std=_empty(), eps=bn.eps, momentum=bn.momentum,
                affine=True), view_out]
        if model.dropout > 0:
            dropout = model.dropouts[layer]
            modules.append(_module("nn.Dropout", p=dropout.p, v2=dropout.v2, noise=_empty(),
                                   stochastic_inference=False))
    (lw, glw), (lb, glb) = next(take), next(take)
    view1, view2 = _view((N * T, -1), 3, N * T), _view((N, T, -1), 2, N * T)
    modules += [view1, _module("nn.Linear", weight=lw, bias=lb, gradWeight=glw,
                               gradBias=glb, addBuffer=_empty()), view2]
    net = _module("nn.Sequential", modules=modules)
    idx_to_token = model.idx_to_token
    return TorchObject("nn.LanguageModel", {
        "_type": "torch.FloatTensor", "train": bool(model.training),
        "idx_to_token": [idx_to_token[i] for i in range(1, len(idx_to_token) + 1)],
        "token_to_idx": {token: idx for idx, token in idx_to_token.items()},
        "vocab_size": model.vocab_size, "model_type": model.model_type,
        "wordvec_dim": model.wordvec_dim, "rnn_size": model.rnn_size,
        "num_layers": model.num_layers, "dropout": model.dropout,
        "batchnorm": model.batchnorm, "net": net, "rnns": rnns, "view1": view1,
        "view2": view2, "bn_view_in": bn_view_in, "bn_view_out": bn_view_out,
    }, 1)


def _torch7_parameters(model):
    """Parameters in nn.LanguageModel:parameters() order (the getParameters layout)."""
    yield model.embedding.weight
    for layer, rnn in enumerate(model.rnns):
        yield rnn.weight
        yield rnn.bias
        if model.batchnorm:
            yield model.batchnorms[layer].weight
            yield model.batchnorms[layer].bias
    yield model.linear.weight
    yield model.linear.bias


def _flat_views(parameters, grads):
    """Float copies of the parameters (or their gradients, zeros when absent) as views
    of one flat tensor, which the t7 writer stores as one shared FloatStorage."""
    pieces = []
    for p in parameters:
        source = p.grad if grads else p
        if source is None:
            source = torch.zeros_like(p)
        pieces.append(source.detach().to("cpu", torch.float32).reshape(-1))
    flat = torch.cat(pieces)
    views, offset = [], 0
    for p in parameters:
        n = p.numel()
        views.append(flat[offset:offset + n].view(p.shape))
        offset += n
    return views


def _rnn_module(model_type, rnn, weight, grad_weight, bias, grad_bias):
    grad_x = _empty()
    fields = dict(weight=weight, gradWeight=grad_weight, bias=bias, gradBias=grad_bias,
                  input_dim=rnn.input_dim, hidden_dim=rnn.hidden_dim,
                  remember_states=bool(rnn.remember_states), recompute_backward=True,
                  h0=_empty(), grad_h0=_empty(), grad_x=grad_x, gradInput=grad_x,
                  buffer1=_empty(), buffer2=_empty(), _return_grad_h0=False)
    if model_type == "lstm":
        fields.update(c0=_empty(), grad_c0=_empty(), cell=_empty(), gates=_empty(),
                      buffer3=_empty(), grad_a_buffer=_empty(), _return_grad_c0=False)
        return _module("nn.LSTM", **fields)
    if model_type == "gru":
        # the fields of the forks' GRU.lua (no recompute_backward, no c0), as after a
        # forward and backward without h0, like the LSTM above
        del fields["recompute_backward"]
        fields.update(cell=_empty(), gates=_empty(), buffer3=_empty(),
                      grad_a_buffer=_empty())
        return _module("nn.GRU", **fields)
    return _module("nn.VanillaRNN", **fields)


def _view(size, num_input_dims, num_elements):
    return _module("nn.View", size=Storage("torch.LongStorage",
                                           torch.tensor(size, dtype=torch.int64)),
                   numInputDims=num_input_dims, numElements=num_elements)


def _module(class_name, **fields):
    """An nn module object with the fields every nn.Module carries, plus ``fields``."""
    base = {"_type": "torch.FloatTensor", "train": True, "output": _empty(),
            "gradInput": _empty()}
    base.update(fields)
    return TorchObject(class_name, base, CLASS_VERSIONS.get(class_name, 1))


def _empty(dtype=torch.float32):
    return torch.empty(0, dtype=dtype)


def cpu_float(tensor):
    """A detached float32 copy on the CPU, as the .t7 file stores tensors."""
    return tensor.detach().to("cpu", torch.float32).clone()
