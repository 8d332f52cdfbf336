"""Text-form speed: parsing and printing the bundled example against the floor for the same bytes.

The peer is Python's `bytes.fromhex` + `numpy.frombuffer` on exactly the hex payload of the
file's resource section: any parser must at least decode that. Targets, as ratios in one run:
parse <= 4x the peer, print <= 4x the peer (weights dominate the file).
Run with `make bench`.
"""

from __future__ import annotations

import re

import hbdk_sim
import numpy as np
import pytest
from hbdk_sim.examples import example_path
from timing import best_of

TEXT = example_path().read_bytes()
HEX_PAYLOADS = [m.group(1) for m in re.finditer(rb'= "0x([0-9A-F]*)"', TEXT)]


def _peer_decode() -> int:
    return sum(np.frombuffer(bytes.fromhex(h.decode()), dtype=np.uint8).size for h in HEX_PAYLOADS)


def test_parse_example(benchmark):
    module = benchmark(hbdk_sim.parse, TEXT, "example.hbir")
    assert module.print().encode() == TEXT


def test_print_example(benchmark):
    module = hbdk_sim.parse(TEXT, "example.hbir")
    assert benchmark(module.print).encode() == TEXT


def test_peer_hex_decode(benchmark):
    assert benchmark(_peer_decode) > 0


@pytest.mark.parametrize("what,target", [("parse", 4.0), ("print", 4.0)])
def test_ratio_against_hex_decode_peer(what, target, benchmark):
    module = hbdk_sim.parse(TEXT, "example.hbir")
    ours = {"parse": lambda: hbdk_sim.parse(TEXT, "example.hbir"), "print": module.print}[what]
    ratio = best_of(ours, 15) / best_of(_peer_decode, 15)
    benchmark.extra_info[f"{what}_over_hex_decode"] = round(ratio, 3)
    benchmark.pedantic(lambda: None, rounds=1)
    assert ratio <= target, f"{what} is {ratio:.2f}x the hex-decode peer (target <= {target}x)"
