"""char-rnn's checkpoints (``lm_lstm_epoch30.00_1.23.t7``) as a LanguageModel and their fields.

char-rnn's train.lua saves a table ``{protos = {rnn = gModule, criterion}, opt, vocab,
train_losses, val_loss, val_losses, i, epoch}`` (tests/fixtures/charrnn/README.md). Its
models map exactly onto torch-rnn's layout: the one-hot input is an identity embedding
(wordvec_size = V), each layer's two (GRU: six) Linears become one ``weight (V or H + H, G)``
with their biases summed, and char-rnn's dropout sits where torch-rnn's does (after every
layer). The wiring is read from the graph (torchrnn_py/charrnn/topology.py), and the model
built from it is then checked against the stored graph run on probe inputs: only a model
that computes what the file computes is returned.
"""
import dataclasses
import math
from typing import Optional

import torch

from ..errors import TorchRNNError
from ..fileio import check_input_file
from ..model import LanguageModel
from ..t7 import TorchObject, read_t7
from ..vocab import Vocab, byte_token
from .graph import read_graph, run_graph
from .topology import STATES_PER_LAYER, find_layers

MODEL_TYPES = tuple(STATES_PER_LAYER)
GRU_GATES = ("z", "r", "c")          # the column blocks of torch-rnn's GRU weight, in order
PROBE_STREAMS = 3
PROBE_TOLERANCE = 1e-9


@dataclasses.dataclass(eq=False)
class CharRNNCheckpoint:
    """What a char-rnn checkpoint holds. ``model``: a LanguageModel in evaluation mode, in
    the file's float type (double for CPU-trained files); ``opt``: train.lua's options;
    ``train_losses`` a list, ``val_losses`` a dict {iteration: loss}."""
    model: LanguageModel
    model_type: str
    opt: dict
    i: Optional[int] = None
    epoch: Optional[float] = None
    val_loss: Optional[float] = None
    train_losses: list = dataclasses.field(default_factory=list)
    val_losses: dict = dataclasses.field(default_factory=dict)

    @property
    def vocab(self):
        return self.model.vocab

    def torchrnn_fields(self):
        """The fields of a torch-rnn checkpoint holding this model (float32, as torch-rnn
        keeps its models), for :class:`torchrnn_py.checkpoint.Checkpoint`."""
        model = self.model
        opt = {"model_type": self.model_type, "wordvec_size": model.wordvec_dim,
               "rnn_size": model.rnn_size, "num_layers": model.num_layers,
               "dropout": model.dropout, "batchnorm": 0}
        for name in ("batch_size", "seq_length", "learning_rate", "grad_clip", "max_epochs",
                     "seed"):
            if name in self.opt:
                opt[name] = self.opt[name]
        its = sorted(self.val_losses)
        return {"opt": opt, "i": self.i, "train_loss_history": list(self.train_losses),
                "val_loss_history": [self.val_losses[k] for k in its],
                "val_loss_history_it": its, "model": _float_copy(model),
                "torchrnn_py_charrnn_opt": dict(self.opt)}


def is_charrnn(root):
    """Whether a ``.t7``'s root looks like char-rnn's checkpoint table."""
    return isinstance(root, dict) and isinstance(root.get("protos"), dict) \
        and "rnn" in root["protos"] and "vocab" in root


def load_charrnn(path):
    """Read a char-rnn checkpoint: a :class:`CharRNNCheckpoint`; one TorchRNNError for a
    file that is not one, or whose graph is not char-rnn's LSTM, GRU or RNN."""
    check_input_file(path, "checkpoint")
    root = read_t7(path)
    if not is_charrnn(root):
        if isinstance(root, dict) and isinstance(root.get("model"), TorchObject):
            raise TorchRNNError(f"{path}: a torch-rnn checkpoint, not a char-rnn one; "
                                f"torch-rnn's commands read it as it is (sample it with "
                                f"torchrnn-sample -checkpoint {path})")
        raise TorchRNNError(f"{path}: not a char-rnn checkpoint: expected a table with "
                            f"protos.rnn and vocab, as char-rnn's train.lua saves")
    return charrnn_from_t7(root, path)


