"""The MOTR task model at a toy size: the contract's two board graphs and their inputs, a training
clip's losses (finite, every frame and auxiliary layer, gradients into the network), and prediction
over sequences with tracks born, carried through QIM and reset at a new sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.nn.structures.motr import Motr, MotrNet

H, W = 64, 96


def _model(**kw) -> Motr:
    torch.manual_seed(0)
    net = MotrNet(dict(type="EfficientNet", model_type="b0"), 320,
                  dict(d_model=32, num_heads=4, num_encoder_layers=1, num_decoder_layers=2, ffn_dim=64),
                  num_queries=16, query_width=8)
    return Motr(net, **kw)


def _clip(frames: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    clip = []
    for t in range(frames):
        boxes = np.array([[10 + 4 * t, 8, 30 + 4 * t, 50], [60 - 3 * t, 20, 80 - 3 * t, 60]], np.float32)
        clip.append({"img": torch.rand(3, H, W, generator=g) * 2 - 1, "gt_boxes": boxes,
                     "gt_track_ids": np.array([5, 9], np.int64)})
    return clip


def test_board_graphs_and_their_inputs():
    model = _model().eval()
    graphs = {g.name: g for g in model.board_graphs([1, 3, H, W])}
    assert list(graphs) == ["base", "qim"]
    assert [(x.name, x.shape) for x in graphs["base"].inputs] == [
        ("img", (1, 3, H, W)), ("query_pos", (1, 32, 2, 8)), ("mask_query", (1, 1, 1, 16)), ("ref_pts", (1, 4, 2, 8))]
    assert [(x.name, x.shape) for x in graphs["qim"].inputs] == [
        ("output_embedding", (1, 1, 16, 32)), ("query_pos", (1, 1, 16, 32)), ("mask_query", (1, 1, 1, 16))]
    with torch.no_grad():
        classes, boxes, hs = graphs["base"].module(*graphs["base"].example_inputs(torch.Generator().manual_seed(0)))
        new_pos = graphs["qim"].module(*graphs["qim"].example_inputs())
    assert (classes.shape, boxes.shape, hs.shape, new_pos.shape) == ((1, 1, 4, 8), (1, 4, 4, 8), (1, 32, 4, 8),
                                                                     (1, 32, 1, 16))


def test_a_training_clip_gives_every_frames_losses():
    model = _model().train()
    losses = model(_clip(3))
    for i in range(3):
        for name in ("loss_ce", "loss_bbox", "loss_giou"):
            assert torch.isfinite(losses[f"{name}_frame{i}"])
            assert torch.isfinite(losses[f"{name}_frame{i}_aux0"])  # the first decoder layer
    sum(losses.values()).backward()
    assert model.network.backbone.stem.conv.weight.grad.abs().sum() > 0
    assert model.network.transformer.decoder[0].cross_attn.sampling_offsets.weight.grad.abs().sum() > 0
    with pytest.raises(UsageTypeError, match="a clip"):
        model({"img": torch.zeros(1, 3, H, W)})


def test_prediction_births_carries_and_resets_tracks():
    model = _model(area_threshold=1.0).eval()
    with torch.no_grad():  # every detect query confident: each is born as a track on the first frame
        model.network.transformer.class_embed[-1].bias.fill_(6.0)
    frames = [{"img": torch.rand(1, 3, H, W) * 2 - 1, "sequence": ["A"], "frame": [t + 1],
               "scale_factor": torch.tensor([[0.5, 0.5]])} for t in range(3)]
    with torch.no_grad():
        first = model(frames[0])["tracks"][0]
        assert first.shape == (16, 6) and sorted(first[:, 5].tolist()) == list(range(16))
        assert first[:, :4].max() > W  # boxes mapped back by the resize factor 0.5 (input W = 96)
        # the tracks fill the 16 track slots: the next frame feeds them with QIM's queries
        inputs = model._inputs
        assert int(inputs["mask_query"].sum()) == 16 and inputs["query_pos"].abs().sum() > 0
        second = model(frames[1])["tracks"][0]
        ids = second[:, 5].tolist()
        # 16 tracks carried and 16 detect queries born again (ids 16..31): the best 16 by score stay
        assert len(ids) == 16 and len(set(ids)) == 16 and max(ids) < 32
        # a new sequence starts over: no tracks in, ids from 0
        other = model({**frames[2], "sequence": ["B"]})["tracks"][0]
        assert sorted(other[:, 5].tolist()) == list(range(16))
    # predict through the board graphs as runners is what eval's forward does
    model._inputs = None
    with torch.no_grad():
        runners = {g.name: g.module for g in model.board_graphs([1, 3, H, W])}
        a = model.predict(frames[0], runners)["tracks"][0]
        model._inputs = None
        b = model(frames[0])["tracks"][0]
    assert torch.equal(a, b)
    with pytest.raises(UsageError, match="one frame at a time"):
        model({"img": torch.zeros(2, 3, H, W), "sequence": ["A", "A"]})


def test_the_picture_labels_the_ids():
    model = _model()
    picture = model.visualize(np.zeros((60, 80, 3), np.uint8), {"tracks": torch.tensor([[5, 5, 40, 50, 0.9, 3.0]])})
    assert picture["tracks"].shape == (60, 80, 3) and picture["tracks"].any()


def test_both_board_graphs_trace_to_hbir_and_run_like_torch():
    import hbdk_sim
    from hbdk_sim.frontend import trace_float

    torch.manual_seed(0)
    net = MotrNet(dict(type="EfficientNet", model_type="b0"), 320,
                  dict(d_model=32, num_heads=4, num_encoder_layers=1, num_decoder_layers=2, ffn_dim=64),
                  num_queries=16, query_width=8, deploy_image_size=(H, W))
    model = Motr(net).eval()
    g = torch.Generator().manual_seed(2)
    for graph in model.board_graphs([1, 3, H, W]):
        inputs = graph.example_inputs(g)
        module = trace_float(graph.module, inputs)
        assert not model.network.training  # tracing leaves the model in eval mode
        ops = {op.name for op in module.function("main").ops}
        if graph.name == "base":
            assert {"grid_sample", "layer_norm", "softmax", "matmul", "sigmoid"} <= ops
        got = list(hbdk_sim.Executor(module).run([t.numpy() for t in inputs]).values())
        with torch.no_grad():
            want = graph.module(*inputs)
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["base", "qim"])
def test_each_board_graph_quantizes_and_compiles_bit_exact(name):
    """Graph-mode preparation (the learned queries, the detect mask and the position tables enter
    through QuantStubs), calibration, the integer model and the compiled binary: equal bit for bit."""
    import copy

    import hbdk_sim
    from hbdk_sim.frontend.api import compile_model
    from hbdk_sim.quantization import QAT2Quantize, prepare_qat_fx, set_fake_quant_state

    torch.manual_seed(0)
    net = MotrNet(dict(type="EfficientNet", model_type="b0"), 320,
                  dict(d_model=32, num_heads=4, num_encoder_layers=1, num_decoder_layers=2, ffn_dim=64),
                  num_queries=16, query_width=8, deploy_image_size=(H, W))
    model = Motr(net).eval()
    (graph,) = [g for g in model.board_graphs([1, 3, H, W]) if g.name == name]
    gen = torch.Generator().manual_seed(3)
    prepared = prepare_qat_fx(graph.module, graph.example_inputs(gen))
    with torch.no_grad():
        for _ in range(4):
            prepared(*graph.example_inputs(gen))
    set_fake_quant_state(prepared, "validation")
    example = graph.example_inputs(gen)
    int_model = QAT2Quantize(example_inputs=example)(copy.deepcopy(prepared))
    expected = ("grid_sample", "layer_norm", "softmax", "lut") if name == "base" else ("layer_norm", "softmax")
    assert all(f" {op}(" in int_model.hbir_text for op in expected)
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, example, "bpu").hbm, name)
    got = list(hbdk_sim.Executor(hbm).run([x.numpy() for x in example]).values())
    with torch.no_grad():
        want = int_model(*example)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


def test_the_transformer_reads_the_map_at_feature_stride():
    """A backbone ending at stride 16 gives the encoder four times the positions of 32; the width
    comes from the backbone, and the deploy tables follow the stride."""
    torch.manual_seed(0)
    net = MotrNet(dict(type="EfficientNet", model_type="b0", out_strides=[16]), None,
                  dict(d_model=32, num_heads=4, num_encoder_layers=1, num_decoder_layers=1, ffn_dim=64),
                  num_queries=16, query_width=8, deploy_image_size=(H, W), feature_stride=16)
    assert net.input_proj.in_channels == 112 and net.transformer.feature_size == (H // 16, W // 16)
    inputs = net.empty_tracks()
    with torch.no_grad():
        classes, boxes, hs = net(torch.zeros(1, 3, H, W), inputs["query_pos"], inputs["mask_query"], inputs["ref_pts"])
    assert classes[-1].shape == (1, 1, 4, 8) and hs.shape == (1, 32, 4, 8)
    with pytest.raises(UsageError, match="feature_stride must be"):
        MotrNet(dict(type="EfficientNet", model_type="b0"), None, feature_stride=4)
