"""Graph rewrites the tracer applies before mapping nodes to HBIR: a torch call that HBIR spells as
several ops becomes those ops as fx nodes, so each step has a value of its own, which graph-mode
preparation can give a quantizer and a diagnostic can name.

- `nn.MultiheadAttention(q, k, v, attn_mask=None)` (packed or separate projections, batch first
  or not, no key padding mask, no bias_k/bias_v or zero attention, its weights output unread): its
  q, k and v projections as linear modules of their own (copies of the packed in_proj rows, so that
  preparation gives each a weight quantizer), the heads split, the attention below, the heads
  joined and its out_proj. Other forms stay one node, refused by name (torch_ops.mha_unsupported).
- `F.scaled_dot_product_attention(q, k, v, attn_mask=None, scale=None)` with an additive float
  mask (or none), no dropout and no causal flag: `softmax((q @ k^T) * scale + mask) @ v`, the scale
  `1 / sqrt(q.size(-1))` unless given. Other forms stay one node, which the tracer refuses naming
  the argument (torch_ops.sdpa_unsupported).
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from hbdk_sim.frontend.torch_ops import arg, mha_unsupported, sdpa_unsupported


def _inherit_meta(graph: fx.Graph, node: fx.Node, before: set[fx.Node]) -> None:
    """The module scope and source line of `node` onto the nodes that replace it (qconfig lookup
    and diagnostics read them)."""
    meta = {k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")}
    for new in graph.nodes:
        if new not in before:
            new.meta.update(meta)


def _decompose_sdpa(graph: fx.Graph, node: fx.Node) -> None:
    q, k, v = node.args[:3]
    mask, scale = arg(node, 3, "attn_mask"), arg(node, 6, "scale")
    before = set(graph.nodes)
    with graph.inserting_before(node):
        kt = graph.call_method("transpose", (k, -2, -1))
        scores = graph.call_function(operator.matmul, (q, kt))
        if scale is None:
            scale = graph.call_function(operator.pow, (graph.call_method("size", (q, -1)), -0.5))
        scores = graph.call_function(operator.mul, (scores, scale))
        if mask is not None:
            scores = graph.call_function(operator.add, (scores, mask))
        probs = graph.call_function(torch.softmax, (scores, -1))
        out = graph.call_function(operator.matmul, (probs, v))
    _inherit_meta(graph, node, before)
    node.replace_all_uses_with(out)
    graph.erase_node(node)


def _linear_copy(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _decompose_mha(gm: fx.GraphModule, node: fx.Node, m: nn.MultiheadAttention) -> None:
    graph, path = gm.graph, str(node.target)
    e, heads = m.embed_dim, m.num_heads
    prefix = path.replace(".", "_")
    if m._qkv_same_embed_dim:
        w = m.in_proj_weight.detach()
        weights = [w[:e], w[e:2 * e], w[2 * e:]]
    else:
        weights = [m.q_proj_weight.detach(), m.k_proj_weight.detach(), m.v_proj_weight.detach()]
    biases = [None] * 3 if m.in_proj_bias is None else [m.in_proj_bias.detach()[i * e:(i + 1) * e] for i in range(3)]
    for name, w, b in zip(("q_proj", "k_proj", "v_proj"), weights, biases, strict=True):
        layer = _linear_copy(w, b)
        if hasattr(m, "qconfig"):  # a qconfig set on the attention (set_qconfig) covers its projections
            layer.qconfig = m.qconfig
        gm.add_submodule(f"{prefix}_{name}", layer)
    query, key, value = node.args[:3]
    mask = arg(node, 5, "attn_mask")
    before = set(graph.nodes)
    with graph.inserting_before(node):
        def heads_of(x: fx.Node, name: str) -> fx.Node:
            if not m.batch_first:
                x = graph.call_method("transpose", (x, 0, 1))
            y = graph.call_module(f"{prefix}_{name}", (x,))
            n, length = graph.call_method("size", (y, 0)), graph.call_method("size", (y, 1))
            y = graph.call_method("reshape", (y, n, length, heads, e // heads))
            return graph.call_method("transpose", (y, 1, 2))

        q, k, v = heads_of(query, "q_proj"), heads_of(key, "k_proj"), heads_of(value, "v_proj")
        attended = graph.call_function(F.scaled_dot_product_attention, (q, k, v), {"attn_mask": mask})
        joined = graph.call_method("transpose", (attended, 1, 2))
        n, length = graph.call_method("size", (joined, 0)), graph.call_method("size", (joined, 1))
        out = graph.call_module(f"{path}.out_proj", (graph.call_method("reshape", (joined, n, length, e)),))
        if not m.batch_first:
            out = graph.call_method("transpose", (out, 0, 1))
    _inherit_meta(graph, node, before)
    for user in list(node.users):  # (output, weights): the weights are unread (mha_unsupported)
        if user.args[1] == 0:
            user.replace_all_uses_with(out)
        graph.erase_node(user)
    graph.erase_node(node)


def decompose(gm: fx.GraphModule) -> None:
    """Apply the rewrites above to `gm` in place (recompiled when anything changed)."""
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.MultiheadAttention) and \
                mha_unsupported(node, gm.get_submodule(node.target)) is None:
            _decompose_mha(gm, node, gm.get_submodule(node.target))
            changed = True
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is F.scaled_dot_product_attention and \
                sdpa_unsupported(node) is None:
            _decompose_sdpa(gm.graph, node)
            changed = True
    if changed:
        gm.recompile()
