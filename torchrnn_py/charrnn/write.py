"""char-rnn checkpoints written as char-rnn's train.lua writes them, for its sample.lua.

train.lua saves ``{protos = {rnn = nn.gModule, criterion}, opt, vocab, train_losses,
val_loss, val_losses, i, epoch}`` (tests/fixtures/charrnn/README.md). The gModule is the web
of objects nngraph leaves behind: every ``nngraph.Node`` of the construction (the backward
graph ``bg``) and its copy in the forward graph ``fg``, sharing one ``data`` table, the
``graph.Graph``/``graph.Edge`` objects, the topological orders and the modules. This module
rebuilds that web the way nngraph builds it -- the same construction order as char-rnn's
model/LSTM.lua, GRU.lua and RNN.lua, the same breadth-first graph, reversal and depth-first
topological sort -- so node ids, ``forwardNodeId``, children, ``mapindex`` and module order
come out as Torch7 gives them. Tables list their entries in LuaJIT's ``pairs`` order: fixed
field sets as real checkpoints list them, the vocabulary and ``val_losses`` as
torchrnn_py/charrnn/luatable.py computes it; tables keyed by objects, whose order LuaJIT takes
from memory addresses, in array order. All Linear weights and biases are views of one
float64 storage in ``modules`` order, the gradients of a second one, as
``model_utils.combine_all_parameters`` leaves them. docs/compatibility.md ("checkpoints")
says what differs from a file Torch7 writes.
"""
import numbers

import torch

from ..t7 import Storage, TableKey, TorchObject, write_t7
from .luatable import pairs_order

MODEL_TYPES = ("lstm", "gru", "rnn")
LINEARS_PER_LAYER = {"lstm": 2, "gru": 6, "rnn": 2}
DOUBLE = "torch.DoubleTensor"
#: The label nngraph gives the split of the gModule's inputs: it names the Lua file of the
#: Torch install; the fixtures hold this neutral path of the same length.
GMODULE_SPLIT_LABEL = ("[[C]]:-1_ split at "
                       "[/home/torch7/install/share/lua/5.1/nngraph/gmodule.lua]:96-mnode")
GRAPH_IO_LABEL = "[[C]]:-1_"

#: Entry order of each class's field table as torch.save writes it (Lua's hash order).
FIELD_ORDER = {
    "nn.Identity": ("gradInput", "_type", "output"),
    "OneHot": ("outputSize", "_type", "output", "gradInput", "_eye"),
    "nn.Linear": ("gradBias", "weight", "_type", "output", "gradInput", "gradWeight", "bias"),
    "nn.CAddTable": ("gradInput", "_type", "output"),
    "nn.CMulTable": ("gradInput", "_type", "output"),
    "nn.Reshape": ("_type", "output", "gradInput", "size", "batchsize", "nelement"),
    "nn.SplitTable": ("gradInput", "output", "_type", "dimension"),
    "nn.Sigmoid": ("gradInput", "_type", "output"),
    "nn.Tanh": ("gradInput", "_type", "output"),
    "nn.LogSoftMax": ("gradInput", "_type", "output"),
    "nn.MulConstant": ("inplace", "_type", "constant_scalar", "gradInput", "output"),
    "nn.AddConstant": ("inplace", "_type", "constant_scalar", "gradInput", "output"),
    "nn.Dropout": ("v2", "noise", "_type", "p", "gradInput", "stochastic_inference", "output",
                   "train"),
    "nn.ClassNLLCriterion": ("ignoreIndex", "sizeAverage", "output", "gradInput",
                             "total_weight_tensor", "target", "output_tensor"),
    "nngraph.Node": ("data", "visited", "id", "children", "marked"),
    "graph.Edge": ("to", "from"),
    "graph.Graph": ("nodes", "edges"),
    "nn.gModule": ("output", "forwardnodes", "outnode", "fg", "nInputs", "_type",
                   "backwardnodes", "modules", "bg", "verbose", "innode"),
}
#: Entry order of a node's ``data`` table, by the kind of node.
DATA_ORDER = {
    "module": ("annotations", "module", "reverseMap", "forwardNodeId", "mapindex"),
    "input": ("annotations", "input", "mapindex", "reverseMap", "forwardNodeId"),
    "split": ("annotations", "mapindex", "reverseMap", "nSplitOutputs", "forwardNodeId"),
    "select": ("annotations", "input", "mapindex", "selectindex", "forwardNodeId",
               "reverseMap"),
}
TOP_ORDER = ("val_loss", "vocab", "protos", "epoch", "train_losses", "opt", "val_losses", "i")
#: train.lua's 24 options in the order its ``opt`` table is written.
OPT_ORDER = ("max_epochs", "seed", "batch_size", "gpuid", "decay_rate", "learning_rate_decay",
             "opencl", "model", "grad_clip", "print_every", "data_dir", "seq_length",
             "num_layers", "learning_rate_decay_after", "checkpoint_dir", "rnn_size",
             "train_frac", "savefile", "accurate_gpu_timing", "learning_rate",
             "eval_val_every", "val_frac", "init_from", "dropout")


