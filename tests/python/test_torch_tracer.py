"""The torch front end: float models traced to HBIR run like torch, unsupported code gets one clear
error, and a traced model calibrates, compiles and runs bit-exactly."""

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hbdk_sim.frontend import UnsupportedOpError, trace_float  # noqa: E402


def _run(module, inputs):
    outs = hbdk_sim.Executor(module).run([t.numpy() for t in inputs])
    return list(outs.values())


def _check(model, *inputs, tol=1e-4):
    module = trace_float(model, inputs)
    module.verify()
    got = _run(module, inputs)
    with torch.no_grad():
        want = model(*inputs)
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), atol=tol, rtol=0)
    return module


def _dw_block(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class Net(nn.Module):
    """MobileNetV1-style backbone, a UNet-style decoder step and a classifier head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.backbone = nn.Sequential(_dw_block(8, 16, 1), _dw_block(16, 32, 2))
        self.fuse = nn.Conv2d(32 + 16, 16, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        x = self.stem(x)
        skip = self.backbone[0](x)
        deep = self.backbone[1](skip)
        up = F.interpolate(deep, scale_factor=2, mode="bilinear", align_corners=False)
        y = F.relu(self.fuse(torch.cat([up, skip], dim=1)))
        return self.head(y), y


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


def test_network_matches_torch():
    torch.manual_seed(0)
    model = _randomize_bn(Net()).eval()
    x = torch.randn(1, 3, 32, 32)
    module = _check(model, x)
    fn = module.function("main")
    assert [a.name for a in fn.arguments] == ["x"]
    locs = {op.loc for op in fn.ops if op.name != "constant"}
    assert {"stem.0", "stem.1", "backbone.1.3", "fuse", "head.3"} <= locs
    assert "depthwise" not in locs and any(op.name == "resize2d" for op in fn.ops)


class Fn(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class Fn2(Fn):
    def forward(self, x, y):
        return self.f(x, y)


X = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
Y = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))

SINGLE = {
    "conv_stride_dilation": nn.Conv2d(4, 6, 3, stride=2, padding=(2, 1), dilation=2),
    "conv_groups_nobias": nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False),
    "conv_same": nn.Conv2d(4, 3, 4, padding="same"),
    "conv_transpose": nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
    "conv_transpose_groups": nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2, bias=False),
    "linear": nn.Linear(8, 5),
    "bn_affine_false": nn.BatchNorm2d(4, affine=False, eps=1e-3),
    "relu": nn.ReLU(), "relu6": nn.ReLU6(), "hardtanh06": nn.Hardtanh(0.0, 6.0), "hardtanh": nn.Hardtanh(-0.5, 0.5),
    "leaky": nn.LeakyReLU(0.2), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "softmax_mod": nn.Softmax(dim=1),
    "flatten_mod": nn.Flatten(), "maxpool": nn.MaxPool2d(3, 2, 1), "maxpool_ceil": nn.MaxPool2d(3, 2, ceil_mode=True),
    "avgpool": nn.AvgPool2d(2), "avgpool_pad": nn.AvgPool2d(3, 2, 1, count_include_pad=False),
    "gap": nn.AdaptiveAvgPool2d(1), "upsample": nn.Upsample(scale_factor=2, mode="nearest"),
    "zeropad": nn.ZeroPad2d((1, 2, 0, 3)),
    "f_relu": Fn(F.relu), "t_relu": Fn(torch.relu), "m_relu": Fn(lambda x: x.relu()),
    "f_relu6": Fn(F.relu6), "f_hardtanh": Fn(lambda x: F.hardtanh(x, 0.0, 6.0)),
    "clamp": Fn(lambda x: torch.clamp(x, -0.3, 0.7)), "clamp_min": Fn(lambda x: x.clamp(min=0.1)),
    "f_leaky": Fn(lambda x: F.leaky_relu(x, 0.05)), "sigmoid_fn": Fn(torch.sigmoid), "tanh_fn": Fn(torch.tanh),
    "exp": Fn(torch.exp), "softmax": Fn(lambda x: F.softmax(x, dim=-1)), "m_softmax": Fn(lambda x: x.softmax(1)),
    "sin": Fn(torch.sin), "m_cos": Fn(lambda x: (x * 3).cos()),
    "add": Fn2(lambda x, y: x + y), "t_add": Fn2(torch.add), "sub": Fn2(lambda x, y: x - y),
    "mul": Fn2(lambda x, y: x * y),
    "add_scalar": Fn(lambda x: x + 1.5), "rsub_scalar": Fn(lambda x: 2.0 - x), "mul_scalar": Fn(lambda x: x * 3),
    "div_scalar": Fn(lambda x: x / 4), "cat": Fn2(lambda x, y: torch.cat([x, y, x], dim=-1)),
    "flatten": Fn(lambda x: torch.flatten(x, 1)), "view": Fn(lambda x: x.view(x.size(0), -1, 4)),
    "reshape": Fn(lambda x: x.reshape(2, 32, 8)), "permute": Fn(lambda x: x.permute(0, 2, 3, 1)),
    "t_permute": Fn(lambda x: torch.permute(x, (3, 1, 0, 2))), "transpose": Fn(lambda x: x.transpose(1, -1)),
    "grid_sample_ac": Fn2(lambda x, y: F.grid_sample(x, y[:, :2].permute(0, 2, 3, 1), align_corners=True)),
    "grid_sample_hp": Fn2(lambda x, y: F.grid_sample(x, y[:, 2:].permute(0, 2, 3, 1) * 0.7, align_corners=False)),
    "f_maxpool": Fn(lambda x: F.max_pool2d(x, 2)), "f_avgpool": Fn(lambda x: F.avg_pool2d(x, 2, 1)),
    "f_gap": Fn(lambda x: F.adaptive_avg_pool2d(x, (1, 1))), "mean_hw": Fn(lambda x: x.mean((2, 3))),
    "nearest_scale": Fn(lambda x: F.interpolate(x, scale_factor=2)),
    "nearest_size": Fn(lambda x: F.interpolate(x, size=(16, 24), mode="nearest")),
    "bilinear_ac": Fn(lambda x: F.interpolate(x, size=(13, 11), mode="bilinear", align_corners=True)),
    "bilinear_hp": Fn(lambda x: F.interpolate(x, size=(13, 11), mode="bilinear", align_corners=False)),
    "bilinear_scale": Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear")),
    "pad": Fn(lambda x: F.pad(x, (1, 0, 2, 1), value=0.5)), "pad_c": Fn(lambda x: F.pad(x, (0, 0, 0, 0, 1, 1))),
}


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_op_matches_torch(name):
    torch.manual_seed(0)
    model = SINGLE[name].eval()
    if isinstance(model, nn.BatchNorm2d):
        model.running_mean.uniform_(-1, 1)
        model.running_var.uniform_(0.5, 2)
    if not isinstance(model, Fn):
        model = nn.Sequential(model).eval()  # fx traces the root's own forward; a torch.nn layer is a leaf inside one
    _check(model, *((X, Y) if isinstance(model, Fn2) else (X,)))


def test_broadcast_mul_and_buffers():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("s", torch.linspace(0.5, 2, 4).reshape(1, 4, 1, 1))

        def forward(self, x, y):
            return x * self.s + y, x

    m = _check(Scale(), X, Y)
    assert len(m.function("main").returns) == 2


class Sorter(nn.Module):
    def forward(self, x):
        return torch.sort(x, dim=1).values


class Gated(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


class Outer(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.body = nn.Sequential(nn.ReLU(), inner)

    def forward(self, x):
        return self.body(self.conv(x))


def test_unsupported_op_names_module_op_and_source():
    with pytest.raises(UnsupportedOpError) as e:
        trace_float(Outer(Sorter()), (X,))
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and "\n" not in msg
    assert "'torch.sort'" in msg and "'body.1'" in msg and "test_torch_tracer.py" in msg
    assert "torch.sort(x, dim=1)" in msg and "supports: modules " in msg and "nn.Conv2d" in msg and "F.conv2d" in msg


def test_unsupported_module_and_attribute():
    with pytest.raises(UnsupportedOpError, match=r"PReLU.*'body\.1'"):
        trace_float(Outer(nn.PReLU()), (X,))
    with pytest.raises(UnsupportedOpError, match=r"mode 'bicubic'"):
        trace_float(Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bicubic")), (X,))


def test_data_dependent_control_flow_names_module():
    with pytest.raises(UnsupportedOpError) as e:
        trace_float(Outer(Gated()), (X,))
    msg = str(e.value)
    assert "'body.1'" in msg and "Gated" in msg and "control flow" in msg and "\n" not in msg
    assert "if x.sum() > 0" in msg


def test_calibrate_compile_run_bit_exact():
    torch.manual_seed(0)
    model = _randomize_bn(Net()).eval()
    gen = torch.Generator().manual_seed(7)
    samples = [torch.randn(1, 3, 32, 32, generator=gen) for _ in range(8)]
    traced = trace_float(model, (samples[0],), name="net")
    hbdk_sim.calibrate(traced, [[s.numpy()] for s in samples])
    result = hbdk_sim.compile(traced, "bpu")
    hbm = hbdk_sim._core.load_hbm_bytes(result.hbm, "net")
    x = torch.randn(1, 3, 32, 32, generator=gen)
    fast = hbdk_sim.Executor(hbm).run([x.numpy()])
    ref = hbdk_sim.Executor(hbm, optimized=False).run([x.numpy()])
    with torch.no_grad():
        want = model(x)
    for (name, f), r, w in zip(fast.items(), ref.values(), want, strict=True):
        np.testing.assert_array_equal(f, r, err_msg=name)
        a, b = f.astype(np.float64).ravel(), w.numpy().astype(np.float64).ravel()
        cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        assert cosine > 0.99, (name, cosine)


# ---- what public zoos write: optional arguments, subclasses, functional batch norm ---------------


class _Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x, mask=None, scale: float = 2.0):
        y = self.conv(x)
        if mask is not None:
            y = y + mask
        return y * scale


def test_optional_arguments_left_out_take_their_defaults():
    x, mask = torch.randn(1, 3, 8, 8), torch.randn(1, 4, 8, 8)
    module = _check(_Masked().eval(), x)
    assert [a.name for a in module.function("main").arguments] == ["x"]
    assert "add" not in [op.name for op in module.function("main").ops]  # the `if mask is not None` branch
    module = _check(_Masked().eval(), x, mask)
    assert [a.name for a in module.function("main").arguments] == ["x", "mask"]


def test_a_parameter_without_default_or_input_is_a_usage_error():
    class TwoInputs(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(hbdk_sim.errors.UsageError, match="forward parameter 'y' has no default and no example input"):
        trace_float(TwoInputs(), (torch.randn(2, 2),))


class _TaggedConv(nn.Conv2d):
    """A zoo's subclass that adds an attribute and keeps nn.Conv2d's forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = "stem"


class _BatchNormAct(nn.BatchNorm2d):
    """A zoo's BN + activation module: overrides forward and calls F.batch_norm."""

    def __init__(self, channels):
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                         self.momentum, self.eps)
        return self.act(x)


