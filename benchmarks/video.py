"""V, real-time faces: frames per second of the face pipeline with the pretrained model.

    python -m benchmarks.video [--rounds 7] [--clock cpu] [--json FILE]
    python -m benchmarks --only V            (the same, inside the suite)

Each frame is 640×480 (the generated astronaut video the face tests use: the public-domain
photo in tests/data moving across a gray background and growing from 0.8× to 1.3×), held in
memory as a camera delivers it; a frame costs `fer.classify_faces` (grayscale, Haar detection,
crop, the pretrained mini-Xception) plus `fer.draw`. Rounds of all 48 frames after one
warm-up; fps from the median and the best round, and where a frame's time goes (detection vs
the rest), one BLAS thread (set --threads before numpy loads, as the suite does).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Iterator

if __name__ == "__main__":           # `python benchmarks/video.py`: find the package first
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.common import set_threads_from_argv
    set_threads_from_argv(sys.argv[1:])

import numpy as np  # noqa: E402

PHOTO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                     "data", "astronaut_face.jpg")
# The face in the crop, marked by hand (x, y, w, h): hairline to chin, ear to ear.
FACE = (62, 60, 108, 122)
SIZE = (640, 480)
FRAMES = 48


def frames_of_the_astronaut(count: int = FRAMES, size: tuple[int, int] = SIZE
                            ) -> Iterator[tuple[np.ndarray, tuple[int, ...]]]:
    """Frames with the photo moving across a gray background and growing from 0.8× to 1.3×,
    each with the face's true box."""
    import cv2
    photo = cv2.imread(PHOTO)
    for i in range(count):
        t = i / (count - 1)
        scale = 0.8 + 0.5 * t
        side = round(photo.shape[0] * scale)
        x, y = round(20 + t * (size[0] - side - 40)), round(10 + (1 - t) * (size[1] - side - 20))
        frame = np.full((size[1], size[0], 3), 120, np.uint8)
        frame[y:y + side, x:x + side] = cv2.resize(photo, (side, side))
        yield frame, tuple(round(v) for v in (x + FACE[0] * scale, y + FACE[1] * scale,
                                              FACE[2] * scale, FACE[3] * scale))


def measure(rounds: int = 7, frames: int = FRAMES, clock: str = "wall", threads: int = 1
            ) -> dict[str, Any]:
    """fps of the pipeline on `frames` generated frames: median and best of `rounds` rounds,
    and the median milliseconds per frame spent detecting and on everything else. OpenCV runs
    on `threads` threads (numpy's BLAS threads are set before numpy loads)."""
    import cv2

    from tinygrad_mlp import fer

    cv2.setNumThreads(threads)
    timer = time.process_time if clock == "cpu" else time.perf_counter
    model = fer.pretrained()
    shape = fer.input_shape(model)
    video = [frame for frame, _ in frames_of_the_astronaut(frames)]
    totals, detections = [], []
    for round_ in range(rounds + 1):                        # round 0 warms up
        total = detecting = 0.0
        for frame in video:
            image = frame.copy()
            started = timer()
            boxes = fer.detect_faces(image)
            found = timer()
            fer.draw(image, fer.classify_faces(model, image, faces=boxes, shape=shape))
            done = timer()
            total, detecting = total + done - started, detecting + found - started
        if round_:
            totals.append(total)
            detections.append(detecting)
    median = statistics.median(totals)
    return {"benchmark": "V", "title": "real-time faces, pretrained mini-Xception",
            "frame_size": list(SIZE), "frames": frames, "rounds": rounds, "clock": clock,
            "opencv_threads": threads,
            "fps_median": frames / median, "fps_best": frames / min(totals),
            "ms_per_frame": 1000 * median / frames,
            "ms_detect": 1000 * statistics.median(detections) / frames,
            "ms_classify_and_draw": 1000 * (median - statistics.median(detections)) / frames}


def describe(result: dict[str, Any]) -> str:
    return (f"V {result['title']}: {result['fps_median']:.1f} fps median, "
            f"{result['fps_best']:.1f} best ({result['ms_per_frame']:.1f} ms a frame: "
            f"{result['ms_detect']:.1f} detecting, {result['ms_classify_and_draw']:.1f} "
            f"cropping, classifying, drawing), {result['frame_size'][0]}×"
            f"{result['frame_size'][1]}, {result['frames']} frames × {result['rounds']} rounds, "
            f"{result['clock']} clock")


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m benchmarks.video",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.frames, args.clock, args.threads)
    print(describe(result))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
