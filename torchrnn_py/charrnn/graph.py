"""char-rnn's ``protos.rnn``, an nngraph ``nn.gModule``, as a graph of nodes that can be run.

:func:`read_graph` turns the serialised web (``forwardnodes``: ``nngraph.Node`` objects whose
``data.mapindex`` lists each node's parents in input order) into :class:`GraphNode` objects
with parents and children; :func:`run_graph` computes the graph's outputs for a batch of
inputs, with each module as nn computes it in evaluation mode. Only the module classes of
char-rnn's three models are known; anything else is refused in one line. Nothing recurses:
a hostile file cannot exhaust the stack.
"""
import math

import torch

from ..ids import to_index
from ..t7 import Storage, TorchObject

#: The nn modules char-rnn's LSTM, GRU and RNN are made of (fixtures README, gModule).
KNOWN_MODULES = ("nn.Identity", "OneHot", "nn.Linear", "nn.CAddTable", "nn.CMulTable",
                 "nn.Sigmoid", "nn.Tanh", "nn.Reshape", "nn.SplitTable", "nn.MulConstant",
                 "nn.AddConstant", "nn.Dropout", "nn.LogSoftMax")


class GraphNode:
    """One node: its ``module`` (a TorchObject, None for input/split/select/output nodes),
    ``parents`` in input order, ``children``, and ``select`` (k: takes input k of a table)."""

    __slots__ = ("index", "module", "parents", "children", "select", "splits", "label")

    def __init__(self, index, module, select, splits, label):
        self.index, self.module, self.select, self.splits = index, module, select, splits
        self.label = label
        self.parents, self.children = [], []

    @property
    def kind(self):
        """The module's class name, or None for a node without a module."""
        return self.module.class_name if self.module is not None else None

    def __repr__(self):
        return f"<GraphNode {self.index} {self.kind or 'select/split'} {self.label}>"


class Graph:
    """The nodes in topological order, the input node (the gModule's ``innode``), the
    output node (the last one), and ``num_inputs``."""

    def __init__(self, nodes, num_inputs):
        self.nodes, self.num_inputs = nodes, num_inputs
        self.input, self.output = nodes[0], nodes[-1]

    def input_select(self, k):
        """The node that takes graph input k (1-based): a select node below the split."""
        for split in self.input.children:
            for node in split.children:
                if node.select == k:
                    return node
        return None

    def linears(self):
        return [node for node in self.nodes if node.kind == "nn.Linear"]


def read_graph(gmodule, fail):
    """A :class:`Graph` of an ``nn.gModule`` TorchObject; ``fail(message)`` raises."""
    if not isinstance(gmodule, TorchObject) or gmodule.class_name != "nn.gModule":
        fail(f"protos.rnn should be an nn.gModule, found {_describe(gmodule)}")
    listed = _lua_list(gmodule.get("forwardnodes"), "protos.rnn.forwardnodes", fail)
    by_data, nodes = {}, []
    for index, node in enumerate(listed, start=1):
        data = node.get("data") if isinstance(node, TorchObject) else None
        if not isinstance(data, dict) or id(data) in by_data:
            fail(f"forwardnodes[{index}] is not an nngraph.Node with its own data")
        module = data.get("module")
        if module is not None and (not isinstance(module, TorchObject)
                                   or module.class_name not in KNOWN_MODULES):
            fail(f"forwardnodes[{index}] holds {_describe(module)}, which is not one of "
                 f"char-rnn's modules ({', '.join(KNOWN_MODULES)})")
        select, splits = _count(data.get("selectindex")), _count(data.get("nSplitOutputs"))
        label = (data.get("annotations") or {}).get("_debugLabel") \
            if isinstance(data.get("annotations"), dict) else None
        graph_node = GraphNode(index, module, select, splits, label)
        for position, parent in enumerate(_parents(data, index, fail), start=1):
            if id(parent) not in by_data:
                fail(f"forwardnodes[{index}]: its input {position} is not a node listed "
                     f"before it (the list is not in topological order)")
            graph_node.parents.append(by_data[id(parent)])
        for parent in graph_node.parents:
            parent.children.append(graph_node)
        by_data[id(data)] = graph_node
        nodes.append(graph_node)
    if len(nodes) < 3 or nodes[0].parents or nodes[0].module is not None:
        fail("the graph does not start with its input node")
    num_inputs = _count(gmodule.get("nInputs"))
    if num_inputs is None or num_inputs < 2:
        fail(f"protos.rnn.nInputs should be a count of at least 2, found "
             f"{_describe(gmodule.get('nInputs'))}")
    return Graph(nodes, num_inputs)


