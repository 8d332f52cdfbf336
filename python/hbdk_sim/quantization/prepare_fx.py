"""Graph-mode preparation: a float model as written (a public zoo's, unedited) made ready for
calibration and QAT by rewriting its torch.fx graph, where eager `prepare_qat` needs the model
written for it (fused by hand, QuantStubs placed, functional adds wrapped in modules).

    prepared = prepare_qat_fx(model, (x,), default_qconfig())   # state "calibration"
    ... run batches, then QAT2Quantize()(prepared) or hbdk_sim.compile_perf(prepared, (x,))

The algorithm, on the graph the tracer reads (frontend.torch_tracer.trace_graph):
1. Fuse conv (Conv2d, or ConvTranspose2d called without output_size) + batch norm (a BatchNorm2d
   module, or F.batch_norm on a module's statistics as a BN+activation subclass calls it) +
   ReLU/ReLU6 (module or function), and conv (+ bn) + add (+ ReLU/ReLU6) where the conv output is
   read by that add alone: one fused module replaces the chain, named after the conv (the same
   names every time, so checkpoints load).
2. Put a QuantStub after every float input and a DeQuantStub before every output.
3. `prepare_qat` the rewritten module: convs, linears, fused modules, activations and stubs get
   their fake-quantizers from their qconfig (a qconfig set per module name or type before
   preparation holds, int16 included).
4. Give every other value the integer graph needs a scale for a FakeQuantize module after it: the
   results of functions, methods and modules whose HBIR op does not keep its input's scale (add,
   mul, matmul, sigmoid, softmax, ...; data movement, pooling, resize and relu keep theirs, concat
   takes its inputs' largest, as docs/quantization.md states). Its qconfig is that of the
   innermost module the call sits in.
The result is an fx.GraphModule with the original module names; set_fake_quant_state, the
converters (QAT2Quantize), checkpoints and the export and compile functions work on it as on an
eagerly prepared model.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization.fake_quantize import FakeQuantize, set_fake_quant_state
from hbdk_sim.quantization.fuse_modules import MODES, Add, fuse_group, keeps_forward_of, prepare_qat
from hbdk_sim.quantization.qconfig import QConfig, default_qconfig
from hbdk_sim.quantization.stubs import DeQuantStub, QuantStub

_RELU_FUNCTIONS = {F.relu: nn.ReLU, torch.relu: nn.ReLU, ("method", "relu"): nn.ReLU, F.relu6: nn.ReLU6}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add, ("method", "add")}


def prepare_qat_fx(model: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor],
                   qconfig: QConfig | None = None, *, mode: str = "fuse_bn", state: str = "calibration",
                   name: str = "model") -> fx.GraphModule:
    """The float `model` (left untouched) fused and equipped with fake-quantizers by its graph (see
    the module docstring), in fake-quant `state`. `mode` is the BN fusion: "fuse_bn" folds it into
    the conv (eval statistics, for calibration), "with_bn" keeps it live for QAT. `qconfig`
    defaults to default_qconfig(); a module's own `qconfig` (set_qconfig) wins."""
    if mode not in MODES:
        raise UsageError(f"prepare_qat_fx: expected mode in {MODES} but got {mode!r}")
    # The tracer sits above quantization (it imports the quantizers): imported here, on use.
    from hbdk_sim.frontend.torch_tracer import trace_graph

    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    qconfig = qconfig if qconfig is not None else default_qconfig()
    model = copy.deepcopy(model)
    gm, values = trace_graph(model, inputs, name)
    qconfigs = {path: getattr(m, "qconfig", qconfig) for path, m in model.named_modules()}
    _fuse(gm, model, values, mode)
    _stub_inputs_and_outputs(gm, values)
    prepare_qat(gm, qconfig, inplace=True)
    _quantize_functional_results(gm, values, qconfigs, qconfig)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.train(model.training)
    return set_fake_quant_state(gm, state)