def test_subclasses_and_functional_batch_norm_trace_as_torch_runs_them():
    torch.manual_seed(0)
    model = nn.Sequential(_TaggedConv(3, 8, 3, padding=1), _BatchNormAct(8), nn.Conv2d(8, 4, 1)).eval()
    _randomize_bn(model)
    module = _check(model, torch.randn(2, 3, 8, 8))
    ops = [op.name for op in module.function("main").ops if op.name != "constant"]
    assert ops == ["conv2d", "batch_norm", "relu", "conv2d"]
    assert [op.loc for op in module.function("main").ops if op.name == "conv2d"][0] == "0"  # mapped whole

    class NoStats(nn.Module):
        def forward(self, x):
            return F.batch_norm(x, None, None, training=True)

    with pytest.raises(UnsupportedOpError, match="F.batch_norm with training=True"):
        trace_float(NoStats(), (torch.randn(2, 3, 4, 4),))


def test_submodules_are_attributes_of_the_package():
    import subprocess
    import sys

    code = "import hbdk_sim; print(hbdk_sim.onnx_export.hbir_to_onnx.__name__, hbdk_sim.quantization.__name__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout.split()) == (0, ["hbir_to_onnx", "hbdk_sim.quantization"]), r.stderr
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        hbdk_sim.no_such_module  # noqa: B018


