"""Where each layer's Linears sit in a char-rnn graph, found from the graph's wiring.

Module order in the file is topological, not the order of construction, and only LSTM files
name their Linears, so each Linear is told by what it reads: the one-hot input, a layer's
previous hidden state (a graph input), the hidden state a layer outputs, or (in the GRU) the
reset-gated state. :func:`find_layers` returns, per layer, the Linears by role:

- lstm, rnn: ``i2h`` (reads the layer's input), ``h2h`` (reads its previous h);
- gru: ``i2h_z``, ``h2h_z`` (update gate), ``i2h_r``, ``h2h_r`` (reset gate), ``i2h_c``,
  ``h2h_c`` (candidate; ``h2h_c`` reads ``r * h``);

and the decoder. The wiring found here is then checked by running the graph itself
(torchrnn_py/charrnn/checkpoint.py), so that a look-alike computing something else is refused.
"""
#: Where the input of each layer enters, and which inputs are states (fixtures README).
STATES_PER_LAYER = {"lstm": 2, "gru": 1, "rnn": 1}
TRANSPARENT = ("nn.Identity", "nn.Dropout")


def source(node):
    """The node whose value ``node`` passes on: up through Identity and Dropout modules."""
    while node.kind in TRANSPARENT and len(node.parents) == 1:
        node = node.parents[0]
    return node


def find_layers(graph, model_type, num_layers, fail):
    """``(layers, decoder, dropouts)``: a list of {role: Linear node} per layer, the
    decoder's Linear node, and the Dropout modules between the layers (in graph order)."""
    S = STATES_PER_LAYER[model_type]
    L = num_layers
    if graph.num_inputs != S * L + 1:
        fail(f"a {L}-layer {model_type} takes {S * L + 1} inputs, but this graph takes "
             f"{graph.num_inputs}")
    outputs = graph.output.parents
    if len(outputs) != S * L + 1:
        fail(f"a {L}-layer {model_type} gives {S * L + 1} outputs, but this graph gives "
             f"{len(outputs)}")
    x = _graph_input(graph, 1, fail)
    one_hots = [n for n in graph.nodes if n.kind == "OneHot" and len(n.parents) == 1
                and source(n.parents[0]) is x]
    if len(one_hots) != 1:
        fail("the graph's first input does not go through one OneHot")
    layer_input = one_hots[0]
    layers = []
    for layer in range(1, L + 1):
        prev_h = _graph_input(graph, S * layer + 1, fail)
        readers = _linears_reading(graph, layer_input), _linears_reading(graph, prev_h)
        match = _lstm_or_rnn if model_type != "gru" else _gru
        layers.append(match(readers, prev_h, layer, fail, graph))
        layer_input = source(outputs[S * layer - 1])          # this layer's next h
    decoders = _linears_reading(graph, layer_input)
    top = source(outputs[-1])
    if len(decoders) != 1 or top.kind != "nn.LogSoftMax" or len(top.parents) != 1 \
            or top.parents[0] is not decoders[0]:
        fail("the top layer's h does not go through one Linear into the LogSoftMax output")
    dropouts = [n.module for n in graph.nodes if n.kind == "nn.Dropout"]
    return layers, decoders[0], dropouts


def _graph_input(graph, k, fail):
    node = graph.input_select(k)
    if node is None:
        fail(f"the graph has no input {k}")
    return node


def _linears_reading(graph, node):
    """The Linear nodes whose input is ``node``'s value (through Identity/Dropout)."""
    return [n for n in graph.linears() if len(n.parents) == 1 and source(n.parents[0]) is node]


def _lstm_or_rnn(readers, prev_h, layer, fail, graph):
    from_input, from_state = readers
    if len(from_input) != 1 or len(from_state) != 1:
        fail(f"layer {layer}: expected one Linear on its input and one on its previous h, "
             f"found {len(from_input)} and {len(from_state)}")
    return {"i2h": from_input[0], "h2h": from_state[0]}


def _gru(readers, prev_h, layer, fail, graph):
    from_input, from_state = readers
    gated = [n for n in graph.nodes if n.kind == "nn.CMulTable"
             and any(source(p) is prev_h for p in n.parents)
             and any(c.kind == "nn.Linear" for c in n.children)]
    if len(from_input) != 3 or len(from_state) != 2 or len(gated) != 1:
        fail(f"layer {layer}: expected a GRU's three Linears on its input, two on its "
             f"previous h and one on the reset-gated h, found {len(from_input)}, "
             f"{len(from_state)} and {len(gated)}")
    candidates = [c for c in gated[0].children if c.kind == "nn.Linear"]
    reset = [p for p in gated[0].parents if source(p) is not prev_h]
    if len(candidates) != 1 or len(reset) != 1:
        fail(f"layer {layer}: expected one Linear on the reset-gated h, found "
             f"{len(candidates)}")
    h2h_c = candidates[0]
    roles = {"h2h_c": h2h_c, "i2h_c": _partner(h2h_c, from_input, layer, fail)}
    for h2h in from_state:
        i2h = _partner(h2h, from_input, layer, fail)
        gate_sum = _common_sum(h2h, i2h)
        gate = "r" if gate_sum in reset[0].parents else "z"
        roles[f"h2h_{gate}"], roles[f"i2h_{gate}"] = h2h, i2h
    if len(roles) != 6:
        fail(f"layer {layer}: could not tell the GRU's update and reset gates apart")
    return roles


def _partner(linear, candidates, layer, fail):
    """The one Linear of ``candidates`` added to ``linear`` (they share a CAddTable)."""
    found = [c for c in candidates if _common_sum(linear, c) is not None]
    if len(found) != 1:
        fail(f"layer {layer}: a Linear on the previous h is not added to exactly one "
             f"Linear on the input")
    return found[0]


def _common_sum(a, b):
    for child in a.children:
        if child.kind == "nn.CAddTable" and child in b.children:
            return child
    return None