def charrnn_checkpoint_table(model_type, vocab_bytes, linears, dropout, opt, train_losses,
                             val_losses, i, epoch, grad_linears=None):
    """The table train.lua hands to ``torch.save`` at iteration ``i``, to be written with
    :func:`write_charrnn_checkpoint`; its values are as ``read_t7`` gives them back.

    ``vocab_bytes``: the tokens in id order (id 1 first), each a 1-byte ``bytes`` or an
    int 0..255; ``opt``: train.lua's options; ``linears``: (weight (out,
    in), bias (out,)) pairs in the gModule's ``modules`` order (README, "Where the Linears
    sit"), the decoder last; ``grad_linears``: their gradients alike (zeros when None);
    ``val_losses``: {iteration: loss}, which must hold ``i`` (it is also ``val_loss``).
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type should be one of {', '.join(MODEL_TYPES)}, not "
                         f"{model_type!r}")
    vocab = _vocab(vocab_bytes)
    num_layers, rnn_size = _layers(model_type, len(vocab), linears)
    if not (isinstance(dropout, numbers.Real) and 0 <= dropout < 1):
        raise ValueError(f"dropout should be a number in [0, 1), not {dropout!r}")
    gmodule, specs = _Builder(model_type).model(len(vocab), rnn_size, num_layers,
                                                float(dropout))
    _set_parameters(specs, linears, grad_linears)
    val_losses = {int(k): _number(v, "val_losses") for k, v in sorted(val_losses.items())}
    if int(i) not in val_losses:
        raise ValueError(f"val_losses should hold the loss of iteration {i} (train.lua "
                         f"saves right after evaluating), found iterations "
                         f"{sorted(val_losses)}")
    parts = {
        "val_loss": val_losses[int(i)], "vocab": vocab,
        "protos": {"rnn": gmodule, "criterion": _criterion()},
        "epoch": _number(epoch, "epoch"),
        "train_losses": {k: _number(v, "train_losses")
                         for k, v in enumerate(train_losses, start=1)},
        "opt": _opt(opt, model_type, rnn_size, num_layers, dropout),
        "val_losses": {float(k): val_losses[k]                  # filled in iteration order
                       for k in pairs_order(val_losses)},
        "i": float(i),
    }
    return {key: parts[key] for key in TOP_ORDER}


def write_charrnn_checkpoint(path, table):
    """Write a :func:`charrnn_checkpoint_table` to ``path`` as ``torch.save`` does;
    atomically: the file is serialised first and renamed into place only when complete, so
    a failure keeps whatever was at ``path``."""
    write_t7(path, table, what="char-rnn checkpoint")


# --- the checkpoint's plain fields ------------------------------------------------------------

def _vocab(vocab_bytes):
    """``{char: id}`` with each byte as the t7 reader gives strings (surrogate-escaped)."""
    vocab = {}
    for index, token in enumerate(vocab_bytes, start=1):
        if isinstance(token, int) and not isinstance(token, bool) and 0 <= token < 256:
            token = bytes([token])
        if not isinstance(token, (bytes, bytearray)) or len(token) != 1:
            raise ValueError(f"vocab_bytes[{index - 1}] should be a single byte, found "
                             f"{token!r}")
        char = bytes(token).decode("utf-8", "surrogateescape")
        if char in vocab:
            raise ValueError(f"vocab_bytes holds the byte {bytes(token)!r} twice")
        vocab[char] = float(index)
    if not vocab:
        raise ValueError("vocab_bytes is empty")
    # the loader builds the table in id order, torch.save's vocab.t7 lists it in pairs
    # order, and train.lua's table is the one torch.load rebuilt from that list
    return {char: vocab[char] for char in pairs_order(pairs_order(vocab))}


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} should hold numbers, found {value!r}")
    return float(value)


def _opt(opt, model_type, rnn_size, num_layers, dropout):
    """train.lua's options, checked against the model (sample.lua builds its states from
    opt.rnn_size and opt.num_layers), in the order the file lists them."""
    wanted = {"model": model_type, "rnn_size": rnn_size, "num_layers": num_layers,
              "dropout": float(dropout)}
    for key, value in wanted.items():
        found = opt.get(key)
        if key != "dropout" and found is None:
            raise ValueError(f"opt should hold {key} (sample.lua reads it)")
        if found is not None and found != value:
            raise ValueError(f"opt.{key} is {found!r}, but the model has {value!r}")
    table = {}
    for key in OPT_ORDER + tuple(k for k in opt if k not in OPT_ORDER):
        if key in opt:
            table[key] = _lua_value(opt[key], f"opt.{key}")
    return table


def _lua_value(value, what):
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    raise ValueError(f"{what} should be a number, string or boolean, found {value!r}")


def _layers(model_type, vocab_size, linears):
    """(num_layers, rnn_size) of ``linears``, whose count and decoder must fit the model."""
    per = LINEARS_PER_LAYER[model_type]
    count = len(linears)
    if count < per + 1 or (count - 1) % per:
        raise ValueError(f"a char-rnn {model_type} has {per} Linears per layer and a "
                         f"decoder, so 1 + {per} * num_layers of them; found {count}")
    weight = linears[-1][0]
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 \
            or weight.shape[0] != vocab_size:
        raise ValueError(f"the decoder (the last Linear) should have a weight of shape "
                         f"({vocab_size}, rnn_size), found {_shape(weight)}")
    return (count - 1) // per, int(weight.shape[1])


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


# --- modules ------------------------------------------------------------------------------

def _empty():
    return torch.empty(0, dtype=torch.float64)


def _module(class_name, **fields):
    """An nn module as Torch7 serialises it: its fields in file order, with the empty
    ``output``/``gradInput`` buffers and ``_type`` of a module never run."""
    defaults = {"gradInput": _empty, "output": _empty, "_type": lambda: DOUBLE}
    ordered = {}
    for key in FIELD_ORDER[class_name]:
        ordered[key] = fields.pop(key) if key in fields else defaults[key]()
    if fields:
        raise ValueError(f"{class_name} has no fields {sorted(fields)}")
    return TorchObject(class_name, ordered)


def _table_module(class_name):
    """CAddTable/CMulTable: their gradInput is a table."""
    return _module(class_name, gradInput={})


def _linear():
    """An nn.Linear whose tensors are set later, from the flat parameter storages."""
    return _module("nn.Linear", weight=None, bias=None, gradWeight=None, gradBias=None)


def _reshape(rows, cols):
    size = Storage("torch.LongStorage", torch.tensor([rows, cols], dtype=torch.int64))
    # batchsize[1] is never set in nn.Reshape (garbage in the original): written as 0
    batch = Storage("torch.LongStorage", torch.tensor([0, rows, cols], dtype=torch.int64))
    return _module("nn.Reshape", size=size, batchsize=batch, nelement=float(rows * cols))


def _criterion():
    return _module("nn.ClassNLLCriterion", ignoreIndex=-100.0, sizeAverage=True, output=0.0,
                   total_weight_tensor=torch.ones(1, dtype=torch.float64),
                   target=torch.zeros(1, dtype=torch.int64),
                   output_tensor=torch.zeros(1, dtype=torch.float64))


def _set_parameters(specs, linears, grad_linears):
    """Point every Linear's weight/bias into one float64 storage in ``modules`` order, and
    the gradients into a second, as combine_all_parameters leaves them. ``specs``: (module,
    (out, in), role) of each Linear in modules order."""
    if grad_linears is not None and len(grad_linears) != len(specs):
        raise ValueError(f"grad_linears should hold {len(specs)} pairs, found "
                         f"{len(grad_linears)}")
    total = sum(out * (inp + 1) for _, (out, inp), _ in specs)
    params = torch.zeros(total, dtype=torch.float64)
    grads = torch.zeros(total, dtype=torch.float64)
    offset = 0
    for k, (module, (out, inp), role) in enumerate(specs):
        views = []
        for flat in (params, grads):
            views += [flat[offset:offset + out * inp].view(out, inp),
                      flat[offset + out * inp:offset + out * (inp + 1)]]
        for name, view in zip(("weight", "bias", "gradWeight", "gradBias"), views):
            module.fields[name] = view
        sources = [linears[k]] + ([grad_linears[k]] if grad_linears is not None else [])
        for pair, (w_view, b_view), what in zip(sources, (views[:2], views[2:]),
                                                ("", "gradient of the ")):
            weight, bias = pair
            _copy(w_view, weight, f"the {what}weight of Linear {k + 1} ({role})")
            _copy(b_view, bias, f"the {what}bias of Linear {k + 1} ({role})")
        offset += out * (inp + 1)


def _copy(view, value, what):
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(view.shape):
        raise ValueError(f"{what} should have shape {tuple(view.shape)}, found "
                         f"{_shape(value)}")
    view.copy_(value.detach().to(torch.float64))


# --- nngraph's object web -----------------------------------------------------------------

class _Data:
    """A node's ``data`` table while the graph is built (nngraph/node.lua)."""

    def __init__(self, kind, label, module=None, select=None, splits=None):
        self.kind, self.label, self.module = kind, label, module
        self.select, self.splits, self.name = select, splits, None
        self.mapindex, self.reverse_map = [], []
        self.input = {} if kind in ("input", "select") else None
        self.forward_id = None


