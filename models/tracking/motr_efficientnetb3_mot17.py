"""Multi-object tracking: MOTR with an EfficientNet-B3 backbone on the MOT17 SDP half split.

One config for both board graphs: the task model `Motr` gives the stages and tools its two graphs,
"base" (image and track slots in; classes, boxes and decoder queries out) and "qim" (the kept
tracks' queries updated for the next frame), and runs the track lifecycle between them on the host.
Every deployment tool exports, checks, compiles and estimates both (compile_perf reports each and the
per-frame sum); predict and validation_hbir run the whole loop over each sequence.

Defaults are the reference setting: 800x1422 input (resized without keeping the ratio), d_model 256,
6 + 6 layers, 256 detect queries and 256 track slots; float training for 400 epochs, one clip per
process (clips of 2, 3, 4, 5 frames from epochs 0, 100, 180, 240, frames 1-10 apart), AdamW lr 2e-4
(2e-5 for the backbone and the sampling offsets), weight decay 1e-4, x0.1 after epoch 200, gradient
norm clipped at 0.1, multi-scale training; calibration on 10 clips with MSE activation observers;
QAT for 10 epochs (AdamW 1e-4, x0.1 after epoch 5) from the float weights with the activation
scales frozen at calibration's (the weights' scales follow the weights; the reference starts QAT
from the float weights alone and lets min-max observers follow, where an MSE observer recomputed
every step would cost more than the step).
The transformer and QIM are int16 except the deformable attention's value/output projections and
the sine tables (Motr's `int16`). Both networks are prepared for quantization in graph mode at the
deploy size, so calibration and QAT see frames at `image_size` (resized, flipped; no multi-scale).

    python3 tools/dataset_converters/gen_mot_data.py --src-data-path ./data/MOT17 --out-dir ./data/mot17_split
    python3 tools/datasets/mot17_packer.py --src-data-dir ./data/mot17_split/train \
        --target-data-dir ./data/mot17_lmdb --split-name train --pack-type lmdb   # and test
    python3 tools/train.py --stage float --config models/tracking/motr_efficientnetb3_mot17.py \
        --opts split_root=./data/mot17_split data_root=./data/mot17_lmdb

`split_root` is gen_mot_data's output (the metric reads <split_root>/test/<SEQ>/gt/gt.txt);
`data_root` holds <data_root>/{train,test}_lmdb. Every stage reads its weights from the previous one
under `work_dir`: float/best.pt -> calibration/last.pt -> qat/best.pt, which int_infer converts.
"""

from hbdk_sim.engine.recipes import quantization_stages

task_name = "motr_efficientnetb3_mot17"
split_root = "./data/mot17_split"  # tools/dataset_converters/gen_mot_data.py's output: {train,test}/<SEQ>/
data_root = "./data/mot17_lmdb"  # <data_root>/{train,test}_lmdb from tools/datasets/mot17_packer.py
work_dir = "./work/motr_efficientnetb3_mot17"
image_size = [800, 1422]  # H, W: the network input
seed = 0
march = "bpu"
num_workers = 4

# The network: a smaller one (e.g. for a CPU demo) changes these together.
backbone_type = "b3"
feature_stride = 32  # the backbone's last map, which the transformer reads (16: four times the positions)
d_model = 256
num_heads = 8
encoder_layers = 6
decoder_layers = 6
ffn_dim = 1024
num_queries = 256  # detect queries, and as many track slots
query_width = 128  # queries per row of the (4, query_width) query map: num_queries = 2 * query_width

# Training clips: lengths[k] frames from epoch length_epochs[k - 1] on, frames 1..clip_interval apart.
clip_lengths = [2, 3, 4, 5]
clip_length_epochs = [100, 180, 240]
quant_clip_length_epochs = [3, 5, 7]  # calibration and QAT
clip_interval = 10
batch_size = 1  # clips per process
multi_scale = True  # float training on the reference's random resizes and crops; False: image_size, flipped

float_epochs = 400
float_lr = 2e-4
slow_lr_factor = 0.1  # the backbone's and the sampling offsets' lr relative to float_lr
weight_decay = 1e-4
float_decay_epochs = [200]
float_validate_every = 10
grad_clip = 0.1
calibration_batches = 10
qat_epochs = 10
qat_lr = 1e-4
qat_decay_epochs = [5]

