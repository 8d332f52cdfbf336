"""Car keypoints: EfficientNet-B0 and a deconv heatmap decoder on CarFusion crops, 12 keypoints.

Defaults are the reference setting: 128x128 input (a car crop resized keeping its ratio and padded),
heatmaps at stride 4 (32x32), AdamW 1e-3 with weight decay 0.05, cosine decay without warm-up,
gradient clipping at 0.1, 50 epochs of batch 64 (32 per process on two), PCK@0.1 as the checkpoint
monitor; calibration on 100 batches with percentile (99.975) activation observers, and the
calibrated model is what int_infer converts and the board runs (no QAT needed; the qat stage works
and starts from the calibration scales). Data: tools/dataset_converters/gen_carfusion_data.py crops
the raw CarFusion tree, tools/datasets/carfusion_packer.py packs <data_root>/{train,test}_lmdb.

    python3 tools/train.py --stage float --config models/keypoint/keypoint_efficientnetb0_carfusion.py \
        --opts data_root=./data/carfusion_lmdb float_epochs=10

Every stage reads its weights from the previous one under `work_dir`: float/best.pt ->
calibration/last.pt (-> qat/best.pt).
"""

from hbdk_sim.data.datasets.carfusion import FLIP_PAIRS, SKELETON
from hbdk_sim.engine.recipes import quantization_stages

task_name = "keypoint_efficientnetb0_carfusion"
data_root = "./data/carfusion_lmdb"  # <data_root>/{train,test}_lmdb from tools/datasets/carfusion_packer.py
work_dir = "./work/keypoint_efficientnetb0_carfusion"
image_size = [128, 128]  # H, W: the network input
num_keypoints = 12
heatmap_stride = 4
heatmap_background_weight = 0.1  # the loss weight of heatmap pixels outside the targets' windows
batch_size = 32  # per process
val_batch_size = 64
num_workers = 4
seed = 0
march = "bpu"

float_epochs = 50
float_lr = 1e-3
float_validate_every = 1  # epochs between validations (the best checkpoint is chosen among them)
weight_decay = 0.05
grad_clip = 0.1
calibration_batches = 100
calibration_percentile = 99.975
qat_epochs = 5
qat_lr = 1e-5

model = dict(
    type="HeatmapKeypointModel",
    network=dict(
        type="HeatmapKeypointNet",
        backbone=dict(type="EfficientNet", model_type="b0"),
        head=dict(type="DeconvDecoder", in_channels=320, out_channels=num_keypoints, num_deconv_filters=[128, 128, 128],
                  num_deconv_kernels=[4, 4, 4], final_conv_kernel=3),
    ),
    num_keypoints=num_keypoints,
    stride=heatmap_stride,
    image_size=image_size,
    loss=dict(type="HeatmapMSELoss"),
    skeleton=SKELETON,
)
deploy_input_shape = [1, 3] + image_size

_heatmap = dict(type="GenerateHeatmapTarget", num_keypoints=num_keypoints, stride=heatmap_stride,
                heatmap_size=[s // heatmap_stride for s in image_size], sigma=1.0,
                background_weight=heatmap_background_weight)
# Camera images arrive as YUV444; the network sees (yuv - 128) / 128.
train_transforms = [
    dict(type="RandomFlip", p=0.5, keypoint_flip_pairs=FLIP_PAIRS),
    dict(type="Resize", size=image_size, keep_ratio=True),
    dict(type="RandomPad", size=image_size),
    dict(type="AddGaussianNoise", p=0.2, mean=0.0, sigma=2.0),
    _heatmap,
    dict(type="ToTensor", to_yuv=True),
    dict(type="Normalize", mean=128.0, std=128.0),
]
val_transforms = [
    dict(type="Resize", size=image_size, keep_ratio=True),
    dict(type="RandomPad", size=image_size, random=False),
    dict(type="ToTensor", to_yuv=True),
    dict(type="Normalize", mean=128.0, std=128.0),
]
train_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/train_lmdb", transforms=train_transforms),
    batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True,
)
val_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/test_lmdb", transforms=val_transforms),
    batch_size=val_batch_size, shuffle=False, num_workers=num_workers,
)
# Calibration sees training images through the validation transforms (the heatmap targets only feed
# the loss its forward computes).
calibration_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/train_lmdb", transforms=val_transforms[:2] + [_heatmap]
                 + val_transforms[2:]),
    batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True,
)
metric = dict(type="MetricCollection", metrics=[
    dict(type="PCKMetric", alpha=0.1, image_size=image_size),
    dict(type="MeanKeypointDist"),
])

_stages = quantization_stages(
    work_dir=work_dir, monitor="PCK@0.1", float_epochs=float_epochs, float_lr=float_lr, warmup_steps=0,
    calibration_batches=calibration_batches, qat_epochs=qat_epochs, qat_lr=qat_lr,
    deploy_input_shape=deploy_input_shape, weight_decay=weight_decay, grad_clip=grad_clip,
    float_validate_every=float_validate_every,
    calibration_observer=dict(observer="percentile", observer_kwargs=dict(percentile=calibration_percentile)),
    int_infer_from="calibration", channels_last=True,
)
float_trainer = _stages["float_trainer"]
calibration_trainer = dict(_stages["calibration_trainer"], data_loader="calibration_data_loader")
qat_trainer = _stages["qat_trainer"]
float_predictor = _stages["float_predictor"]
calibration_predictor = _stages["calibration_predictor"]
qat_predictor = _stages["qat_predictor"]
int_infer_predictor = _stages["int_infer_predictor"]