class _Node:
    """A ``graph.Node``: ``data``, ``id`` and ``children`` (a node's inputs in bg)."""

    def __init__(self, data):
        self.data, self.id, self.children = data, 0, []

    def add(self, child, domap=False):
        """nngraph's Node:add: a new child; with ``domap``, also an input of this node."""
        if child not in self.children:
            self.children.append(child)
        if domap:
            self.data.mapindex.append(child.data)
            child.data.reverse_map.append(self)


class _Graph:
    """A ``graph.Graph``: nodes and edges in insertion order; ids are node positions."""

    def __init__(self):
        self.nodes, self.edges, self.position = [], [], {}

    def add(self, edge):
        source, target = edge
        self.edges.append(edge)
        for node in edge:
            if node not in self.position:
                self.nodes.append(node)
                self.position[node] = len(self.nodes)
        source.add(target)
        source.id, target.id = self.position[source], self.position[target]

    def reverse(self):
        """The graph with every edge turned round, on new nodes sharing the data."""
        reversed_graph, copies = _Graph(), {}
        for source, target in self.edges:
            for node in (source, target):
                if node not in copies:
                    copies[node] = _Node(node.data)
            reversed_graph.add((copies[target], copies[source]))
        return reversed_graph, copies

    def roots(self):
        targets = {target for _, target in self.edges}
        roots = {source for source, _ in self.edges if source not in targets}
        return sorted(roots, key=self.position.get)

    def topsort(self):
        """graph.Graph:topsort: post-order depth-first search of the reversed graph."""
        reversed_graph, copies = self.reverse()
        original = {copy: node for node, copy in copies.items()}
        (root,) = reversed_graph.roots()
        order, visited, stack = [], {root}, [(root, iter(root.children))]
        while stack:
            node, children = stack[-1]
            child = next((c for c in children if c not in visited), None)
            if child is None:
                stack.pop()
                order.append(original[node])
            else:
                visited.add(child)
                stack.append((child, iter(child.children)))
        return order


