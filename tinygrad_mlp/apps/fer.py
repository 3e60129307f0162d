"""Facial expressions in images and video: faces found, cropped, classified, drawn.

    model = tm.fer.pretrained()                  # or tm.load_model("fer.npz") from `tinygrad-mlp
    image = cv2.imread("photo.jpg")              #   train --data fer2013:CSV --model cnn --save`
    for (x, y, w, h), probabilities in tm.fer.classify_faces(model, image):
        print(EMOTIONS[probabilities.argmax()])
    tm.fer.annotate_video(model, 0, "out.avi")   # camera 0 (or a video file) → annotated video

Faces come from OpenCV's bundled frontal-face Haar cascade; each box is widened by MARGIN
pixels on every side (as the fer project fed its model), cropped, turned into an S×S grayscale
image scaled to [0, 1] and classified by the model. S and the layout come from the model: its
`input_shape` ((1, 64, 64) for the pretrained one) or, for a plain Sequential, FER2013's 48×48
as (N, 1, 48, 48) images or (N, 2304) rows. Images are OpenCV's: uint8 (H, W, 3) in BGR order,
or (H, W) grayscale. Needs the `video` extra (opencv-python-headless ≥ 4.8, < 5: OpenCV 5
dropped the Haar cascades).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import time
from typing import Any

import numpy as np

from tinygrad_mlp._files import existing_file, replacing, write_atomically
from tinygrad_mlp.datasets import EMOTIONS
from tinygrad_mlp.nn.module import parameter_dtype
from tinygrad_mlp.tensor import Tensor, as_array, no_grad

__all__ = ["EMOTIONS", "FACE_SIZE", "MARGIN", "PRETRAINED", "pretrained", "detect_faces",
           "classify_faces", "annotate_video", "face_pixels", "input_shape", "draw",
           "read_image", "write_image", "opencv"]

FACE_SIZE = 48                        # FER2013's faces are 48×48 grayscale
MARGIN = 10                           # pixels added around a detected face (the fer project's)
PRETRAINED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained",
                          "fer_mini_xception.npz")
CODECS = {".avi": "MJPG", ".mp4": "mp4v"}   # what this OpenCV writes and reads back everywhere
# The largest image or video frame decoded: 50 megapixels (a 48 MP phone photo fits; decoded it
# takes 150 MB). A file's header is checked against it before any decoding, so a small file
# declaring a huge picture (a decompression bomb) is refused instead of filling memory.
MAX_PIXELS = 50_000_000
_cascade: list[Any] = []              # the loaded classifier (loading takes ~50 ms: once)


def pretrained() -> Any:
    """The FER2013 mini-Xception (Arriaga et al.) as trained and shipped by the fer project
    (Justin Shenk, MIT licence: tinygrad_mlp/pretrained/), converted with `tm.from_keras`
    behind a Rescaling(2, −1): an nn.Model taking (N, 1, 64, 64) grayscale pixels in [0, 1],
    giving probabilities over EMOTIONS. A fresh copy on each call, free to fine-tune."""
    from tinygrad_mlp.io import load_model
    return load_model(PRETRAINED)


def opencv() -> Any:
    """OpenCV, or an ImportError whose hint works from a source checkout."""
    try:
        import cv2
    except ImportError:
        raise ImportError("facial expression recognition needs OpenCV, an optional extra: "
                          "pip install -e '.[video]' (or pip install "
                          "'opencv-python-headless>=4.8,<5')") from None
    if not hasattr(cv2, "CascadeClassifier"):
        raise ImportError(f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 removed "
                          f"them): pip install 'opencv-python-headless>=4.8,<5'")
    return cv2


def _gray(image: Any) -> np.ndarray:
    cv2 = opencv()
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] not in (3, 4)) or min(image.shape[:2]) == 0:
        raise ValueError(f"fer: expected a uint8 image of shape (H, W), (H, W, 3) or (H, W, 4) "
                         f"(OpenCV's BGR), got {image.dtype} {image.shape}")
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)


def detect_faces(image: Any, scale_factor: float = 1.2, min_neighbors: int = 5,
                 min_size: int = 40, detect_width: int | None = 320) -> list[tuple[int, ...]]:
    """Boxes (x, y, w, h) of the frontal faces in `image`, in its pixels, largest first.

    The Haar cascade runs on a copy at most `detect_width` pixels wide (None: full size), which
    makes 640×480 video real time; `min_size` (in the image's pixels) skips smaller faces.
    `min_neighbors` is how many overlapping raw detections a face needs (fewer: more false
    faces). Boxes that still overlap (one face found twice) are merged into their union.
    """
    cv2 = opencv()
    gray = _gray(image)
    scale = 1.0
    if detect_width is not None and gray.shape[1] > detect_width:
        scale = detect_width / gray.shape[1]
        gray = cv2.resize(gray, (detect_width, max(1, round(gray.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    if not _cascade:
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise OSError(f"fer: OpenCV could not load its face detector {path!r}")
        _cascade.append(classifier)
    side = max(1, round(min_size * scale))
    found = _cascade[0].detectMultiScale(gray, scaleFactor=scale_factor,
                                         minNeighbors=min_neighbors, minSize=(side, side))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in np.reshape(found, (-1, 4))]
    return _merge_overlapping(boxes)


def _merge_overlapping(boxes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Union of boxes that overlap by more than a third of the smaller one, largest first."""
    merged: list[list[int]] = []
    for x, y, w, h in sorted(boxes, key=lambda b: -b[2] * b[3]):
        for box in merged:
            X, Y, W, H = box
            overlap = (max(0, min(x + w, X + W) - max(x, X)) *
                       max(0, min(y + h, Y + H) - max(y, Y)))
            if overlap > min(w * h, W * H) / 3:
                left, top = min(x, X), min(y, Y)
                box[:] = left, top, max(x + w, X + W) - left, max(y + h, Y + H) - top
                break
        else:
            merged.append([x, y, w, h])
    return [tuple(box) for box in merged]


def face_pixels(image: Any, box: tuple[int, ...], size: int = FACE_SIZE,
                margin: int = MARGIN) -> np.ndarray:
    """The face in `box`, widened by `margin` pixels on each side (clipped to the image), as
    size×size grayscale pixels, float32 in [0, 1]."""
    cv2 = opencv()
    gray = _gray(image)
    x, y, w, h = box
    x, y, w, h = x - margin, y - margin, w + 2 * margin, h + 2 * margin
    crop = gray[max(0, y):max(0, y + h), max(0, x):max(0, x + w)]
    if crop.size == 0:
        raise ValueError(f"fer: box {tuple(box)} lies outside the image of shape {gray.shape}")
    face = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return face.astype(np.float32) / np.float32(255)


def input_shape(model: Any) -> tuple[int, ...]:
    """The per-sample shape `model` takes faces in: its `input_shape` when it has one (an
    nn.Model: (1, S, S) images or (S·S,) rows), else FER2013's (1, 48, 48) or (2304,); a
    ValueError if it takes none of them or does not output one score per emotion."""
    declared = getattr(model, "input_shape", None)
    if declared is not None:
        shape = tuple(declared) if not isinstance(declared, list) else None
        if shape is None or not (len(shape) == 3 and shape[0] == 1 and shape[1] == shape[2] or
                                 len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]):
            raise ValueError(f"the model takes samples of shape {declared}; a face model takes "
                             f"one grayscale face: (1, S, S) images or (S·S,) rows")
        candidates = [shape]
    else:
        candidates = [(1, FACE_SIZE, FACE_SIZE), (FACE_SIZE * FACE_SIZE,)]
    tried = []
    with no_grad():
        for shape in candidates:
            try:
                out = model(Tensor(np.zeros((1, *shape), dtype=parameter_dtype(model))))
            except (ValueError, TypeError) as error:
                tried.append(f"{(1, *shape)}: {' '.join(str(error).split())}")
                continue
            if np.shape(as_array(out)) == (1, len(EMOTIONS)):
                return shape
            tried.append(f"{(1, *shape)} gave an output of shape {np.shape(out.data)}, not "
                         f"(1, {len(EMOTIONS)})")
    takes = (f"faces of its input_shape {declared}" if declared is not None else
             "48×48 grayscale faces, as (N, 1, 48, 48) images or (N, 2304) rows,")
    raise ValueError(f"the model does not take {takes} to {len(EMOTIONS)} emotions; tried "
                     f"{'; '.join(tried)}")


