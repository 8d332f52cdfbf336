"""Segment image files with the deploy network of a stage and draw the predicted classes in the
Cityscapes palette.

    python3 tools/infer.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        --model-inputs img:street.png[,img:other.jpg] --save-path out/ [--stage int_infer] [--ckpt PATH] [--force]

Each image gets the config's validation preprocessing without the label transforms (resize to
image_size, YUV444, normalize), the network's finest logits are resized to the original image and
arg-maxed, and <save-path>/<stem>_pred.png (the class colours blended over the image) and
<stem>_color.png (the colours alone) are written.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hbdk_sim.data import PALETTE
from hbdk_sim.engine.deploy import (
    first_output,
    image_transforms,
    parse_model_inputs,
    prediction_paths,
    prepare_image,
    read_image,
    refuse_existing,
    write_prediction,
)
from hbdk_sim.engine.stages import STAGES, deploy_model, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.nn.postprocess import seg_postprocess


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--model-inputs", required=True, metavar="img:PATH[,img:PATH2...]",
                        help="the images to segment (PNG, JPEG, anything Pillow reads)")
    parser.add_argument("--save-path", required=True, metavar="DIR", help="where the painted predictions go")
    parser.add_argument("--stage", default="int_infer", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    args = parser.parse_args()
    images = parse_model_inputs(args.model_inputs)
    save_dir = Path(args.save_path)
    outputs = [prediction_paths(save_dir, image) for image in images]
    refuse_existing([p for pair in outputs for p in pair], args.force)
    pixels = [read_image(image) for image in images]  # every input is readable before the model is built
    cfg = load_config(args.config, args.opts)
    transforms = image_transforms(cfg)
    model = deploy_model(cfg, args.stage, args.ckpt)
    save_dir.mkdir(parents=True, exist_ok=True)
    for image, rgb, (pred_path, color_path) in zip(images, pixels, outputs, strict=True):
        with torch.no_grad():
            logits = first_output(model(prepare_image(rgb, transforms)))
        class_ids = seg_postprocess(logits, rgb.shape[:2])[0].numpy()
        write_prediction(rgb, class_ids, pred_path, color_path, PALETTE, overwrite=args.force)
        print(f"{image}: wrote {pred_path} and {color_path}")
    return 0


if __name__ == "__main__":
    run_tool("infer", main)