def _bfs_graph(start):
    """graph.Node:graph(): the edges to every child, visiting nodes breadth first."""
    graph, queue, marked = _Graph(), [start], {start}
    while queue:
        node = queue.pop(0)
        for child in node.children:
            graph.add((node, child))
        for child in node.children:
            if child not in marked:
                marked.add(child)
                queue.append(child)
    return graph


class _Builder:
    """char-rnn's model/LSTM.lua, GRU.lua and RNN.lua, node by node, as nngraph records
    them: each node's debug label is the line of the model file that made it."""

    def __init__(self, model_type):
        self.model_type = model_type
        self.file = f"./model/{model_type.upper()}.lua"
        self.specs = {}                      # id(Linear) -> ((out, in), role)

    def model(self, vocab_size, rnn_size, num_layers, dropout):
        """(gModule TorchObject, [(Linear, (out, in), role)] in modules order)."""
        build = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[self.model_type]
        inputs, outputs = build(vocab_size, rnn_size, num_layers, dropout)
        gmodule, modules = self._gmodule(inputs, outputs)
        specs = [(m,) + self.specs[id(m)] for m in modules if m.class_name == "nn.Linear"]
        return gmodule, specs

    def node(self, module, line, *inputs):
        """``module(inputs)``: a node whose inputs are ``inputs``, in order."""
        node = _Node(_Data("module", f"[{self.file}]:{line}_", module))
        for parent in inputs:
            node.add(parent, domap=True)
        return node

    def linear(self, line, x, shape, role, name=None):
        module = _linear()
        self.specs[id(module)] = (shape, role)
        node = self.node(module, line, x)
        node.data.name = name                   # the LSTM's annotate{name = ...}
        return node

    def split(self, node, count, at):
        """``node:split(count)``: a split node and ``count`` select nodes below it."""
        base = node.data.label
        splitter = _Node(_Data("split", f"{base} split at {at}-mnode", splits=count))
        splitter.add(node, domap=True)
        selects = []
        for k in range(1, count + 1):
            select = _Node(_Data("select", f"{base}-{k}", select=k))
            select.add(splitter, domap=True)
            selects.append(select)
        return selects

    def layer_input(self, layer, one_hot_line, dropout_line, vocab_size, dropout, x, below):
        """Layer 1 reads OneHot(x); a layer above reads the h below, through Dropout."""
        if layer == 1:
            one_hot = _module("OneHot", outputSize=float(vocab_size),
                              _eye=torch.eye(vocab_size, dtype=torch.float64))
            return self.node(one_hot, one_hot_line, x)
        if dropout > 0:
            return self.node(_dropout(dropout), dropout_line, below)
        return below

    def decoder(self, lines, top_h, vocab_size, rnn_size, dropout, name=None):
        """Dropout on the top h (when any), the decoder Linear and the LogSoftMax."""
        if dropout > 0:
            top_h = self.node(_dropout(dropout), lines[0], top_h)
        proj = self.linear(lines[1], top_h, (vocab_size, rnn_size), "decoder", name)
        return self.node(_module("nn.LogSoftMax"), lines[2], proj)

    def _lstm(self, V, H, L, dropout):
        """model/LSTM.lua: inputs x, c_1, h_1, ...; outputs c_1, h_1, ..., logprobs."""
        inputs = [self.node(_module("nn.Identity"), 8)]
        for _ in range(L):
            inputs += [self.node(_module("nn.Identity"), 10),
                       self.node(_module("nn.Identity"), 11)]
        outputs = []
        for layer in range(1, L + 1):
            prev_c, prev_h = inputs[2 * layer - 1], inputs[2 * layer]
            below = outputs[-1] if outputs else None
            x = self.layer_input(layer, 22, 26, V, dropout, inputs[0], below)
            size = V if layer == 1 else H
            i2h = self.linear(30, x, (4 * H, size), f"i2h_{layer}", f"i2h_{layer}")
            h2h = self.linear(31, prev_h, (4 * H, H), f"h2h_{layer}", f"h2h_{layer}")
            sums = self.node(_table_module("nn.CAddTable"), 32, i2h, h2h)
            reshaped = self.node(_reshape(4, H), 34, sums)
            gates = self.split(self.node(_module("nn.SplitTable", dimension=2.0), 35,
                                         reshaped), 4, f"[{self.file}]:35")
            in_gate = self.node(_module("nn.Sigmoid"), 37, gates[0])
            forget_gate = self.node(_module("nn.Sigmoid"), 38, gates[1])
            out_gate = self.node(_module("nn.Sigmoid"), 39, gates[2])
            in_transform = self.node(_module("nn.Tanh"), 41, gates[3])
            kept = self.node(_table_module("nn.CMulTable"), 44, forget_gate, prev_c)
            written = self.node(_table_module("nn.CMulTable"), 45, in_gate, in_transform)
            next_c = self.node(_table_module("nn.CAddTable"), 43, kept, written)
            squashed = self.node(_module("nn.Tanh"), 48, next_c)
            next_h = self.node(_table_module("nn.CMulTable"), 48, out_gate, squashed)
            outputs += [next_c, next_h]
        outputs.append(self.decoder((56, 57, 58), outputs[-1], V, H, dropout, "decoder"))
        return inputs, outputs

    def _gru(self, V, H, L, dropout):
        """model/GRU.lua: inputs x, h_1, ...; outputs h_1, ..., logprobs."""
        inputs = [self.node(_module("nn.Identity"), 12)]
        inputs += [self.node(_module("nn.Identity"), 14) for _ in range(L)]
        outputs = []
        for layer in range(1, L + 1):
            prev_h = inputs[layer]
            below = outputs[-1] if outputs else None
            x = self.layer_input(layer, 30, 34, V, dropout, inputs[0], below)
            size = V if layer == 1 else H
            gates = []
            for gate, line in (("z", 39), ("r", 40)):         # new_input_sum, lines 18-20
                i2h = self.linear(18, x, (H, size), f"i2h_{gate} of layer {layer}")
                h2h = self.linear(19, prev_h, (H, H), f"h2h_{gate} of layer {layer}")
                sums = self.node(_table_module("nn.CAddTable"), line, i2h, h2h)
                gates.append(self.node(_module("nn.Sigmoid"), line, sums))
            update_gate, reset_gate = gates
            gated = self.node(_table_module("nn.CMulTable"), 42, reset_gate, prev_h)
            p2 = self.linear(43, gated, (H, H), f"h2h_c of layer {layer}")
            p1 = self.linear(44, x, (H, size), f"i2h_c of layer {layer}")
            sums = self.node(_table_module("nn.CAddTable"), 45, p1, p2)
            candidate = self.node(_module("nn.Tanh"), 45, sums)
            zh = self.node(_table_module("nn.CMulTable"), 47, update_gate, candidate)
            negated = self.node(_module("nn.MulConstant", inplace=False,
                                        constant_scalar=-1.0), 48, update_gate)
            one_minus = self.node(_module("nn.AddConstant", inplace=False,
                                          constant_scalar=1.0), 48, negated)
            zhm1 = self.node(_table_module("nn.CMulTable"), 48, one_minus, prev_h)
            outputs.append(self.node(_table_module("nn.CAddTable"), 49, zh, zhm1))
        outputs.append(self.decoder((55, 56, 57), outputs[-1], V, H, dropout))
        return inputs, outputs

    def _rnn(self, V, H, L, dropout):
        """model/RNN.lua: inputs x, h_1, ...; outputs h_1, ..., logprobs."""
        inputs = [self.node(_module("nn.Identity"), 7)]
        inputs += [self.node(_module("nn.Identity"), 9) for _ in range(L)]
        outputs = []
        for layer in range(1, L + 1):
            prev_h = inputs[layer]
            below = outputs[-1] if outputs else None
            x = self.layer_input(layer, 19, 23, V, dropout, inputs[0], below)
            size = V if layer == 1 else H
            i2h = self.linear(28, x, (H, size), f"i2h of layer {layer}")
            h2h = self.linear(29, prev_h, (H, H), f"h2h of layer {layer}")
            sums = self.node(_table_module("nn.CAddTable"), 30, i2h, h2h)
            outputs.append(self.node(_module("nn.Tanh"), 30, sums))
        outputs.append(self.decoder((36, 37, 38), outputs[-1], V, H, dropout))
        return inputs, outputs

    def _gmodule(self, inputs, outputs):
        """nn.gModule(inputs, outputs) (nngraph/gmodule.lua): the output node, the input
        node split into the inputs, bg from the output node, fg its reverse, both sorted."""
        outnode = _Node(_Data("input", GRAPH_IO_LABEL))
        for node in outputs:
            outnode.add(node, domap=True)
        innode = _Node(_Data("input", GRAPH_IO_LABEL))
        at = GMODULE_SPLIT_LABEL[len(GRAPH_IO_LABEL) + len(" split at "):-len("-mnode")]
        for node, select in zip(inputs, self.split(innode, len(inputs), at)):
            node.add(select, domap=True)
        bg = _bfs_graph(outnode)
        fg, _ = bg.reverse()
        (fg_innode,) = fg.roots()
        forward, backward = fg.topsort(), bg.topsort()
        for node in forward:
            node.data.forward_id = node.id
        modules = [node.data.module for node in forward if node.data.module is not None]
        web = _Web(fg, bg)
        gmodule = _object("nn.gModule", {
            "output": outnode.data.input, "forwardnodes": web.node_list(forward),
            "outnode": web.nodes[outnode], "fg": web.graph(fg), "nInputs": float(len(inputs)),
            "_type": DOUBLE, "backwardnodes": web.node_list(backward),
            "modules": dict(enumerate(modules, start=1)), "bg": web.graph(bg),
            "verbose": False, "innode": web.nodes[fg_innode]})
        return gmodule, modules


