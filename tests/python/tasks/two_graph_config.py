"""The config of tests/python/tasks/two_graph_task.py on synthetic Cityscapes (sizes set by --opts)."""

from hbdk_sim.engine.recipes import quantization_stages
from two_graph_task import TwoGraphSegmentor

task_name = "two_graph"
data_root = "./data"
work_dir = "./work"
image_size = [32, 64]
batch_size = 2
seed = 0
march = "bpu"

model = dict(type=TwoGraphSegmentor, num_classes=19)
deploy_input_shape = [1, 3] + image_size
_val_transforms = [
    dict(type="LabelRemap"),
    dict(type="Resize", size=image_size),
    dict(type="ToTensor", to_yuv=True),
    dict(type="Normalize", mean=128.0, std=128.0),
]
train_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/train_lmdb", transforms=_val_transforms),
    batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True,
)
val_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/val_lmdb", transforms=_val_transforms),
    batch_size=batch_size, shuffle=False, num_workers=0,
)
metric = dict(type="MeanIoU", num_classes=19)

_stages = quantization_stages(
    work_dir=work_dir, monitor="mIoU", float_epochs=1, float_lr=1e-3, warmup_steps=1, calibration_batches=2,
    qat_epochs=1, qat_lr=1e-4, deploy_input_shape=deploy_input_shape,
)
float_trainer = _stages["float_trainer"]
calibration_trainer = _stages["calibration_trainer"]
qat_trainer = _stages["qat_trainer"]
float_predictor = _stages["float_predictor"]
calibration_predictor = _stages["calibration_predictor"]
qat_predictor = _stages["qat_predictor"]
int_infer_predictor = _stages["int_infer_predictor"]
