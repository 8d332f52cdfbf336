"""The UNet-MobileNetV1 segmentation model: shapes, tracing to HBIR and compiling for bpu, fusion
keeping the eval output, the focal loss against torch and a hand computation, and mIoU against
cityscapesscripts' own evaluation."""

import copy

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hbdk_sim.frontend import trace_float, trace_quant  # noqa: E402
from hbdk_sim.nn import (  # noqa: E402
    FocalLoss,
    MeanIoU,
    MultiScaleSegLoss,
    Segmentor,
    UNetMobileNetV1,
    downsample_labels,
)
from hbdk_sim.quantization import (  # noqa: E402
    ConvAdd2d,
    ConvBn2d,
    FakeQuantize,
    FusedConv2d,
    default_qconfig,
    prepare_qat,
    set_fake_quant_state,
)
from hbdk_sim.registry import LOSSES, METRICS, MODELS, build_from_cfg  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are small: two threads gain little and contend badly on a loaded 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    net = UNetMobileNetV1()
    # Non-trivial BN statistics, so that folding them is really exercised.
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(2, 3, 64, 128))
    return net.eval()


@pytest.mark.parametrize("size", [(64, 128), (128, 256), (96, 64)])
def test_output_shapes(network, size):
    h, w = size
    with torch.no_grad():
        outs = network(torch.randn(2, 3, h, w))
    assert [tuple(o.shape) for o in outs] == [(2, 19, h // s, w // s) for s in (4, 8, 16, 32)]
    deploy = copy.deepcopy(network)
    deploy.deploy = True
    with torch.no_grad():
        finest = deploy(torch.randn(2, 3, h, w))
    assert tuple(finest.shape) == (2, 19, h // 4, w // 4)


def test_width_and_strides_follow_the_config():
    net = UNetMobileNetV1(num_classes=5, width=0.5, out_strides=(2, 8))
    assert net.backbone.channels == {2: 32, 4: 64, 8: 128, 16: 256, 32: 512}
    with torch.no_grad():
        outs = net.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 5, 32, 32), (1, 5, 8, 8)]
    with pytest.raises(ValueError, match="out_strides"):
        UNetMobileNetV1(out_strides=(3,))


def test_fuse_model_keeps_eval_output(network):
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        want = network(x)
    for mode, kinds in (("fuse_bn", {FusedConv2d, ConvAdd2d}), ("with_bn", {ConvBn2d, ConvAdd2d})):
        fused = copy.deepcopy(network).fuse_model(mode).eval()
        assert not any(isinstance(m, torch.nn.BatchNorm2d) and not isinstance(p, ConvBn2d | ConvAdd2d)
                       for p in fused.modules() for m in p.children())
        found = {type(m) for m in fused.modules()} & {FusedConv2d, ConvBn2d, ConvAdd2d}
        assert found == kinds
        # 27 conv-bn-relu in the backbone, per neck level (16, 8, 4) reduce + lateral add + 2 smooth,
        # and the top block's 2.
        assert sum(isinstance(m, FusedConv2d | ConvBn2d | ConvAdd2d) for m in fused.modules()) == 27 + 3 * 4 + 2
        with torch.no_grad():
            got = fused(x)
        for g, w in zip(got, want, strict=True):
            assert (g - w).abs().max().item() < 1e-4
        with pytest.raises(ValueError, match="already fused"):
            fused.fuse_model(mode)


def test_trace_compile_for_bpu(network):
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        want = network(x)
    for net in (network, copy.deepcopy(network).fuse_model("fuse_bn")):
        module = trace_float(net.eval(), (x,))
        got = list(hbdk_sim.Executor(module).run([x.numpy()]).values())
        assert [g.shape for g in got] == [tuple(w.shape) for w in want]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0)
    hbdk_sim.calibrate(module, [[x.numpy()]])
    assert hbdk_sim.check(module, march="bpu").violations == []
    report = hbdk_sim.compile_perf(module, march="bpu")
    assert report.latency_ms > 0


def test_qat_prepare_calibrate_and_trace(network):
    x = torch.randn(2, 3, 64, 128)
    qat = prepare_qat(copy.deepcopy(network).train().fuse_model("with_bn"), default_qconfig())
    assert sum(isinstance(m, FakeQuantize) for m in qat.modules()) > 41
    set_fake_quant_state(qat, "calibration")
    qat.eval()
    with torch.no_grad():
        want = qat(x)
        set_fake_quant_state(qat, "validation")
        got = qat(x)
    # int8 fake quantization through ~45 layers stays close to float on the data it calibrated on.
    for g, w in zip(got, want, strict=True):
        assert not torch.equal(g, w)
        cos = F.cosine_similarity(g.flatten(), w.flatten(), dim=0).item()
        assert cos > 0.98
    module = trace_quant(qat, (x[:1],))
    assert hbdk_sim.check(module, march="bpu").violations == []