def face_side(shape: tuple[int, ...]) -> int:
    """S, the side of the faces a model of per-sample input `shape` takes."""
    return shape[-1] if len(shape) == 3 else math.isqrt(shape[0])


def classify_faces(model: Any, image: Any, faces: list[tuple[int, ...]] | None = None,
                   shape: tuple[int, ...] | None = None
                   ) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """[(box, probabilities over EMOTIONS)] for each face (`detect_faces(image)` unless given).

    The faces go through the model together in eval mode; outputs that are not probabilities
    (logits) are passed through a softmax. `shape`: the model's per-sample input shape, from
    `input_shape(model)` (pass it to skip that check when calling once per video frame).
    """
    gray = _gray(image)                   # once per frame: detection and every crop use it
    faces = detect_faces(gray) if faces is None else faces
    if not faces:
        return []
    shape = input_shape(model) if shape is None else shape
    side = face_side(shape)
    batch = np.stack([face_pixels(gray, box, side) for box in faces]).reshape(len(faces), *shape)
    if hasattr(model, "eval"):
        model.eval()
    with no_grad():
        out = model(Tensor(batch.astype(parameter_dtype(model))))
    scores = np.asarray(as_array(out), dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"fer: the model's output for {len(faces)} face(s) holds NaN or inf, so "
                         f"no emotion can be read from it (were its weights saved after "
                         f"training diverged?)")
    if not (np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1, atol=1e-3)):
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    return list(zip(faces, scores))