class _Pieces(nn.Module):
    """Slicing with steps and int indices, None, Ellipsis, chunk, split, unbind, expand, unsqueeze."""

    def forward(self, x):
        c = x.size(1) // 2
        a, b = x[:, :c], x[:, c:]
        p, q = torch.chunk(x, 2, dim=1)
        return (a[..., ::2, 1:] + b[:, :, ::2, 1:], torch.cat([q, p], 1), x.unbind(1)[2], x[0, 1],
                x[:, :1].expand(-1, 3, -1, -1), x[:, None, 1], torch.split(x, [1, 3], dim=1)[1].unsqueeze(0))


def test_indexing_and_splitting_are_exact_data_movement():
    x = torch.randn(2, 4, 6, 6)
    module = _check(_Pieces(), x, tol=0)
    ops = {op.name for op in module.function("main").ops}
    assert {"slice", "split", "reshape", "concat"} <= ops
    traced = trace_float(_Pieces(), (x,), name="pieces")
    hbdk_sim.calibrate(traced, [[torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(i)).numpy()]
                                for i in range(4)])
    hbm = hbdk_sim._core.load_hbm_bytes(hbdk_sim.compile(traced, "bpu").hbm, "pieces")
    fast = hbdk_sim.Executor(hbm).run([x.numpy()])
    for (name, f), r in zip(fast.items(), hbdk_sim.Executor(hbm, optimized=False).run([x.numpy()]).values(),
                            strict=True):
        np.testing.assert_array_equal(f, r, err_msg=name)