# ---- 1. fusion --------------------------------------------------------------------------------------


def _key(node: fx.Node):
    return ("method", node.target) if node.op == "call_method" else node.target


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _module(gm: fx.GraphModule, node: fx.Node, cls: type) -> nn.Module | None:
    """The module a call_module node calls when it is `cls` (or a subclass keeping its forward)."""
    if node.op != "call_module":
        return None
    m = gm.get_submodule(node.target)
    return m if isinstance(m, cls) and keeps_forward_of(m, (cls,)) is cls else None


def _batch_norm_of(gm: fx.GraphModule, model: nn.Module, node: fx.Node) -> nn.BatchNorm2d | None:
    """The BatchNorm2d a node applies: a BN module call, or F.batch_norm in eval on a BN module's
    own statistics and affine parameters (a zoo's BN + activation subclass; found in `model`, as
    the graph module keeps only the tensors it reads)."""
    bn = _module(gm, node, nn.BatchNorm2d)
    if bn is not None or node.op != "call_function" or node.target is not F.batch_norm:
        return bn
    stats = node.args[1] if len(node.args) > 1 else node.kwargs.get("running_mean")
    if not isinstance(stats, fx.Node) or stats.op != "get_attr":
        return None
    owner_path = str(stats.target).rpartition(".")[0]
    owner = model.get_submodule(owner_path) if owner_path else None
    if not isinstance(owner, nn.BatchNorm2d):
        return None
    plain = nn.BatchNorm2d(owner.num_features, owner.eps, owner.momentum, owner.affine, owner.track_running_stats)
    plain.load_state_dict(owner.state_dict())  # a plain BN: the subclass's forward adds its activation
    return plain


def _activation_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    for cls in (nn.ReLU, nn.ReLU6):
        if _module(gm, node, cls) is not None:
            return cls()
    if node.op in ("call_function", "call_method"):
        try:
            cls = _RELU_FUNCTIONS.get(_key(node))
        except TypeError:
            return None
        if cls is not None:
            return cls()
    return None