def draw(image: np.ndarray, results: list[tuple[tuple[int, ...], np.ndarray]]) -> np.ndarray:
    """`image` (BGR, changed in place and returned) with each face's box, top emotion and its
    probability."""
    cv2 = opencv()
    for (x, y, w, h), probabilities in results:
        best = int(np.argmax(probabilities))
        cv2.rectangle(image, (x, y), (x + w, y + h), (0, 255, 0), 2)
        label = f"{EMOTIONS[best]} {probabilities[best]:.2f}"
        cv2.putText(image, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 255, 0), 1, cv2.LINE_AA)
    return image


def check_output_path(path: str, kinds: tuple[str, ...], source: str | None = None) -> None:
    """Before any work: `path`'s folder exists, its extension is one OpenCV writes here, and it
    is not the input file `source` (which writing would replace)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder {folder!r} does not exist (for {path!r})")
    if os.path.isdir(path):
        raise IsADirectoryError(f"output {path!r} is a directory; give a file name")
    extension = os.path.splitext(path)[1].lower()
    if extension not in kinds:
        raise ValueError(f"output {path!r}: use one of {', '.join(kinds)}")
    if isinstance(source, (str, os.PathLike)) and os.path.exists(path) and \
            os.path.exists(source) and os.path.samefile(path, source):
        raise ValueError(f"output {path!r} is the input {source!r}: writing it would replace "
                         f"the input; give another file name")


def read_image(path: str) -> np.ndarray:
    """The image at `path` as OpenCV reads it (BGR uint8), or an error naming the file.

    Reads PNG, JPEG, BMP, GIF, WebP and PNM (PPM/PGM/PBM) files; the width and height in the
    file's header are checked against MAX_PIXELS before anything is decoded."""
    cv2 = opencv()
    existing_file(path, "image")
    with open(path, "rb") as file:
        data = file.read(4 * MAX_PIXELS + 2**20)    # more than any image under the cap needs
        if file.read(1):
            raise ValueError(f"image {path!r} is larger than the {4 * MAX_PIXELS + 2**20} bytes "
                             f"an image of at most {MAX_PIXELS} pixels (MAX_PIXELS) needs")
    size = image_size(data)
    if size is None:
        raise ValueError(f"cannot read image {path!r}: not a PNG, JPEG, BMP, GIF, WebP or PNM "
                         f"file (the formats whose size fer checks before decoding)")
    _check_pixels(size, f"image {path!r}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path!r} (not an image OpenCV can decode)")
    return image


def _check_pixels(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{what} is {width}×{height} = {width * height} pixels, more than "
                         f"fer.MAX_PIXELS = {MAX_PIXELS}; refused before decoding")


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header of a PNG, JPEG, BMP, GIF, WebP or PNM file's bytes;
    None when the bytes are none of these (or too short to say)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            if struct.unpack("<I", data[14:18])[0] == 12:               # OS/2 header
                return struct.unpack("<HH", data[18:22])
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)                              # height < 0: top-down
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:1] == b"P" and data[1:2] in b"123456":
            lines = data[2:1024].splitlines()                        # comments: # to line end
            width, height = b" ".join(line.split(b"#")[0] for line in lines).split()[:2]
            return int(width), int(height)
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":                       # lossy: 14-bit sizes after the frame tag
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":                       # lossless: 14 bits each, minus one
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":                       # extended: 24-bit canvas sizes, minus one
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in the first start-of-frame marker, walking the segments before it."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                     # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker in (0x01, *range(0xD0, 0xD9)):   # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def write_image(path: str, image: np.ndarray) -> None:
    """Write `image` to `path` (its extension picks the format) atomically, as `tm.save` does:
    a new temp file beside it, created exclusively, then renamed over `path`."""
    cv2 = opencv()
    extension = os.path.splitext(path)[1]
    try:
        ok, encoded = cv2.imencode(extension, image)
    except cv2.error:
        ok = False
    if not ok:
        raise OSError(f"OpenCV cannot write {path!r}")
    write_atomically(path, lambda file: file.write(encoded.tobytes()), "write_image")


