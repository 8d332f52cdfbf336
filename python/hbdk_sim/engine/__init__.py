"""The training engine: config files and overrides, the Trainer with its callbacks and LR schedules,
the Predictor, and data-parallel helpers over torch.distributed."""

from hbdk_sim.engine.batch_processor import BATCH_PROCESSORS, BatchProcessor, sum_losses
from hbdk_sim.engine.callbacks import (
    EMA,
    Callback,
    Checkpoint,
    Logger,
    Validation,
    load_checkpoint,
    load_weights,
    rng_state,
    set_rng_state,
)
from hbdk_sim.engine.config import Config, ConfigError, apply_overrides, parse_value
from hbdk_sim.engine.distributed import (
    DistInfo,
    SequenceShardSampler,
    ShardSampler,
    build_sampler,
    destroy_distributed,
    distributed_session,
    init_distributed,
    reduce_metric,
)
from hbdk_sim.engine.predictor import Predictor
from hbdk_sim.engine.schedulers import CosineWithWarmup, build_optimizer, build_scheduler
from hbdk_sim.engine.trainer import Trainer, build_trainer

__all__ = [
    "BATCH_PROCESSORS", "EMA", "BatchProcessor", "Callback", "Checkpoint", "Config", "ConfigError",
    "CosineWithWarmup", "DistInfo", "Logger", "Predictor", "SequenceShardSampler", "ShardSampler", "Trainer",
    "Validation",
    "apply_overrides", "build_optimizer", "build_sampler", "build_scheduler", "build_trainer",
    "destroy_distributed", "distributed_session", "init_distributed", "load_checkpoint", "load_weights",
    "parse_value", "reduce_metric", "rng_state", "set_rng_state", "sum_losses",
]
