"""The main job: run the default pipeline on the bundled example model and print what it did.

    python tools/demo.py [MODEL.hbir] [--pipeline default]
"""

from __future__ import annotations

import argparse
import sys

import hbdk_sim
from hbdk_sim.examples import example_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None, help="an .hbir file (default: the bundled example)")
    ap.add_argument("--pipeline", default="default", help="pass or pipeline names, comma-separated")
    args = ap.parse_args(argv)

    path = args.model or example_path()
    try:
        module = hbdk_sim.load(path)
    except (OSError, hbdk_sim.HbirError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 2
    before = hbdk_sim.summarize(module)
    print(f"== {path}\n{before.format()}\n")

    result = module.run_pipeline(args.pipeline.split(","))
    print(f"== pipeline '{args.pipeline}'\n{result['report']}")
    after = hbdk_sim.summarize(module)
    print(f"== after\n{after.format()}\n")
    print(f"ops {before.num_ops} -> {after.num_ops}, parameters {before.parameters:,} -> {after.parameters:,}, "
          f"MACs {before.macs:,} -> {after.macs:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