def _is_add(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return _module(gm, node, Add) is not None
    if node.op not in ("call_function", "call_method") or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return False
    try:
        return _key(node) in _ADD_FUNCTIONS
    except TypeError:
        return False


def _fusable_conv(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The plain Conv2d or ConvTranspose2d a node calls (a fused or QAT one runs no such forward); a
    transpose only when called on its input alone, as the fused module takes no output_size."""
    if _module(gm, node, nn.Conv2d) is not None:
        return gm.get_submodule(node.target)
    if _module(gm, node, nn.ConvTranspose2d) is not None and len(node.args) == 1 and not node.kwargs:
        return gm.get_submodule(node.target)
    return None


def _fuse(gm: fx.GraphModule, model: nn.Module, values: dict, mode: str) -> None:
    # A chain is a conv and what follows it, so no conv is erased before the loop reaches it.
    for node in list(gm.graph.nodes):
        if _fusable_conv(gm, node) is None:
            continue
        chain, mods, last = [node], [gm.get_submodule(node.target)], node
        nxt = _only_user(last)
        bn = _batch_norm_of(gm, model, nxt) if nxt is not None and nxt.args and nxt.args[0] is last else None
        if bn is not None:
            chain.append(nxt), mods.append(bn)
            last = nxt
        residual = None
        nxt = _only_user(last)
        if nxt is not None and _is_add(gm, nxt) and isinstance(values.get(nxt), torch.Tensor):
            a, b = nxt.args
            other = b if a is last else a
            if other is not last and isinstance(values.get(other), torch.Tensor) and \
                    tuple(values[other].shape) == tuple(values[nxt].shape):
                residual = other
                chain.append(nxt), mods.append(Add())
                last = nxt
        nxt = _only_user(last)
        act = _activation_of(gm, nxt) if nxt is not None and nxt.args and nxt.args[0] is last else None
        if act is not None:
            chain.append(nxt), mods.append(act)
            last = nxt
        if len(mods) == 1:
            continue  # a conv alone stays a conv: prepare_qat quantizes it as it is
        fused, _ = fuse_group(mods, mode)
        fused.train(mods[0].training)
        if hasattr(mods[0], "qconfig"):
            fused.qconfig = mods[0].qconfig
        path = str(node.target)
        parent, _, leaf = path.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, leaf, fused)
        with gm.graph.inserting_after(last):
            args = (node.args[0],) if residual is None else (node.args[0], residual)
            new = gm.graph.call_module(path, args)
        new.meta = dict(node.meta)
        last.replace_all_uses_with(new)
        for old in reversed(chain):
            gm.graph.erase_node(old)
        values[new] = values[last]
    gm.graph.eliminate_dead_code()  # the statistics a fused F.batch_norm read

# ---- 2. stubs ---------------------------------------------------------------------------------------


def _insert_after(gm: fx.GraphModule, node: fx.Node, name: str, module: nn.Module) -> fx.Node:
    """A call of `module` (added as submodule `name`) on `node`'s value, read by all of `node`'s
    readers instead."""
    gm.add_submodule(name, module)
    with gm.graph.inserting_after(node):
        call = gm.graph.call_module(name, (node,))
    call.meta = {k: v for k, v in node.meta.items() if k == "nn_module_stack"}
    for user in list(node.users):
        if user is not call:
            user.replace_input_with(node, call)
    return call


def _stub_inputs_and_outputs(gm: fx.GraphModule, values: dict) -> None:
    graph = gm.graph
    output = next(n for n in graph.nodes if n.op == "output")
    for node in list(graph.nodes):
        if node.op == "placeholder" and isinstance(values.get(node), torch.Tensor) and \
                values[node].is_floating_point():
            _insert_after(gm, node, f"{node.name}_quant", QuantStub())
    returned = []
    fx.node.map_arg(output.args[0], returned.append)
    for i, node in enumerate(dict.fromkeys(n for n in returned if isinstance(values.get(n), torch.Tensor))):
        name = f"output_dequant_{i}"
        gm.add_submodule(name, DeQuantStub())
        with graph.inserting_before(output):
            stub = graph.call_module(name, (node,))
        output.replace_input_with(node, stub)


# ---- 4. the remaining scales --------------------------------------------------------------------------


def _qconfig_of(node: fx.Node, qconfigs: dict, default: QConfig) -> QConfig | None:
    """The qconfig of the innermost module around a call (a qconfig set by name covers the calls
    inside the module)."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, _ in reversed(list(stack.values())):
        if path in qconfigs:
            return qconfigs[path]
    return default


def _needs_quantizer(node: fx.Node, values: dict, modules: dict, handler_for, keeps_scale: frozenset) -> bool:
    """Whether the tracer can give the node's value no scale of its own: its HBIR op neither keeps
    its input's scale nor (concat) takes its inputs' largest, and no quantizer follows it yet."""
    if node.op not in ("call_function", "call_method", "call_module"):
        return False
    value = values.get(node)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return False
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, (FakeQuantize, QuantStub, DeQuantStub)) or \
                getattr(m, "activation_post_process", None) is not None:
            return False
    handler = handler_for(node, modules)
    return handler is not None and not set(handler.emits) <= keeps_scale | {"concat"}


def _quantize_functional_results(gm: fx.GraphModule, values: dict, qconfigs: dict, default: QConfig) -> None:
    from hbdk_sim.frontend.torch_ops import handler_for
    from hbdk_sim.frontend.torch_tracer import KEEPS_SCALE

    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if not _needs_quantizer(node, values, modules, handler_for, KEEPS_SCALE):
            continue
        qc = _qconfig_of(node, qconfigs, default)
        if qc is None or qc.output is None:
            continue  # left in float on purpose (qconfig None)
        _insert_after(gm, node, f"{node.name}_post_process", qc.output())