def _parents(data, index, fail):
    """The parents' data tables in input order: ``mapindex[1..n]``."""
    mapindex = data.get("mapindex")
    if not isinstance(mapindex, dict):
        fail(f"forwardnodes[{index}] has no mapindex table")
    count = sum(1 for key in mapindex if isinstance(key, float) or isinstance(key, int))
    parents = []
    for position in range(1, count + 1):
        parent = mapindex.get(position)
        if not isinstance(parent, dict):
            fail(f"forwardnodes[{index}].data.mapindex should list inputs 1..{count}, "
                 f"found {_describe(parent)} at {position}")
        parents.append(parent)
    return parents


def run_graph(graph, inputs):
    """The graph's outputs (a list) for ``inputs`` (a list of ``graph.num_inputs`` tensors:
    ids (N,) for the OneHot, states (N, H)), every module in evaluation mode. Raises
    ValueError where a module's input does not fit it."""
    values = {}
    for node in graph.nodes:
        if node is graph.input:
            value = list(inputs)
        elif node.module is not None:
            args = [values[p.index] for p in node.parents]
            value = _apply(node.module, args[0] if len(args) == 1 else args)
        elif node.select is not None:
            (parent,) = node.parents
            table = values[parent.index]
            if not isinstance(table, list) or not 1 <= node.select <= len(table):
                raise ValueError(f"node {node.index} selects input {node.select} of a "
                                 f"table of {len(table) if isinstance(table, list) else 0}")
            value = table[node.select - 1]
        elif len(node.parents) == 1:
            value = values[node.parents[0].index]          # a split node, or one output
        else:
            value = [values[p.index] for p in node.parents]  # the output node
        values[node.index] = value
    out = values[graph.output.index]
    return out if isinstance(out, list) else [out]


def _apply(module, x):
    """``module:forward(x)`` in evaluation mode for char-rnn's modules, x (N, ...)."""
    kind = module.class_name
    if kind == "nn.Identity":
        return x
    if kind in ("nn.CAddTable", "nn.CMulTable"):
        total = x[0]
        for term in x[1:]:
            total = total + term if kind == "nn.CAddTable" else total * term
        return total
    if kind == "OneHot":
        size = _count(module.get("outputSize"))
        ids = _tensor_arg(x).long()
        if size is None or ids.min() < 1 or ids.max() > size:
            raise ValueError(f"OneHot of size {size} given ids outside 1..{size}")
        return torch.nn.functional.one_hot(to_index(ids.view(-1)), size).double()
    if kind == "nn.Linear":
        weight, bias = module.get("weight"), module.get("bias")
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not (
                bias is None or isinstance(bias, torch.Tensor)):
            raise ValueError("an nn.Linear without a 2-D weight")
        out = _tensor_arg(x) @ weight.double().t()
        return out + bias.double() if bias is not None else out
    if kind == "nn.Sigmoid":
        return torch.sigmoid(_tensor_arg(x))
    if kind == "nn.Tanh":
        return torch.tanh(_tensor_arg(x))
    if kind == "nn.MulConstant":
        return _tensor_arg(x) * float(module.get("constant_scalar"))
    if kind == "nn.AddConstant":
        return _tensor_arg(x) + float(module.get("constant_scalar"))
    if kind == "nn.Dropout":
        p = float(module.get("p"))
        return x if module.get("v2", False) else x * (1.0 - p)
    if kind == "nn.LogSoftMax":
        return torch.log_softmax(_tensor_arg(x), dim=-1)
    if kind == "nn.Reshape":
        return _reshape(module, _tensor_arg(x))
    return _split(module, _tensor_arg(x))                       # nn.SplitTable


def _reshape(module, x):
    size = module.get("size")
    shape = [int(v) for v in size.tolist()] if isinstance(size, Storage) else None
    if not shape or math.prod(shape) <= 0:
        raise ValueError("nn.Reshape without a size")
    if x.numel() == math.prod(shape):
        return x.reshape(shape)
    return x.reshape([x.shape[0]] + shape)                      # batch mode


def _split(module, x):
    dimension = _count(module.get("dimension"))
    if dimension is None:
        raise ValueError("nn.SplitTable without a dimension")
    input_dims = _count(module.get("nInputDims"))
    if input_dims is not None and x.dim() == input_dims + 1:
        dimension += 1
    return list(x.unbind(dimension - 1))


def _tensor_arg(x):
    if not isinstance(x, torch.Tensor):
        raise ValueError("a module that takes one tensor was given a table")
    return x


def _lua_list(table, what, fail):
    if not isinstance(table, dict):
        fail(f"{what} should be a list, found {_describe(table)}")
    n = len(table)
    if set(table) != set(range(1, n + 1)):
        fail(f"{what} should have keys 1..{n}")
    return [table[k] for k in range(1, n + 1)]


def _count(value):
    """A positive integral Lua number as int, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value != int(value) or value < 1 or value > 2 ** 31:
        return None
    return int(value)


def _describe(value):
    if isinstance(value, TorchObject):
        return f"a {value.class_name}"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return "nothing" if value is None else f"a {type(value).__name__}"