def _dropout(p):
    return _module("nn.Dropout", v2=True, noise=_empty(), p=p, stochastic_inference=False,
                   train=True)


def _object(class_name, fields):
    return TorchObject(class_name, {key: fields[key] for key in FIELD_ORDER[class_name]})


def _numbered(items):
    """A Lua list that also maps each item back to its position, as graph.lua keeps
    ``children``, ``nodes`` and ``edges`` (and nngraph ``mapindex``): {1: a, a: 1, ...}."""
    table = dict(enumerate(items, start=1))
    table.update({(TableKey(item) if isinstance(item, dict) else item): float(k)
                  for k, item in table.items()})
    return table


class _Web:
    """The Lua objects of both graphs' nodes, their shared data tables and the edges."""

    def __init__(self, fg, bg):
        self.nodes = {node: TorchObject("nngraph.Node", {}) for node in fg.nodes + bg.nodes}
        self.data = {}
        for node in fg.nodes + bg.nodes:
            self.data.setdefault(node.data, {})
        for data, table in self.data.items():
            table.update(self._data(data))
        for node, obj in self.nodes.items():
            obj.fields.update(_object("nngraph.Node", {
                "data": self.data[node.data], "visited": False, "id": float(node.id),
                "children": _numbered([self.nodes[c] for c in node.children]),
                "marked": False}).fields)

    def _data(self, data):
        annotations = {"_debugLabel": data.label}
        if data.name is not None:
            annotations["name"] = data.name
        fields = {"annotations": annotations, "module": data.module,
                  "reverseMap": {self.nodes[n]: True for n in data.reverse_map},
                  "forwardNodeId": float(data.forward_id),
                  "mapindex": _numbered([self.data[p] for p in data.mapindex]),
                  "input": data.input, "selectindex": _float(data.select),
                  "nSplitOutputs": _float(data.splits)}
        return {key: fields[key] for key in DATA_ORDER[data.kind]}

    def node_list(self, nodes):
        return {k: self.nodes[node] for k, node in enumerate(nodes, start=1)}

    def graph(self, graph):
        edges = [_object("graph.Edge", {"from": self.nodes[source], "to": self.nodes[target]})
                 for source, target in graph.edges]
        return _object("graph.Graph", {"nodes": _numbered([self.nodes[n] for n in graph.nodes]),
                                       "edges": _numbered(edges)})


def _float(value):
    return None if value is None else float(value)
