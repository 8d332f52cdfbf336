"""Predict on image files with the board graphs of a stage and draw what the task model predicts.

    python3 tools/infer.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        --model-inputs img:street.png[,img:other.jpg] --save-path out/ [--stage int_infer] [--ckpt PATH] [--force]

Each image gets the config's validation preprocessing without the label transforms (for the
segmentation config: resize to image_size, YUV444, normalize); the task model's host side runs
its board graphs on it, and its `visualize` draws the prediction over the original image:
<save-path>/<stem>_<name>.png for each picture it draws (segmentation: `pred`, the class colours
blended over the image, and `color`, the colours alone). One model runs over the images in the
order given, so a tracker (MOTR) takes them as the frames of one sequence and draws each frame's
tracks with their ids (`tracks`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from hbdk_sim.engine.deploy import (
    first_of_batch,
    image_transforms,
    parse_model_inputs,
    prediction_paths,
    prepare_image,
    read_image,
    refuse_existing,
)
from hbdk_sim.engine.stages import STAGES, build_model, build_task_model, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.files import write_file
from hbdk_sim.visualize import png_bytes


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--model-inputs", required=True, metavar="img:PATH[,img:PATH2...]",
                        help="the images to predict on (PNG, JPEG, anything Pillow reads)")
    parser.add_argument("--save-path", required=True, metavar="DIR", help="where the pictures of the predictions go")
    parser.add_argument("--stage", default="int_infer", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    args = parser.parse_args()
    images = parse_model_inputs(args.model_inputs)
    save_dir = Path(args.save_path)
    cfg = load_config(args.config, args.opts)
    names = build_task_model(cfg).visual_names
    outputs = [prediction_paths(save_dir, image, names) for image in images]
    refuse_existing([p for paths in outputs for p in paths], args.force)
    pixels = [read_image(image) for image in images]  # every input is readable before the model is built
    transforms = image_transforms(cfg)
    model = build_model(cfg, args.stage, "predictor", args.ckpt).eval()
    runners = model.board_runners()
    save_dir.mkdir(parents=True, exist_ok=True)
    for image, rgb, paths in zip(images, pixels, outputs, strict=True):
        with torch.no_grad():
            prediction = first_of_batch(model.predict(prepare_image(rgb, transforms), runners))
        pictures = model.visualize(rgb, prediction)
        for name, path in zip(names, paths, strict=True):
            write_file(path, png_bytes(pictures[name]), overwrite=args.force)
        print(f"{image}: wrote {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    run_tool("infer", main)
