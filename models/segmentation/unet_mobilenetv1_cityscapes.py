"""UNet with a MobileNetV1 (width 0.25) backbone: semantic segmentation of Cityscapes' 19 classes.

Defaults are the full-size setting of the source documents: 1024x2048 input, four output scales
(strides 4, 8, 16, 32) each with a focal loss whose weight halves per coarser scale, camera input
as YUV444 normalized by (x - 128) / 128. A small CPU run overrides the top-level sizes, e.g.

    python3 tools/train.py --stage float --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        --opts data_root=./data/synthetic image_size=[128,256] batch_size=8 float_epochs=20

Every stage reads its weights from the previous one under `work_dir`: float/best.pt ->
calibration/last.pt -> qat/best.pt.
"""

task_name = "unet_mobilenetv1_cityscapes"
data_root = "./data/cityscapes"  # <data_root>/{train,val}_lmdb from tools/datasets/cityscapes_packer.py
work_dir = "./work/unet_mobilenetv1_cityscapes"
image_size = [1024, 2048]  # H, W: the network input
num_classes = 19
out_strides = [4, 8, 16, 32]
loss_weights = [1.0, 0.5, 0.25, 0.125]  # coarser scales weigh less
focal_gamma = 2.0
batch_size = 4  # per process
val_batch_size = 4
num_workers = 4
seed = 0
march = "bpu"

float_epochs = 300
float_lr = 2e-3
warmup_steps = 100
calibration_batches = 8  # batches of batch_size: 32 samples
qat_epochs = 10
qat_lr = 1e-4

network = dict(type="UNetMobileNetV1", num_classes=num_classes, width=0.25, out_strides=out_strides)
model = dict(
    type="Segmentor",
    network=network,
    loss=dict(type="MultiScaleSegLoss", loss=dict(type="FocalLoss", gamma=focal_gamma), weights=loss_weights),
    finest_loss_at_label_size=True,  # the finest logits upsampled to the labels, as predictions are made
)
# What the board runs: the finest scale only.
deploy_model = dict(network, deploy=True)
deploy_input_shape = [1, 3] + image_size

# Camera images arrive as YUV444; the network sees (yuv - 128) / 128.
train_transforms = [
    dict(type="LabelRemap"),
    dict(type="SegRandomAffine", scale=(0.75, 1.5), size=image_size),
    dict(type="RandomFlip"),
    dict(type="MultiScaleLabels", strides=out_strides),
    dict(type="ToTensor", to_yuv=True),
    dict(type="Normalize", mean=128.0, std=128.0),
]
val_transforms = [
    dict(type="LabelRemap"),
    dict(type="Resize", size=image_size),
    dict(type="ToTensor", to_yuv=True),
    dict(type="Normalize", mean=128.0, std=128.0),
]
train_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/train_lmdb", transforms=train_transforms),
    batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True,
)
val_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/val_lmdb", transforms=val_transforms),
    batch_size=val_batch_size, shuffle=False, num_workers=num_workers,
)
metric = dict(type="MeanIoU", num_classes=num_classes)


def _stage(name, monitor=True):
    return [
        dict(type="Checkpoint", dir=f"{work_dir}/{name}", monitor="mIoU" if monitor else None, resume=True),
        dict(type="Logger", log_file=f"{work_dir}/{name}/log.jsonl", interval=10),
    ]


float_trainer = dict(
    type="Trainer",
    num_epochs=float_epochs,
    optimizer=dict(type="AdamW", lr=float_lr, weight_decay=1e-4),
    lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=warmup_steps, interval="step"),
    batch_processor=dict(type="BatchProcessor", grad_clip=5.0),
    callbacks=[dict(type="Validation", every_n_epochs=5), *_stage("float")],
)
calibration_trainer = dict(
    type="Trainer",
    num_epochs=1,
    steps_per_epoch=calibration_batches,
    optimizer=None,  # forward only: the observers record
    model_convert_pipeline=[
        dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt"),
        dict(type="Float2Calibration"),
    ],
    callbacks=_stage("calibration", monitor=False),
)
qat_trainer = dict(
    type="Trainer",
    num_epochs=qat_epochs,
    optimizer=dict(type="AdamW", lr=qat_lr, weight_decay=1e-4),
    lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=0, interval="step"),
    batch_processor=dict(type="BatchProcessor", grad_clip=5.0),
    model_convert_pipeline=[
        dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt"),
        dict(type="Float2QAT"),
        dict(type="LoadCheckpoint", path=f"{work_dir}/calibration/last.pt"),
    ],
    callbacks=[dict(type="Validation", every_n_epochs=1), *_stage("qat")],
)

float_predictor = dict(
    type="Predictor",
    model_convert_pipeline=[dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt")],
)


def _fake_quant_predictor(prepare, checkpoint):
    """Evaluate a fake-quant stage: prepare the float model the stage's way, load its weights and
    scales, freeze the scales."""
    return dict(
        type="Predictor",
        model_convert_pipeline=[
            dict(type=prepare),
            dict(type="LoadCheckpoint", path=f"{work_dir}/{checkpoint}"),
            dict(type="SetFakeQuantState", state="validation"),
        ],
    )


calibration_predictor = _fake_quant_predictor("Float2Calibration", "calibration/last.pt")
qat_predictor = _fake_quant_predictor("Float2QAT", "qat/best.pt")
int_infer_predictor = dict(
    type="Predictor",
    model_convert_pipeline=[
        dict(type="Float2QAT"),
        dict(type="LoadCheckpoint", path=f"{work_dir}/qat/best.pt"),
        dict(type="QAT2Quantize", input_shape=[1, 3] + image_size, submodule="network"),
    ],
)
