"""Post-training calibration of a float HBIR module: run it on sample inputs and attach a
symmetric scale to every activation value (function arguments and op results, not constants).

This is what the `quantize` pass needs from a float graph; the torch front end attaches the same
annotations from its observers or QAT. Here the statistic is the running max of |x| over the
samples, giving `scale = max|x| / qmax` (127 for si8, 32767 for si16).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from hbdk_sim import _core
from hbdk_sim.errors import UsageError

# A value whose samples are all zero still needs a positive scale.
MIN_SCALE = 1e-8


def _name_values(fn: _core.Function) -> list[_core.Value]:
    """Activation values of `fn`, each given a unique name so run_all results can be matched."""
    taken = {a.name for a in fn.arguments} | {r.name for op in fn.ops for r in op.results}
    values = list(fn.arguments) + [r for op in fn.ops if op.name != "constant" for r in op.results]
    counter = 0
    seen: set[str] = set()
    for v in values:
        if not v.name or v.name in seen:
            while f"v{counter}" in taken:
                counter += 1
            v.name = f"v{counter}"
            taken.add(v.name)
        seen.add(v.name)
    return values


def calibrate(module: _core.Module, samples: Iterable[Sequence[np.ndarray]], function: str = "main",
              int16_values: Iterable[str] = ()) -> dict[str, float]:
    """Annotate every f32 activation of `function` with a max-abs scale measured on `samples`
    (each sample is the list of the function's arguments). Op results named in `int16_values` get an
    int16 scale and ask the quantize pass for si16 (`quant.dtype = "si16"` on their op; function
    arguments are always si8). Returns the scales by value name. The module is changed in place."""
    fn = module.function(function)
    values = _name_values(fn)
    wide = set(int16_values)
    executor = _core.Executor(module, function)
    amax: dict[str, float] = {v.name: 0.0 for v in values}
    count = 0
    for sample in samples:
        outputs = executor.run_all([np.asarray(x, dtype=np.float32) for x in sample])
        for name in amax:
            amax[name] = max(amax[name], float(np.max(np.abs(outputs[name])))) if outputs[name].size else amax[name]
        count += 1
    if count == 0:
        raise UsageError("calibrate needs at least one sample")
    scales = {}
    for v in values:
        if v.dtype != "f32":
            continue
        qmax = 127
        if v.name in wide:
            if v.owner is None:
                raise UsageError(f"'{v.name}' is a function argument; arguments are always quantized to si8")
            v.owner.set_attr("quant.dtype", "si16")
            qmax = 32767
        scale = max(amax[v.name] / qmax, MIN_SCALE)
        v.set_type(_core.TensorType(v.shape, "f32", scale=scale))
        scales[v.name] = scale
    module.verify()
    return scales
