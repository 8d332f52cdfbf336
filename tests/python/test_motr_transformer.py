"""The MOTR transformer's parts against independent statements: multi-head attention on token maps
equals torch.nn.MultiheadAttention with the same weights; the sine embeddings equal their formulas
written out loop by loop; deformable attention equals a per-head, per-point bilinear sampling loop
(align_corners=True, zero padding) for 2-D and 4-D references; the additive masks isolate padded
track slots in the decoder and in QIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hbdk_sim.nn.heads.motr_transformer import MotrDeformAttn, MotrTransformer, QueryInteraction
from hbdk_sim.nn.layers.attention import (
    MultiheadAttention2d,
    additive_mask,
    pair_mask,
    sine_box_embedding,
    sine_position_embedding,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_attention_equals_torch_multihead_attention():
    c, heads = 32, 4
    attn = MultiheadAttention2d(c, heads).eval()
    ref = torch.nn.MultiheadAttention(c, heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([p.weight[:, :, 0, 0] for p in (attn.q_proj, attn.k_proj, attn.v_proj)]))
        for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
            p.bias.normal_()
        ref.in_proj_bias.copy_(torch.cat([p.bias for p in (attn.q_proj, attn.k_proj, attn.v_proj)]))
        ref.out_proj.weight.copy_(attn.out_proj.weight[:, :, 0, 0])
        ref.out_proj.bias.copy_(attn.out_proj.bias)
    q, kv = torch.randn(2, c, 2, 3), torch.randn(2, c, 1, 5)  # 6 queries, 5 keys
    mask = pair_mask(torch.tensor([1, 1, 0, 1, 1, 0]))[:, :5]
    with torch.no_grad():
        got = attn(q, kv, kv, mask)
        want, _ = ref(q.flatten(2).transpose(1, 2), kv.flatten(2).transpose(1, 2), kv.flatten(2).transpose(1, 2),
                      attn_mask=mask)
    torch.testing.assert_close(got.flatten(2).transpose(1, 2), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn(q, kv, kv, additive_mask(mask == 0)), got, rtol=0, atol=0)


def test_pair_mask_is_minus_100_unless_both_tokens_are_valid():
    m = pair_mask(torch.tensor([1.0, 0.0, 1.0]))
    assert m.tolist() == [[0, -100, 0], [-100, -100, -100], [0, -100, 0]]


def test_sine_position_embedding_formula():
    h, w, f, t = 3, 5, 8, 20.0
    got = sine_position_embedding(h, w, f, t)[0].numpy()
    want = np.zeros((2 * f, h, w))
    for i in range(h):
        for j in range(w):
            for half, v in ((0, (i + 1) / (h + 1e-6)), (1, (j + 1) / (w + 1e-6))):
                for k in range(f):
                    a = v * 2 * math.pi / t ** (2 * (k // 2) / f)
                    want[half * f + k, i, j] = math.sin(a) if k % 2 == 0 else math.cos(a)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_sine_box_embedding_formula():
    coords = torch.rand(2, 4, 1, 3)
    f, t = 6, 20.0
    got = sine_box_embedding(coords, f, t).numpy()
    want = np.zeros((2, 4 * f, 1, 3))
    for n in range(2):
        for c in range(4):
            for j in range(3):
                for k in range(f):
                    a = float(coords[n, c, 0, j]) * 2 * math.pi / t ** (2 * (k // 2) / f)
                    want[n, c * f + k, 0, j] = math.sin(a) if k % 2 == 0 else math.cos(a)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _bilinear_align_corners(v: np.ndarray, x: float, y: float) -> np.ndarray:
    """v (C, H, W) at normalized (x, y) in [0, 1] with align_corners=True (0 -> first pixel centre,
    1 -> last), zero outside."""
    c, h, w = v.shape
    px, py = x * (w - 1), y * (h - 1)
    x0, y0 = math.floor(px), math.floor(py)
    out = np.zeros(c)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * v[:, yy, xx]
    return out


@pytest.mark.parametrize("ref_channels", [2, 4])
def test_deformable_attention_equals_a_sampling_loop(ref_channels):
    d, heads, points = 16, 4, 2
    attn = MotrDeformAttn(d, heads, points, reference_dims=ref_channels).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)
    query, value = torch.randn(1, d, 2, 3), torch.randn(1, d, 4, 5)
    reference = torch.rand(1, ref_channels, 2, 3) * 0.8 + 0.1
    with torch.no_grad():
        got = attn(query, reference, value)[0].numpy()
        v = attn.value_proj(value)[0].numpy().reshape(heads, d // heads, 4, 5)
        off = attn.sampling_offsets(query)[0].numpy().reshape(heads, points, 2, 6)
        wgt = torch.sigmoid(attn.attention_weights(query))[0].numpy().reshape(heads, points, 6)
    ref = reference[0].numpy().reshape(ref_channels, 6)
    mixed = np.zeros((d, 6))
    for q in range(6):
        for h in range(heads):
            for p in range(points):
                if ref_channels == 2:
                    x, y = ref[0, q] + off[h, p, 0, q] / 5, ref[1, q] + off[h, p, 1, q] / 4
                else:
                    x = ref[0, q] + off[h, p, 0, q] * 0.5 / points * ref[2, q]
                    y = ref[1, q] + off[h, p, 1, q] * 0.5 / points * ref[3, q]
                mixed[h * (d // heads):(h + 1) * (d // heads), q] += wgt[h, p, q] * _bilinear_align_corners(v[h], x, y)
    w_out, b_out = attn.output_proj.weight[:, :, 0, 0].detach().numpy(), attn.output_proj.bias.detach().numpy()
    want = (w_out @ mixed + b_out[:, None]).reshape(d, 2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_deformable_attention_initial_offsets_point_around_the_compass():
    attn = MotrDeformAttn(256, 8, 1)
    directions = attn.sampling_offsets.bias.detach().reshape(8, 2)
    compass = torch.tensor([[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1]], dtype=torch.float32)
    torch.testing.assert_close(directions, compass, rtol=0, atol=1e-6)
    assert not attn.attention_weights.weight.any() and not attn.sampling_offsets.weight.any()


def _queries(d: int):
    tgt, logits = torch.randn(1, d, 4, 8), torch.randn(1, 4, 4, 8)
    valid = torch.cat([torch.ones(16), torch.tensor([1.0] * 5 + [0.0] * 11)])  # 16 detect, 5 of 16 tracks live
    return tgt, logits, valid


def test_decoder_outputs_and_padded_track_slots_change_nothing_else():
    d = 32
    model = MotrTransformer(d, num_heads=4, num_encoder_layers=2, num_decoder_layers=3, ffn_dim=64).eval()
    src = torch.randn(1, d, 5, 7)
    tgt, logits, valid = _queries(d)
    mask, track_mask = pair_mask(valid), pair_mask(valid[16:])
    with torch.no_grad():
        classes, boxes, hs = model(src, tgt, logits, mask, track_mask)
        assert [tuple(c.shape) for c in classes] == [(1, 1, 4, 8)] * 3
        assert [tuple(b.shape) for b in boxes] == [(1, 4, 4, 8)] * 3 and hs.shape == (1, d, 4, 8)
        # other contents in the 11 padded track slots (row 2 from column 5 on, and row 3)
        padded = (valid == 0).reshape(4, 8)
        tgt2, logits2 = tgt.clone(), logits.clone()
        tgt2[..., padded] = torch.randn(d, int(padded.sum()))
        logits2[..., padded] = torch.randn(4, int(padded.sum()))
        classes2, boxes2, hs2 = model(src, tgt2, logits2, mask, track_mask)
    live = ~padded
    torch.testing.assert_close(hs2[..., live], hs[..., live], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(classes2[-1][..., live], classes[-1][..., live], rtol=1e-5, atol=1e-5)


def test_decoder_trains():
    d = 32
    model = MotrTransformer(d, num_heads=4, num_encoder_layers=1, num_decoder_layers=2, ffn_dim=64).train()
    tgt, logits, valid = _queries(d)
    classes, boxes, _ = model(torch.randn(1, d, 3, 4), tgt, logits, pair_mask(valid), pair_mask(valid[16:]))
    (sum(c.sum() for c in classes) + sum(b.square().sum() for b in boxes)).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["decoder.1.cross_attn.sampling_offsets.weight"].abs().sum() > 0
    assert grads["encoder.0.self_attn.value_proj.weight"].abs().sum() > 0


def test_qim_updates_kept_tracks_only_from_kept_tracks():
    d, n = 32, 6
    qim = QueryInteraction(d, 4, 64).eval()
    out, pos = torch.randn(1, 1, n, d), torch.randn(1, 1, n, d)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]).reshape(1, 1, 1, n)
    with torch.no_grad():
        new = qim(out, pos, mask)
        out2, pos2 = out.clone(), pos.clone()
        out2[..., 3:, :], pos2[..., 3:, :] = torch.randn(1, 1, 3, d), torch.randn(1, 1, 3, d)
        new2 = qim(out2, pos2, mask)
    assert new.shape == (1, d, 1, n)
    torch.testing.assert_close(new2[..., :3], new[..., :3], rtol=1e-5, atol=1e-5)


def test_motr_net_shapes_at_the_reference_layout():
    from hbdk_sim.errors import UsageError
    from hbdk_sim.nn.structures.motr import MotrBaseGraph, MotrNet

    net = MotrNet(dict(type="EfficientNet", model_type="b3"), 384,
                  dict(d_model=32, num_heads=4, num_encoder_layers=1, num_decoder_layers=2, ffn_dim=64),
                  num_queries=16, query_width=8).eval()
    state = net.empty_tracks()
    assert [tuple(t.shape) for t in state.values()] == [(1, 32, 2, 8), (1, 1, 1, 16), (1, 4, 2, 8)]
    with torch.no_grad():
        classes, boxes, hs = MotrBaseGraph(net)(torch.randn(1, 3, 64, 96), **state)
    assert classes.shape == (1, 1, 4, 8) and boxes.shape == (1, 4, 4, 8) and hs.shape == (1, 32, 4, 8)
    # the detect queries start from the learned boxes, layer 0 refines them (its last conv starts at 0)
    assert torch.isfinite(classes).all()
    with pytest.raises(UsageError, match="ref_pts must be"):
        net(torch.randn(1, 3, 64, 96), state["query_pos"], state["mask_query"], torch.zeros(1, 4, 1, 8))
    # the reference layout: 512 queries of 256 channels on a B3 feature map of an 800x1422 image
    full = MotrNet(dict(type="EfficientNet", model_type="b3"), 384).to("meta")
    state = full.empty_tracks(device="meta")
    classes, boxes, hs = MotrBaseGraph(full)(torch.empty(1, 3, 800, 1422, device="meta"), **state)
    assert [tuple(t.shape) for t in state.values()] == [(1, 256, 2, 128), (1, 1, 1, 256), (1, 4, 2, 128)]
    assert (classes.shape, boxes.shape, hs.shape) == ((1, 1, 4, 128), (1, 4, 4, 128), (1, 256, 4, 128))
