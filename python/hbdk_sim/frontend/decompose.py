"""Graph rewrites the tracer applies before mapping nodes to HBIR: a torch call that HBIR spells as
several ops becomes those ops as fx nodes, so each step has a value of its own, which graph-mode
preparation can give a quantizer and a diagnostic can name.

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

from hbdk_sim.frontend.torch_ops import arg, sdpa_unsupported


def _decompose_sdpa(graph: fx.Graph, node: fx.Node) -> None:
    q, k, v = node.args[:3]
    mask, scale = arg(node, 3, "attn_mask"), arg(node, 6, "scale")
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
    for new in (kt, scores, probs, out):
        new.meta = {k: val for k, val in node.meta.items() if k in ("nn_module_stack", "stack_trace")}
    node.replace_all_uses_with(out)
    graph.erase_node(node)


def decompose(gm: fx.GraphModule) -> None:
    """Apply the rewrites above to `gm` in place (recompiled when anything changed)."""
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is F.scaled_dot_product_attention and \
                sdpa_unsupported(node) is None:
            _decompose_sdpa(gm.graph, node)
            changed = True
    if changed:
        gm.recompile()