model = dict(
    type="Motr",
    network=dict(
        type="MotrNet",
        backbone=dict(type="EfficientNet", model_type=backbone_type, out_strides=[feature_stride]),
        backbone_channels=None,  # the backbone's width at feature_stride (B3: 384 at 32)
        feature_stride=feature_stride,
        transformer=dict(d_model=d_model, num_heads=num_heads, num_encoder_layers=encoder_layers,
                         num_decoder_layers=decoder_layers, ffn_dim=ffn_dim),
        num_queries=num_queries,
        query_width=query_width,
        deploy_image_size=image_size,
    ),
    qim=dict(num_heads=num_heads, ffn_dim=ffn_dim),
    criterion=dict(weight_ce=2.0, weight_bbox=5.0, weight_giou=2.0),
    random_drop=0.1,
    fp_ratio=0.3,
    score_thresh=0.7,  # a detect query at this score starts a track
    filter_score_thresh=0.6,  # a track below this score misses a frame
    miss_tolerance=5,  # misses before a track ends
    prob_threshold=0.7,  # the reported tracks' score
    area_threshold=100.0,  # and area in original pixels
)
deploy_input_shape = [1, 3] + image_size

# Camera images arrive as YUV444; the network sees (yuv - 128) / 128.
_to_input = [dict(type="ToTensor", to_yuv=True), dict(type="Normalize", mean=128.0, std=128.0)]
_short_sides = list(range(608, 993, 32))
_resize = dict(type="ResizeShortSide", short_sides=_short_sides, max_long=1536, divisor=2)
_multi_scale = [
    dict(type="RandomFlip", p=0.5),
    dict(type="RandomChoice", branches=[
        [_resize],
        [dict(type="ResizeShortSide", short_sides=[400, 500, 600]),
         dict(type="RandomSizeCrop", min_size=384, max_size=600), _resize],
    ]),
    *_to_input,
]
_fixed_size = [dict(type="RandomFlip", p=0.5), dict(type="Resize", size=image_size, keep_ratio=False), *_to_input]
train_transforms = _multi_scale if multi_scale else _fixed_size
val_transforms = [dict(type="Resize", size=image_size, keep_ratio=False), *_to_input]


def _clips(transforms, length_epochs, random_interval=True):
    return dict(type="ClipDataset", path=f"{data_root}/train_lmdb", transforms=transforms, lengths=clip_lengths,
                length_epochs=length_epochs, interval=clip_interval, random_interval=random_interval)


train_data_loader = dict(dataset=_clips(train_transforms, clip_length_epochs), batch_size=batch_size, shuffle=True,
                         num_workers=num_workers, drop_last=True, collate="clips")
# Calibration tracks each clip as a sequence of its own, as the board runs (the base graph on every
# frame, QIM on the tracks it keeps), on training frames through the validation transforms.
calibration_data_loader = dict(train_data_loader, dataset=_clips(val_transforms, quant_clip_length_epochs))
qat_data_loader = dict(train_data_loader, dataset=_clips(_fixed_size, quant_clip_length_epochs))
# Every test frame in order, one at a time: the tracks carry from frame to frame within a sequence.
val_data_loader = dict(
    dataset=dict(type="LmdbDataset", path=f"{data_root}/test_lmdb", transforms=val_transforms),
    batch_size=1, shuffle=False, num_workers=num_workers, collate="objects",
)
# results_dir (e.g. --opts metric.results_dir=./results): the tracks as MOTChallenge <SEQ>.txt files too
metric = dict(type="MotMetric", gt_dir=f"{split_root}/test", results_dir=None)

_slow = dict(lr=float_lr * slow_lr_factor)
_prepare = dict(graph_mode=True, input_shape=deploy_input_shape)
_stages = quantization_stages(
    work_dir=work_dir, monitor="MOTA", float_epochs=float_epochs, float_lr=float_lr,
    calibration_batches=calibration_batches, qat_epochs=qat_epochs, qat_lr=qat_lr,
    deploy_input_shape=deploy_input_shape, weight_decay=weight_decay, grad_clip=grad_clip,
    float_validate_every=float_validate_every,
    optimizer=dict(type="AdamW", param_groups={"backbone": _slow, "sampling_offsets": _slow}),
    qat_optimizer="AdamW",
    qat_lr_scheduler=dict(type="MultiStepLR", milestones=qat_decay_epochs, gamma=0.1, interval="epoch"),
    calibration_observer=dict(observer="mse"), qat_activation_scales="frozen", prepare=_prepare,
)
float_trainer = dict(_stages["float_trainer"],
                     lr_scheduler=dict(type="MultiStepLR", milestones=float_decay_epochs, gamma=0.1, interval="epoch"))
calibration_trainer = dict(_stages["calibration_trainer"], data_loader="calibration_data_loader")
qat_trainer = dict(_stages["qat_trainer"], data_loader="qat_data_loader")
float_predictor = _stages["float_predictor"]
calibration_predictor = _stages["calibration_predictor"]
qat_predictor = _stages["qat_predictor"]
int_infer_predictor = _stages["int_infer_predictor"]