_BEYOND_BASIC = {  # kept apart from the expected words: the error quotes the failing source line
    "tensor-index": lambda x: x[:, torch.tensor([0, 1])],
    "expand-too-far": lambda x: x[:, :1].expand(1, 100, 6, 6),
}


@pytest.mark.parametrize("case, why", [("tensor-index", "indexing with a tensor, list or bool"),
                                       ("expand-too-far", "expanding dim 1 to 100 copies")])
def test_indexing_beyond_basic_is_named(case, why):
    class Index(nn.Module):
        def forward(self, x):
            return _BEYOND_BASIC[case](x)

    with pytest.raises(UnsupportedOpError, match=why):
        trace_float(Index(), (torch.randn(1, 4, 6, 6),))


@pytest.mark.parametrize("layer, op", [(nn.SiLU(), "silu"), (nn.Hardswish(), "hardswish"),
                                       (nn.Hardsigmoid(), "hardsigmoid"), (nn.GELU(), "gelu"),
                                       (lambda x: F.silu(x) + F.hardswish(x) + F.hardsigmoid(x) + F.gelu(x), "gelu")])
def test_lut_activations_match_torch(layer, op):
    class Act(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer if isinstance(layer, nn.Module) else None

        def forward(self, x):
            return self.layer(x) if self.layer is not None else layer(x)

    module = _check(Act(), 4 * torch.randn(2, 3, 5, 5), tol=1e-5)
    assert op in {o.name for o in module.function("main").ops}


def test_gelu_tanh_approximation_is_refused():
    with pytest.raises(UnsupportedOpError, match="approximate='tanh'"):
        trace_float(nn.GELU(approximate="tanh"), (torch.randn(2, 3),))


def test_layer_norm_over_the_last_dim():
    torch.manual_seed(0)
    norm = nn.LayerNorm(16).eval()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.5, 0.5)

    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = norm

        def forward(self, x):  # a channel LayerNorm as NCHW models write it: permute, normalize, permute back
            y = F.layer_norm(x.permute(0, 2, 3, 1), (16,), eps=1e-6).permute(0, 3, 1, 2)
            return self.norm(x.flatten(2).transpose(1, 2)), y

    module = _check(Both(), 3 * torch.randn(2, 16, 3, 5), tol=1e-4)
    assert [op.name for op in module.function("main").ops].count("layer_norm") == 2
    with pytest.raises(UnsupportedOpError, match=r"normalized_shape \[3, 5\]: only the last dim"):
        trace_float(nn.LayerNorm([3, 5]), (torch.randn(2, 16, 3, 5),))


def test_patch_embedding_maps_to_a_linear_over_patches():
    torch.manual_seed(0)
    embed = nn.Sequential(nn.Conv2d(3, 8, 16, 16)).eval()  # a module in a model, as patch embeddings are
    module = _check(embed, torch.randn(2, 3, 32, 48), tol=1e-4)
    ops = [op.name for op in module.function("main").ops if op.name != "constant"]
    assert ops == ["reshape", "transpose", "reshape", "linear", "transpose"]
    module = _check(nn.Sequential(nn.Conv2d(3, 8, 4, 4)).eval(), torch.randn(1, 3, 8, 8))  # a stride marches take
    assert "conv2d" in [op.name for op in module.function("main").ops]


class _Reductions(nn.Module):
    def forward(self, x):
        return (x.mean(-1), x.mean(1, keepdim=True), x.sum((1, 3)), torch.amax(x, dim=2), x.amax((0, 2), keepdim=True),
                x.mean((2, 3)), x.sum(dim=(0, 1, 2), keepdim=True), x.mean(), torch.mean(x, dim=[1, 2]))


def test_reductions_over_any_dims_match_torch():
    module = _check(_Reductions(), torch.randn(2, 3, 4, 5), tol=1e-5)
    assert {"global_avg_pool2d", "max_pool2d", "transpose", "mul"} <= {op.name for op in module.function("main").ops}