def test_focal_loss_gamma0_is_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(2, 19, 8, 12, dtype=torch.float64)
    target = torch.randint(0, 19, (2, 8, 12))
    target[0, :3] = 255
    got = FocalLoss(gamma=0.0)(logits, target)
    want = F.cross_entropy(logits.float(), target, ignore_index=255)
    assert abs(got.item() - want.item()) < 1e-6


def test_focal_loss_gamma2_by_hand():
    # Two classes, three pixels (one ignored): p = softmax([2, 0]) = (e^2 / (e^2 + 1), 1 / (e^2 + 1)).
    logits = torch.tensor([[[[2.0, 2.0, 2.0]], [[0.0, 0.0, 0.0]]]])
    target = torch.tensor([[[0, 1, 255]]])
    p0 = np.exp(2) / (np.exp(2) + 1)
    p1 = 1 - p0
    terms = [-((1 - p0) ** 2) * np.log(p0), -((1 - p1) ** 2) * np.log(p1)]
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(np.mean(terms), rel=1e-6)
    weighted = FocalLoss(gamma=2.0, alpha=[0.25, 2.0])(logits, target).item()
    assert weighted == pytest.approx((0.25 * terms[0] + 2.0 * terms[1]) / 2, rel=1e-6)
    assert FocalLoss()(logits, torch.full_like(target, 255)).item() == 0.0
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        FocalLoss()(logits, torch.tensor([[[0, 7, 1]]]))


