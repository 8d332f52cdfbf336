"""The compiler on its own: take the bundled example model from HBIR to a bit-exact BPU binary.

    python tools/compiler_demo.py [MODEL.hbir] [--out-dir out/compiler_demo] [--force]

1. summarize the calibrated float model and run the `default` cleanup pipeline (pass timings);
2. compile it for every shipped march (`.hbm` files and their perf reports in --out-dir) and
   compare the cycle estimates;
3. run the `bpu` binary on seeded inputs with the optimized and the reference integer kernels
   (they must agree bit for bit) and compare with the float model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import hbdk_sim
import numpy as np
from hbdk_sim.examples import example_path


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None, help="a calibrated .hbir file (default: the bundled example)")
    ap.add_argument("--out-dir", type=Path, default=Path("out/compiler_demo"), help="where the .hbm files go")
    ap.add_argument("--force", action="store_true", help="replace .hbm files left by an earlier run")
    ap.add_argument("--samples", type=int, default=4, help="seeded inputs to run through the binary")
    args = ap.parse_args(argv)

    path = Path(args.model) if args.model else example_path()
    try:
        module = hbdk_sim.load(path)
    except (OSError, hbdk_sim.HbirError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 2
    before = hbdk_sim.summarize(module)
    print(f"== {path.name}\n{before.format()}\n")
    cleaned = hbdk_sim.parse(module.print(), str(path))
    result = cleaned.run_pipeline(["default"])
    print(f"== pipeline 'default'\n{result['report']}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"== compile ({args.out_dir}/)")
    print(f"  {'march':<10} {'TOPS':>6} {'latency ms':>10} {'FPS':>8} {'DDR KB':>7} {'MAC util':>8} "
          f"{'instructions':>12} {'binary bytes':>12}  file")
    binaries = {}
    for name in hbdk_sim.list_marches():
        march = hbdk_sim.load_march(name)
        out = args.out_dir / f"{path.stem}.{name}.hbm"
        try:
            compiled = hbdk_sim.compile(path, march, out, overwrite=args.force)
        except FileExistsError as e:
            print(f"{e}", file=sys.stderr)
            return 2
        except hbdk_sim.ConstraintError as e:
            print(f"  {name:<10} rejected:\n{e}")
            continue
        binaries[name] = out
        perf = compiled.perf
        print(f"  {name:<10} {march.peak_tops:>6.1f} {perf.latency_ms:>10.3f} {perf.fps:>8,.0f} "
              f"{perf.ddr_bytes_per_frame / 1e3:>7.1f} {perf.mac_utilization:>8.1%} {compiled.instructions:>12} "
              f"{len(compiled.hbm):>12,}  {out.name}")

    if "bpu" not in binaries:
        print("the model does not compile for 'bpu'", file=sys.stderr)
        return 1
    model = hbdk_sim.load_hbm(binaries["bpu"])
    board = hbdk_sim.Executor(model)
    reference = hbdk_sim.Executor(model, optimized=False)
    float_model = hbdk_sim.Executor(module)
    rng = np.random.default_rng(2024)
    shape = module.function("main").arguments[0].shape
    print(f"\n== run {binaries['bpu'].name} on {args.samples} seeded inputs")
    print(f"  {'sample':>6} {'bit-exact':>9} {'cos(int, float)':>15} {'board ms':>9} {'float ms':>9}")
    exact_all = True
    for i in range(args.samples):
        x = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        t0 = time.perf_counter()
        got = board.run([x])
        t1 = time.perf_counter()
        want = float_model.run([x])
        t2 = time.perf_counter()
        ref = reference.run([x])
        exact = all(np.array_equal(got[k], ref[k]) for k in got)
        exact_all &= exact
        cos = min(_cosine(g, w) for g, w in zip(got.values(), want.values(), strict=True))
        print(f"  {i:>6} {'yes' if exact else 'NO':>9} {cos:>15.5f} {1e3 * (t1 - t0):>9.2f} {1e3 * (t2 - t1):>9.2f}")
    print(f"\nsummary: {before.num_ops} ops, {before.parameters:,} parameters, {before.macs:,} MACs; "
          f"compiled for {len(binaries)}/{len(hbdk_sim.list_marches())} marches; "
          f"optimized == reference: {'yes' if exact_all else 'NO'}")
    return 0 if exact_all else 1


if __name__ == "__main__":
    sys.exit(main())