def charrnn_from_t7(root, path="checkpoint"):
    """:func:`load_charrnn` for a table already read from the ``.t7`` ``path``."""
    def fail(message):
        raise TorchRNNError(f"{path}: not a usable char-rnn checkpoint: {message}")

    opt = _plain_table(root.get("opt"), "opt", fail)
    vocab = _vocab(root["vocab"], fail)
    graph = read_graph(root["protos"]["rnn"], fail)
    for node in graph.nodes:
        size = node.module.get("outputSize") if node.kind == "OneHot" else len(vocab)
        if size != len(vocab):
            fail(f"its OneHot has outputSize {size!r}, but its vocab has {len(vocab)} bytes")
    model_type = _model_type(opt, graph, fail)
    num_layers = (graph.num_inputs - 1) // STATES_PER_LAYER[model_type]
    layers, decoder, dropouts = find_layers(graph, model_type, num_layers, fail)
    model = _build(vocab, model_type, layers, decoder, _dropout(dropouts, num_layers, fail),
                   fail)
    _check_against_graph(model, graph, fail)
    dtype = decoder.module["weight"].dtype
    model.to(dtype if dtype in (torch.float32, torch.float64) else torch.float64).eval()
    losses = root.get("train_losses")
    return CharRNNCheckpoint(
        model=model, model_type=model_type, opt=opt, i=_number(root.get("i")),
        epoch=_number(root.get("epoch")), val_loss=_number(root.get("val_loss")),
        train_losses=_plain_list(losses, "train_losses", fail) if losses is not None else [],
        val_losses=_val_losses(root.get("val_losses") or {}, fail))


def _val_losses(table, fail):
    """char-rnn's sparse ``val_losses`` {iteration: loss}: whole iterations, numbers."""
    values = _plain_table(table, "val_losses", fail)
    for key, value in values.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0 or \
                isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"val_losses should map iterations to losses, found {key!r}: {value!r}")
    return {k: float(v) for k, v in values.items()}


def _model_type(opt, graph, fail):
    """opt.model, or (for files without it) what the graph's modules say."""
    kinds = {node.kind for node in graph.nodes}
    found = "gru" if "nn.MulConstant" in kinds else "lstm" if "nn.SplitTable" in kinds \
        else "rnn"
    model_type = opt.get("model", found)
    if model_type not in MODEL_TYPES:
        fail(f"opt.model should be one of {', '.join(MODEL_TYPES)}, found {model_type!r}")
    return model_type


def _vocab(table, fail):
    """char-rnn's ``vocab`` {byte: id} as a byte-token Vocab with the same ids."""
    if not isinstance(table, dict) or not table:
        fail("vocab should be a non-empty table of characters to ids")
    by_id = {}
    for char, index in table.items():
        raw = char.encode("utf-8", "surrogateescape") if isinstance(char, str) else b""
        if len(raw) != 1:                 # the t7 reader gives bytes >= 0x80 escaped
            fail(f"vocab should map single bytes to ids, found the key {char!r}")
        if isinstance(index, bool) or not isinstance(index, (int, float)) \
                or not 1 <= index <= len(table) or index != int(index) or index in by_id:
            fail(f"vocab should number its {len(table)} bytes 1..{len(table)}, found "
                 f"{index!r} for {char!r}")
        by_id[int(index)] = byte_token(raw[0])
    return Vocab([by_id[k] for k in range(1, len(table) + 1)])


def _dropout(dropouts, num_layers, fail):
    """(p, v2) of char-rnn's dropout after every layer, or (0, True) without dropout."""
    if not dropouts:
        return 0.0, True
    ps = {m.get("p") if _is_number(m.get("p")) else -1.0 for m in dropouts}
    if len(dropouts) != num_layers or len(ps) != 1 or not 0 < min(ps) < 1:
        fail(f"expected no dropout or one nn.Dropout(p) after each of the {num_layers} "
             f"layers, found {len(dropouts)} with p = {sorted(ps)}")
    return ps.pop(), bool(dropouts[0].get("v2", False))


def _build(vocab, model_type, layers, decoder, dropout, fail):
    """A float64 LanguageModel holding the Linears' weights in torch-rnn's layout."""
    V = len(vocab)
    p, v2 = dropout
    H = _weight(decoder, fail).shape[1]
    model = LanguageModel(vocab, model_type, V, H, len(layers), p, init=False).double()
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(V, dtype=torch.float64))
        for index, (roles, rnn) in enumerate(zip(layers, model.rnns)):
            weight, bias = _layer_weight(model_type, roles, rnn.input_dim, H, fail)
            rnn.weight.copy_(weight)
            rnn.bias.copy_(bias)
        for module in model.dropouts:
            module.v2 = v2
        weight = _weight(decoder, fail, (V, H))
        model.linear.weight.copy_(weight)
        model.linear.bias.copy_(_bias(decoder, V, fail))
    return model


