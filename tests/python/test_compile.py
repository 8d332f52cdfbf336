"""The back end end to end: compile the bundled example for every march, run the .hbm bit-exactly,
check a model that breaks rules, and the CLI around it (compile, check, run, info, marches)."""

import json

import hbdk_sim
import numpy as np
import pytest
from hbdk_sim import api
from hbdk_sim.examples import example_path, mobilenet_v1_tiny
from hbdk_sim.march import list_marches


@pytest.fixture(scope="module")
def sample():
    return np.random.default_rng(7).uniform(-1, 1, mobilenet_v1_tiny.INPUT_SHAPE).astype(np.float32)


@pytest.mark.parametrize("march", list_marches())
def test_example_compiles_and_runs_bit_exactly_on_every_march(march, sample, tmp_path):
    out = tmp_path / f"{march}.hbm"
    result = api.compile(example_path(), march, out)
    assert out.read_bytes() == result.hbm and result.instructions > 0
    model = api.load_hbm(out)
    assert model.march == march
    optimized = api.Executor(model).run({"input": sample})
    reference = api.Executor(model, optimized=False).run({"input": sample})
    assert optimized.keys() == reference.keys()
    for name in optimized:
        np.testing.assert_array_equal(optimized[name], reference[name])


def test_int_model_tracks_the_float_model(sample, tmp_path):
    float_module = hbdk_sim.load(example_path())
    (expected,) = api.Executor(float_module).run([sample]).values()
    model = api.load_hbm(_compiled(tmp_path))
    (got,) = api.Executor(model).run([sample]).values()
    cos = float(np.dot(expected.ravel(), got.ravel()) / (np.linalg.norm(expected) * np.linalg.norm(got)))
    assert cos > 0.99, cos


def _compiled(tmp_path):
    out = tmp_path / "m.hbm"
    api.compile(example_path(), "bpu", out)
    return out


def test_compile_refuses_to_overwrite(tmp_path):
    out = _compiled(tmp_path)
    with pytest.raises(FileExistsError):
        api.compile(example_path(), "bpu", out)
    api.compile(example_path(), "bpu", out, overwrite=True)


def _rule_breaking_module():
    """A calibrated model with a 9x9 kernel, stride 3 and a 5x upsample: three violations on bpu_nano."""
    m = hbdk_sim.Module("bad")
    fn = m.add_function("main")
    x = fn.add_argument(hbdk_sim.TensorType([1, 4, 32, 32], "f32", scale=0.02), "x")
    w = m.create_constant(fn, np.full((8, 4, 9, 9), 0.01, np.float32), name="w").result()
    y = m.create_op(fn, "conv2d", [x, w], {"stride": [3, 3], "padding": [4, 4, 4, 4]}, loc="big_conv",
                    result_types=[hbdk_sim.TensorType([1, 8, 11, 11], "f32", scale=0.05)]).result()
    z = m.create_op(fn, "resize2d", [y], {"size": [55, 55]}, loc="up5",
                    result_types=[hbdk_sim.TensorType([1, 8, 55, 55], "f32", scale=0.05)]).result()
    fn.returns = [z]
    m.verify()
    return m


def test_check_lists_every_violation():
    result = api.check(_rule_breaking_module(), "bpu_nano")
    assert not result.ok
    rules = sorted(v["rule"] for v in result.violations)
    assert {"kernel-size", "stride", "resize-factor"} <= set(rules), rules
    assert all(v["hint"] for v in result.violations)


def test_compile_raises_constraint_error_with_violations():
    with pytest.raises(hbdk_sim.ConstraintError) as e:
        api.compile(_rule_breaking_module(), "bpu_nano")
    assert len(e.value.violations) >= 3


def test_cli_compile_info_run(cli, tmp_path, sample):
    out = tmp_path / "m.hbm"
    r = cli("compile", example_path(), "--march", "bpu", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "supported" in r.stdout and str(out) in r.stdout
    r = cli("compile", example_path(), "-o", out)
    assert r.returncode == 2 and "--force" in r.stderr
    r = cli("compile", example_path(), "-o", out, "--force", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True

    r = cli("info", out, "--json")
    assert r.returncode == 0
    info = json.loads(r.stdout)
    assert info["march"] == "bpu" and info["inputs"][0]["name"] == "input"
    assert cli("info", out).returncode == 0

    x = tmp_path / "x.npy"
    np.save(x, sample)
    res = tmp_path / "out.npz"
    r = cli("run", out, "--input", f"input={x}", "-o", res)
    assert r.returncode == 0, r.stderr
    got = dict(np.load(res))
    expected = api.Executor(api.load_hbm(out)).run({"input": sample})
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)
    r = cli("run", out, "--input", f"nope={x}", "-o", tmp_path / "o2.npz")
    assert r.returncode == 2 and "no input of that name" in r.stderr


def test_cli_check(cli, tmp_path):
    assert cli("check", example_path(), "--march", "bpu").returncode == 0
    bad = tmp_path / "bad.hbir"
    bad.write_text(_rule_breaking_module().print())
    r = cli("check", bad, "--march", "bpu_nano")
    assert r.returncode == 1 and "kernel-size" in r.stderr and "resize-factor" in r.stderr
    r = cli("check", bad, "--march", "bpu_nano", "--json")
    assert r.returncode == 1 and len(json.loads(r.stdout)["violations"]) >= 3
    r = cli("compile", bad, "--march", "bpu_nano", "-o", tmp_path / "bad.hbm")
    assert r.returncode == 1 and not (tmp_path / "bad.hbm").exists()


def test_cli_marches_and_bad_march(cli, tmp_path):
    r = cli("marches")
    assert r.returncode == 0 and all(name in r.stdout for name in list_marches())
    rows = json.loads(cli("marches", "--json").stdout)
    tops = sorted(row["tops_int8"] for row in rows)
    assert tops[0] <= 6 and tops[-1] >= 100
    r = cli("check", example_path(), "--march", "bpu_nanoo")
    assert r.returncode == 2 and "did you mean 'bpu_nano'" in r.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",}')
    r = cli("compile", example_path(), "--march", broken)
    assert r.returncode == 2 and str(broken) in r.stderr


def test_corrupt_hbm_is_refused_by_cli(cli, tmp_path):
    out = _compiled(tmp_path)
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    for command in ("info", "run"):
        r = cli(command, out)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_run_rejects_a_file_that_is_not_npy(cli, tmp_path):
    out = _compiled(tmp_path)
    bad = tmp_path / "x.npy"
    bad.write_text("garbage")
    r = cli("run", out, "--input", f"input={bad}", "-o", tmp_path / "o.npz")
    assert r.returncode == 2 and "not a .npy file" in r.stderr
