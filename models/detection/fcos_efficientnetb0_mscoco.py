"""Object detection: FCOS with an EfficientNet-B0 backbone and a BiFPN neck on MS COCO, 80 classes.

Defaults are the reference setting: 512x512 input (the image resized keeping its ratio and padded
bottom-right), training from scratch for 300 epochs of batch 96 (24 per process on four) with SGD
(lr 0.14, momentum 0.937, Nesterov, weight decay 4e-5 on every parameter whose name holds
"weight", BatchNorm's included, none on biases), cosine decay after a 2-epoch linear warm-up, an EMA
of the weights (decay 0.9999 ramped in over 2000 steps) that validation evaluates and the later
stages start from, COCO mAP (pycocotools) as the checkpoint monitor; calibration on 100 batches
with MSE activation observers; QAT for 10 epochs (SGD 1e-4, momentum 0.9, x0.1 after epoch 5, no
HSV augmentation) with the activation scales frozen at calibration's and the weights' scales
following the weights. The class, box and centerness outputs are int16, the rest int8.

    python3 tools/datasets/mscoco_packer.py --src-data-dir ./data/mscoco --target-data-dir ./data/mscoco_lmdb \
        --split-name train --pack-type lmdb      # and --split-name val
    python3 tools/train.py --stage float --config models/detection/fcos_efficientnetb0_mscoco.py \
        --opts coco_root=./data/mscoco data_root=./data/mscoco_lmdb

`coco_root` holds annotations/instances_val2017.json, which the metric evaluates against (every
image of the file); `data_root` the packed <data_root>/{train,val}_lmdb. Every stage reads its
weights from the previous one under `work_dir`: float/best.pt (its EMA weights) ->
calibration/last.pt -> qat/best.pt, which int_infer converts.
"""

from hbdk_sim.data.datasets.mscoco import COCO_CLASS_NAMES
from hbdk_sim.engine.recipes import quantization_stages

task_name = "fcos_efficientnetb0_mscoco"
coco_root = "./data/mscoco"  # the raw layout: annotations/instances_{train,val}2017.json, {train,val}2017/
data_root = "./data/mscoco_lmdb"  # <data_root>/{train,val}_lmdb from tools/datasets/mscoco_packer.py
ann_file = f"{coco_root}/annotations/instances_val2017.json"
work_dir = "./work/fcos_efficientnetb0_mscoco"
image_size = [512, 512]  # H, W: the network input
num_classes = 80
resize_ratio_range = [0.5, 2.0]  # multi-scale training: the target size times a factor drawn from this range
batch_size = 24  # per process
val_batch_size = 16
num_workers = 4
seed = 0
march = "bpu"

float_epochs = 300
float_optimizer = dict(type="SGD", momentum=0.937, nesterov=True)  # with float_lr and the weight decay below
float_lr = 0.14
warmup_epochs = 2
weight_decay = 4e-5  # on the parameters whose name holds "weight"
float_validate_every = 5  # epochs between validations (the best checkpoint is chosen among them)
ema_decay = 0.9999
ema_warmup_steps = 2000
calibration_batches = 100
qat_epochs = 10
qat_lr = 1e-4
qat_decay_epochs = [5]  # the QAT lr falls x0.1 after each

model = dict(
    type="FCOS",
    network=dict(
        type="FCOSNet",
        backbone=dict(type="EfficientNet", model_type="b0"),
        neck=dict(type="BiFPN", in_strides=[2, 4, 8, 16, 32], out_channels=64, stack=3),
        head=dict(type="FCOSHead", num_classes=num_classes, feat_channels=64, stacked_convs=4),
    ),
    num_classes=num_classes,
    strides=[8, 16, 32, 64, 128],
    class_names=list(COCO_CLASS_NAMES),
    filter_threshold=-2.944,  # the board filter: positions whose largest class logit reaches the logit of 0.05
    score_threshold=0.05,
    iou_threshold=0.6,
    max_per_image=100,
    nms_pre=1000,
)
deploy_input_shape = [1, 3] + image_size

# Camera images arrive as YUV444; the network sees (yuv - 128) / 128.
_to_input = [dict(type="ToTensor", to_yuv=True), dict(type="Normalize", mean=128.0, std=128.0)]
train_transforms = [
    dict(type="Resize", size=image_size, keep_ratio=True, ratio_range=resize_ratio_range),
    dict(type="RandomCrop", size=image_size),
    dict(type="RandomPad", size=image_size, random=False),
    dict(type="RandomFlip", p=0.5),
    dict(type="AugmentHSV", hgain=0.015, sgain=0.7, vgain=0.4),
    *_to_input,
]
qat_transforms = [t for t in train_transforms if t["type"] != "AugmentHSV"]
val_transforms = [
    dict(type="Resize", size=image_size, keep_ratio=True),
    dict(type="RandomPad", size=image_size, random=False),
    *_to_input,
]
train_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/train_lmdb", transforms=train_transforms),
    batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True, collate="objects",
)
qat_data_loader = dict(train_data_loader, dataset=dict(train_data_loader["dataset"], transforms=qat_transforms))
val_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/val_lmdb", transforms=val_transforms),
    batch_size=val_batch_size, shuffle=False, num_workers=num_workers, collate="objects",
)
# Calibration sees training images through the validation transforms.
calibration_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/train_lmdb", transforms=val_transforms),
    batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True, collate="objects",
)
metric = dict(type="COCODetectionMetric", ann_file=ann_file)

_weights_decay = dict(param_groups={"weight": dict(weight_decay=weight_decay)})
_stages = quantization_stages(
    work_dir=work_dir, monitor="mAP", float_epochs=float_epochs, float_lr=float_lr, warmup_epochs=warmup_epochs,
    calibration_batches=calibration_batches, qat_epochs=qat_epochs, qat_lr=qat_lr,
    deploy_input_shape=deploy_input_shape, weight_decay=0.0, grad_clip=None,
    float_validate_every=float_validate_every,
    optimizer=dict(float_optimizer, **_weights_decay),
    qat_optimizer=dict(type="SGD", momentum=0.9, **_weights_decay),
    qat_lr_scheduler=dict(type="MultiStepLR", milestones=qat_decay_epochs, gamma=0.1, interval="epoch"),
    ema=dict(decay=ema_decay, warmup_steps=ema_warmup_steps),
    calibration_observer=dict(observer="mse"), qat_activation_scales="frozen",
)
float_trainer = _stages["float_trainer"]
calibration_trainer = dict(_stages["calibration_trainer"], data_loader="calibration_data_loader")
qat_trainer = dict(_stages["qat_trainer"], data_loader="qat_data_loader")
float_predictor = _stages["float_predictor"]
calibration_predictor = _stages["calibration_predictor"]
qat_predictor = _stages["qat_predictor"]
int_infer_predictor = _stages["int_infer_predictor"]