def annotate_video(model: Any, source: int | str, out_path: str | None,
                   show: bool = False, progress: bool = True,
                   max_frames: int | None = None) -> dict[str, Any]:
    """Every frame of `source` (a camera index or a video file) with its faces boxed and
    labelled, written to `out_path` (.avi: MJPG, .mp4: mp4v; None: not written).

    Returns dict(frames=frames read, faces=faces found in all, fps=frames processed per second
    (detection, classification, drawing and writing), frames_with_faces=…, boxes=[the boxes
    of each frame]). The file appears only when the run ends (written to a new temp file beside
    it, then renamed, as `tm.save` does), so a failure leaves nothing half-written; a frame
    whose size differs from the first's is resized to it (every frame counted is written);
    `out_path` may not be the input file; a video whose frames exceed MAX_PIXELS is refused
    before decoding. A camera runs until `max_frames`, `q` in the window (`show=True`) or
    Ctrl-C. A tqdm bar counts a file's frames when `progress`.
    """
    from tqdm import tqdm

    cv2 = opencv()
    camera = isinstance(source, (int, np.integer)) and not isinstance(source, bool)
    if not camera:
        existing_file(source, "video")
    if out_path is not None:
        check_output_path(out_path, tuple(CODECS), None if camera else source)
    shape = input_shape(model)
    logging = cv2.utils.logging           # OpenCV's own warnings would repeat our one line
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        capture = cv2.VideoCapture(int(source) if camera else source)
    finally:
        logging.setLogLevel(level)
    what = f"camera {source}" if camera else f"video {source!r}"
    window = False
    try:
        if capture.isOpened():            # the container's frame size, before decoding one
            _check_pixels((int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                           int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))), what)
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            raise OSError(f"cannot open camera {source}" if camera else
                          f"cannot read video {source!r} (not a video OpenCV can decode)")
        _check_pixels((frame.shape[1], frame.shape[0]), what)
        if show:
            _open_window(cv2)
            window = True
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        with contextlib.ExitStack() as output:
            writer = None
            if out_path is not None:
                extension = os.path.splitext(out_path)[1].lower()
                temporary, _ = output.enter_context(replacing(out_path, "annotate_video",
                                                              extension))
                writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*CODECS[extension]),
                                         fps, (frame.shape[1], frame.shape[0]))
                output.callback(writer.release)   # before the file is renamed into place
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {out_path!r}")
            boxes, seconds = _annotate_frames(cv2, capture, frame, model, shape, writer, show,
                                              camera, max_frames,
                                              tqdm(total=None if camera else int(capture.get(
                                                  cv2.CAP_PROP_FRAME_COUNT)) or None,
                                                   unit="frame", desc="fer",
                                                   disable=not progress or camera))
    finally:
        capture.release()
        if window:
            cv2.destroyAllWindows()
    return dict(frames=len(boxes), faces=sum(map(len, boxes)),
                frames_with_faces=sum(1 for b in boxes if b),
                fps=len(boxes) / seconds if seconds > 0 else float("inf"), boxes=boxes)


def _annotate_frames(cv2: Any, capture: Any, frame: np.ndarray, model: Any,
                     shape: tuple[int, ...], writer: Any, show: bool, camera: bool,
                     max_frames: int | None, bar: Any
                     ) -> tuple[list[list[tuple[int, ...]]], float]:
    """annotate_video's loop: the boxes of each frame read and the seconds it took. A frame of
    another size than the first is resized to the writer's size (OpenCV's writer would drop
    it silently), so every frame counted is a frame written."""
    size = frame.shape[1], frame.shape[0]
    boxes: list[list[tuple[int, ...]]] = []
    started = time.perf_counter()
    ok = True
    try:
        while ok:
            results = classify_faces(model, frame, shape=shape)
            boxes.append([box for box, _ in results])
            draw(frame, results)
            if writer is not None:
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                writer.write(frame)
            bar.update(1)
            if show:
                cv2.imshow("tinygrad-mlp fer", frame)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            if max_frames is not None and len(boxes) >= max_frames:
                break
            ok, frame = capture.read()
    except KeyboardInterrupt:
        if not camera:
            raise
    finally:
        bar.close()
    return boxes, time.perf_counter() - started


def _open_window(cv2: Any) -> None:
    try:
        cv2.namedWindow("tinygrad-mlp fer")
    except cv2.error:
        raise OSError("--show needs a display and an OpenCV with GUI support (opencv-python, "
                      "not opencv-python-headless)") from None