def _layer_weight(model_type, roles, D, H, fail):
    """torch-rnn's ``weight (D+H, G)`` and ``bias (G,)`` from a layer's Linears."""
    blocks = [("i2h", "h2h")] if model_type != "gru" else \
        [(f"i2h_{g}", f"h2h_{g}") for g in GRU_GATES]
    G = 4 * H if model_type == "lstm" else H                          # per block
    columns, biases = [], []
    for i2h, h2h in blocks:
        w_x = _weight(roles[i2h], fail, (G, D))
        w_h = _weight(roles[h2h], fail, (G, H))
        columns.append(torch.cat([w_x.t(), w_h.t()], 0))               # (D+H, G)
        biases.append(_bias(roles[i2h], G, fail) + _bias(roles[h2h], G, fail))
    return torch.cat(columns, 1), torch.cat(biases)


def _weight(node, fail, shape=None):
    weight = node.module.get("weight")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 \
            or not weight.is_floating_point() \
            or (shape is not None and tuple(weight.shape) != shape):
        found = _shape(weight) if not isinstance(weight, torch.Tensor) or \
            weight.is_floating_point() else f"a {weight.dtype} tensor"
        fail(f"the Linear at forwardnodes[{node.index}] should have a floating-point "
             f"weight of shape {shape or '(out, in)'}, found {found}")
    return weight.double()


def _bias(node, size, fail):
    bias = node.module.get("bias")
    if bias is None:
        return torch.zeros(size, dtype=torch.float64)
    if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (size,) \
            or not bias.is_floating_point():
        fail(f"the Linear at forwardnodes[{node.index}] should have a bias of shape "
             f"({size},), found {_shape(bias)}")
    return bias.double()


def _check_against_graph(model, graph, fail):
    """Run the stored graph and ``model`` one step from the same random states and inputs:
    a model whose outputs differ computes something else than the file, and is refused."""
    K, H, V = PROBE_STREAMS, model.rnn_size, model.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, V + 1, (K,), generator=gen)
    states = [torch.rand(K, H, generator=gen, dtype=torch.float64) * 2 - 1
              for _ in range(graph.num_inputs - 1)]
    for name, tensor in model.named_parameters():
        if not bool(torch.isfinite(tensor).all()):
            fail(f"its weights hold NaN or infinite values (in what becomes {name})")
    try:
        with torch.no_grad():
            wanted = run_graph(graph, [ids.double()] + states)
    except (ValueError, RuntimeError, TypeError, IndexError) as err:
        fail(f"its graph cannot be run: {str(err).splitlines()[0] if str(err) else err!r}")
    got = _model_step(model, ids, states)
    worst = max((float((a - b).abs().max()) / max(1.0, float(a.abs().max()))
                 for a, b in zip(wanted, got)), default=math.inf)
    if len(wanted) != len(got) or not worst <= PROBE_TOLERANCE:
        fail(f"its graph does not compute char-rnn's {model.model_type} (outputs differ by "
             f"{worst:.3g} from the {model.model_type} read from its wiring; a variant of "
             f"char-rnn's models is not supported)")


def _model_step(model, ids, states):
    """char-rnn's outputs (states in its order, then log-probabilities) of one step."""
    S = len(states) // model.num_layers
    start = [(states[S * k + S - 1], states[S * k]) if S == 2 else (states[k],)
             for k in range(model.num_layers)]                          # (h, c) or (h,)
    model.eval()
    model.set_states(start)
    with torch.no_grad():
        scores = model(ids.view(-1, 1))[:, 0]                           # (K, V)
    out = []
    for state in model.get_states():
        out += [state[1], state[0]] if S == 2 else [state[0]]          # c, h / h
    model.reset_states()
    return out + [torch.log_softmax(scores, dim=-1)]


def _float_copy(model):
    copy = LanguageModel(model.vocab, model.model_type, model.wordvec_dim, model.rnn_size,
                         model.num_layers, model.dropout, init=False)
    copy.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    for mine, theirs in zip(copy.dropouts, model.dropouts):
        mine.v2 = theirs.v2
    return copy.eval()


def _plain(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def _plain_table(table, what, fail):
    if not isinstance(table, dict):
        fail(f"{what} should be a table, found {type(table).__name__}")
    if any(isinstance(v, (dict, TorchObject, torch.Tensor)) for v in table.values()):
        fail(f"{what} should hold plain values")
    return {_plain(k): _plain(v) for k, v in table.items()}


def _plain_list(table, what, fail):
    values = _plain_table(table, what, fail)
    if set(values) != set(range(1, len(values) + 1)) or \
            not all(isinstance(v, (int, float)) for v in values.values()):
        fail(f"{what} should be a list of numbers")
    return [float(values[k]) for k in range(1, len(values) + 1)]


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return _plain(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shape(value):
    return f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) \
        else ("nothing" if value is None else f"a {type(value).__name__}")
