"""UNet with a MobileNetV1 (width 0.25) backbone: semantic segmentation of Cityscapes' 19 classes.

Defaults are the full-size setting of the source documents: 1024x2048 input, four output scales
(strides 4, 8, 16, 32) each with a focal loss whose weight halves per coarser scale, camera input
as YUV444 normalized by (x - 128) / 128. A small CPU run overrides the top-level sizes, e.g.

    python3 tools/train.py --stage float --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        --opts data_root=./data/synthetic image_size=[128,256] batch_size=8 float_epochs=20

Every stage reads its weights from the previous one under `work_dir`: float/best.pt ->
calibration/last.pt -> qat/best.pt.
"""

from hbdk_sim.engine.recipes import quantization_stages

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
# The board runs one graph, the network's finest scale (Segmentor's board graph "network").
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


# The four stages (float -> calibration -> qat, and the int_infer conversion), each reading the
# previous one's checkpoint under work_dir: the shared recipe of every task config.
_stages = quantization_stages(
    work_dir=work_dir, monitor="mIoU", float_epochs=float_epochs, float_lr=float_lr, warmup_steps=warmup_steps,
    calibration_batches=calibration_batches, qat_epochs=qat_epochs, qat_lr=qat_lr,
    deploy_input_shape=deploy_input_shape,
)
float_trainer = _stages["float_trainer"]
calibration_trainer = _stages["calibration_trainer"]
qat_trainer = _stages["qat_trainer"]
float_predictor = _stages["float_predictor"]
calibration_predictor = _stages["calibration_predictor"]
qat_predictor = _stages["qat_predictor"]
int_infer_predictor = _stages["int_infer_predictor"]