def test_multi_scale_loss_weights():
    torch.manual_seed(2)
    logits = [torch.randn(1, 19, 16 // s, 32 // s) for s in (1, 2)]
    targets = [torch.randint(0, 19, (1, 16 // s, 32 // s)) for s in (1, 2)]
    losses = MultiScaleSegLoss(dict(type="FocalLoss", gamma=2.0), weights=[1.0, 0.5])(logits, targets, (4, 8))
    focal = FocalLoss(gamma=2.0)
    assert list(losses) == ["loss_s4", "loss_s8"]
    assert losses["loss_s4"].item() == pytest.approx(focal(logits[0], targets[0]).item(), rel=1e-6)
    assert losses["loss_s8"].item() == pytest.approx(0.5 * focal(logits[1], targets[1]).item(), rel=1e-6)


def test_segmentor_train_and_eval_from_config():
    cfg = dict(type="Segmentor",
               network=dict(type="UNetMobileNetV1", num_classes=19, width=0.25, out_strides=(4, 8, 16, 32)),
               loss=dict(type="MultiScaleSegLoss", loss=dict(type="FocalLoss", gamma=2.0),
                         weights=(1.0, 0.5, 0.25, 0.125)))
    model = build_from_cfg(cfg, MODELS)
    assert isinstance(model, Segmentor) and isinstance(model.network, UNetMobileNetV1)
    torch.manual_seed(3)
    img = torch.randn(2, 3, 64, 128)
    labels = torch.randint(0, 19, (2, 64, 128))
    losses = model.train()({"img": img, "gt_seg": labels})
    assert list(losses) == ["loss_s4", "loss_s8", "loss_s16", "loss_s32"]
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    # the per-stride label list, as MultiScaleLabels makes it, gives the same losses
    scales = [downsample_labels(labels, (64 // s, 128 // s)) for s in (4, 8, 16, 32)]
    again = model({"img": img, "gt_seg_scales": scales})
    assert all(torch.equal(again[k], losses[k]) for k in losses)
    out = model.eval()({"img": img})
    assert tuple(out["preds"].shape) == (2, 64, 128) and tuple(out["logits"].shape) == (2, 19, 16, 32)
    with pytest.raises(ValueError, match="multiple of the network's stride 32"):
        model({"img": torch.randn(1, 3, 60, 128)})
    with pytest.raises(ValueError, match="4 out_strides"):
        Segmentor(dict(type="UNetMobileNetV1"), dict(type="MultiScaleSegLoss", weights=[1.0]))
    # QAT with BN trains through the fused network the same way
    model.fuse_model("with_bn").train()
    assert sum(isinstance(m, ConvBn2d) for m in model.modules()) == 41 - 3
    assert set(model({"img": img, "gt_seg": labels})) == set(losses)
    assert isinstance(build_from_cfg(dict(type="FocalLoss", gamma=1.0), LOSSES), FocalLoss)
    assert isinstance(build_from_cfg(dict(type="MeanIoU", num_classes=19), METRICS), MeanIoU)


def test_finest_loss_at_label_size():
    torch.manual_seed(5)
    model = Segmentor(UNetMobileNetV1(out_strides=(4, 8)), dict(type="MultiScaleSegLoss", weights=[1.0, 0.5]),
                      finest_loss_at_label_size=True).train()
    img = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, 19, (2, 64, 64))
    labels[:, :4] = 255
    losses = model({"img": img, "gt_seg": labels})
    fine, coarse = model.network(img)
    focal = FocalLoss(gamma=2.0)
    want = focal(F.interpolate(fine, size=(64, 64), mode="bilinear", align_corners=False), labels)
    assert losses["loss_s4"].item() == pytest.approx(want.item(), rel=1e-5)
    assert losses["loss_s8"].item() == pytest.approx(0.5 * focal(coarse, downsample_labels(labels, (8, 8))).item(),
                                                     rel=1e-5)


def test_downsample_labels_takes_block_centres():
    labels = torch.arange(64).reshape(1, 8, 8)
    assert downsample_labels(labels, (2, 2)).tolist() == [[[2 * 8 + 2, 2 * 8 + 6], [6 * 8 + 2, 6 * 8 + 6]]]


# -- mIoU against cityscapesscripts -----------------------------------------------------------------


def _cityscapes_eval(pred_label_ids, gt_label_ids, tmp_path):
    """cityscapesscripts' evaluation over PNG pairs of Cityscapes label ids."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
    from PIL import Image

    args = copy.copy(ev.args)
    args.evalInstLevelScore = False  # needs instanceIds PNGs; class IoU does not use it
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    preds, gts = [], []
    for i, (p, g) in enumerate(zip(pred_label_ids, gt_label_ids, strict=True)):
        preds.append(str(tmp_path / f"pred_{i}.png"))
        gts.append(str(tmp_path / f"gt_{i}_gtFine_labelIds.png"))
        Image.fromarray(p.astype(np.uint8)).save(preds[-1])
        Image.fromarray(g.astype(np.uint8)).save(gts[-1])
    result = ev.evaluateImgLists(preds, gts, args)
    return result["averageScoreClasses"], result["classScores"]


def test_miou_matches_cityscapesscripts(tmp_path):
    from cityscapesscripts.helpers.labels import id2label, trainId2label

    rng = np.random.default_rng(4)
    label_ids = np.array(sorted(id2label))
    label_ids = label_ids[label_ids >= 0]
    # Classes 5 (pole) and 11 (person) appear neither in the labels nor in the predictions: their
    # IoU is undefined and both evaluations leave them out of the mean.
    absent = {5, 11}
    present_train = [t for t in range(19) if t not in absent]
    keep_ids = [i for i in label_ids if id2label[i].trainId not in absent]
    to_train = np.full(256, 255, np.int64)
    for i in label_ids:
        to_train[i] = id2label[i].trainId if not id2label[i].ignoreInEval else 255
    metric = MeanIoU(num_classes=19)
    preds_ids, gts_ids = [], []
    for _ in range(3):
        gt = rng.choice(keep_ids, size=(32, 48))
        pred_train = rng.choice(present_train, size=(32, 48))
        # predictions that agree with the labels often enough to give IoUs away from zero
        agree = (rng.random((32, 48)) < 0.5) & (to_train[gt] != 255)
        pred_train = np.where(agree, to_train[gt], pred_train)
        preds_ids.append(np.vectorize(lambda t: trainId2label[t].id)(pred_train))
        gts_ids.append(gt)
        metric.update(torch.from_numpy(pred_train), torch.from_numpy(to_train[gt]))
    want_mean, want_classes = _cityscapes_eval(preds_ids, gts_ids, tmp_path)
    got = metric.compute()
    assert abs(got["mIoU"] - want_mean) < 1e-9
    for t in range(19):
        want = want_classes[trainId2label[t].name]
        if t in absent:
            assert np.isnan(want) and np.isnan(got["IoU"][t])
        else:
            assert abs(got["IoU"][t] - want) < 1e-9
    valid = np.concatenate([to_train[g].ravel() for g in gts_ids])
    hits = np.concatenate([p.ravel() for p in preds_ids]) == np.concatenate([g.ravel() for g in gts_ids])
    assert got["pixel_acc"] == pytest.approx(hits[valid != 255].mean(), abs=1e-12)


def test_miou_state_and_inputs():
    metric = MeanIoU(num_classes=3)
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = 1.0  # predicts class 1 everywhere
    metric.update(logits, [torch.zeros(1, 1, 1), torch.tensor([[[1, 1], [2, 255]]])])
    assert metric.confusion_matrix.tolist() == [[0, 0, 0], [0, 2, 0], [0, 1, 0]]
    got = metric.compute()
    assert got["IoU"][1] == pytest.approx(2 / 3) and got["IoU"][2] == 0.0 and np.isnan(got["IoU"][0])
    assert got["mIoU"] == pytest.approx(1 / 3) and got["pixel_acc"] == pytest.approx(2 / 3)
    metric.all_reduce()  # no process group: nothing to sum
    assert int(metric.confusion_matrix.sum()) == 3
    with pytest.raises(ValueError, match=r"labels hold values \[7\]"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 7], [1, 1]]]))
    metric.reset()
    assert int(metric.confusion_matrix.sum()) == 0
