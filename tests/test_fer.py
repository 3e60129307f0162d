"""Facial expressions: the face detector on a real photograph (the public-domain NASA astronaut
portrait, vendored as a crop in tests/data), a generated video of it moving and scaling, the
FER2013 path from a generated CSV to a cnn model file to `tinygrad-mlp fer`, and its errors."""

import os

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import fer, nn
from tinygrad_mlp.cli import main

cv2 = pytest.importorskip("cv2", reason="the video extra (OpenCV) is not installed")

PHOTO = os.path.join(os.path.dirname(__file__), "data", "astronaut_face.jpg")
# The face in the crop, marked by hand (x, y, w, h): hairline to chin, ear to ear.
FACE = (62, 60, 108, 122)


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def frames_of_the_astronaut(count=48, size=(640, 480)):
    """Frames with the photo moving across a gray background and growing from 0.8× to 1.3×,
    each with the face's true box."""
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


@pytest.fixture(scope="module")
def astronaut_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "astronaut.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (640, 480))
    truth = []
    for frame, box in frames_of_the_astronaut():
        writer.write(frame)
        truth.append(box)
    writer.release()
    return path, truth


def write_fer_csv(path, per_class=24, seed=0):
    """A FER2013-format CSV (emotion,pixels,Usage) whose 7 classes are learnable: class k is a
    bright horizontal bar at its own height on a noisy 48×48 image (left–right symmetric, so
    the flips of FER2013's augmentation keep the class)."""
    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for i in range(per_class * 7):
        k = i % 7
        image = rng.integers(0, 80, (48, 48))
        image[3 + 6 * k:7 + 6 * k, 8:40] += 150
        usage = "Training" if i < per_class * 5 else "PublicTest"
        lines.append(f"{k},{' '.join(map(str, image.ravel()))},{usage}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def fer_model(tmp_path_factory):
    """A cnn trained by `tinygrad-mlp train` on a generated FER2013 CSV, saved with save_model."""
    folder = tmp_path_factory.mktemp("fer")
    write_fer_csv(folder / "fer2013.csv")
    path = str(folder / "fer.npz")
    assert main(["train", "--data", f"fer2013:{folder / 'fer2013.csv'}", "--model", "cnn",
                 "--epochs", "6", "--save", path, "--quiet"]) == 0
    return path


# --- detection on a real photograph ---------------------------------------------------------------

def test_the_face_in_the_photo_is_found_once_and_on_the_face():
    boxes = fer.detect_faces(cv2.imread(PHOTO))
    assert len(boxes) == 1 and iou(boxes[0], FACE) > 0.5
    gray = cv2.cvtColor(cv2.imread(PHOTO), cv2.COLOR_BGR2GRAY)
    assert fer.detect_faces(gray) == boxes                       # grayscale in, same faces
    assert fer.detect_faces(np.full((200, 300, 3), 120, np.uint8)) == []


def test_overlapping_boxes_are_merged_into_one():
    merged = fer._merge_overlapping([(10, 10, 50, 50), (15, 12, 50, 50), (200, 200, 40, 40)])
    assert merged == [(10, 10, 55, 52), (200, 200, 40, 40)]


def test_faces_become_fer2013_pixels():
    face = fer.face_pixels(cv2.imread(PHOTO), FACE)
    assert face.shape == (48, 48) and face.dtype == np.float32
    assert 0 <= face.min() and face.max() <= 1 and face.std() > 0.05


def test_video_pipeline_finds_the_moving_face_in_every_frame(astronaut_video, tmp_path):
    path, truth = astronaut_video
    tm.manual_seed(0)
    model = nn.conv.cnn(48, 48, 7)
    out = str(tmp_path / "annotated.avi")
    result = fer.annotate_video(model, path, out, progress=False)
    assert result["frames"] == len(truth)
    assert result["frames_with_faces"] >= 0.95 * len(truth)
    for boxes, true_box in zip(result["boxes"], truth):
        assert all(iou(box, true_box) > 0.5 for box in boxes), (boxes, true_box)
    assert result["faces"] == sum(map(len, result["boxes"])) and result["fps"] > 0
    written = cv2.VideoCapture(out)
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == len(truth)
    ok, frame = written.read()
    assert ok and frame.shape == (480, 640, 3)
    assert [name for name in os.listdir(tmp_path)] == ["annotated.avi"]   # no temp file left


# --- the FER2013 path: a generated CSV → train --model cnn → fer on an image and a video ----------

def test_train_cnn_on_fer2013_csv_then_fer_on_image_and_video(fer_model, astronaut_video,
                                                              tmp_path, capsys):
    capsys.readouterr()
    out = str(tmp_path / "annotated.png")
    assert main(["fer", "--model", fer_model, "--image", PHOTO, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("face 1 at x=") and "wrote" in printed
    assert any(emotion in printed for emotion in fer.EMOTIONS)
    assert cv2.imread(out).shape == cv2.imread(PHOTO).shape
    video = str(tmp_path / "annotated.mp4")
    assert main(["fer", "--model", fer_model, "--video", astronaut_video[0], "--out", video,
                 "--quiet"]) == 0
    assert "48 frames" in capsys.readouterr().out
    assert int(cv2.VideoCapture(video).get(cv2.CAP_PROP_FRAME_COUNT)) == 48


def test_the_trained_fer_model_learned_the_generated_classes(fer_model, tmp_path):
    write_fer_csv(tmp_path / "test.csv", per_class=6, seed=1)
    X, y = tm.datasets.load_fer2013(tmp_path / "test.csv")
    model = tm.load_model(fer_model)
    model.eval()
    predicted = tm.predict(model, X.reshape(-1, 1, 48, 48).astype(np.float32) / 255).argmax(1)
    assert np.mean(predicted == y) >= 0.9


def test_classify_faces_takes_flat_models_and_logits():
    tm.manual_seed(0)
    flat = nn.Sequential(nn.Linear(2304, 7))                     # logits, (N, 2304) rows
    [(box, probabilities)] = fer.classify_faces(flat, cv2.imread(PHOTO))
    assert iou(box, FACE) > 0.5 and probabilities.shape == (7,)
    assert abs(probabilities.sum() - 1) < 1e-9 and probabilities.min() > 0


# --- errors: one clear line, exit 1 or 2, nothing written -----------------------------------------

def run(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def test_errors_are_one_line(fer_model, astronaut_video, tmp_path, capsys):
    tm.manual_seed(0)
    wrong = str(tmp_path / "wrong.npz")
    tm.save_model(nn.Sequential(nn.Linear(784, 7)), wrong)
    not_video = tmp_path / "not_a_video.avi"
    not_video.write_bytes(b"no frames here")
    cases = [
        ((["--camera", "7"]), 1, "cannot open camera 7"),
        ((["--video", str(not_video), "--out", str(tmp_path / "o.avi")]), 1,
         "cannot read video"),
        ((["--video", str(tmp_path / "missing.avi")]), 1, "not found"),
        ((["--image", str(not_video)]), 1, "cannot read image"),
        ((["--image", PHOTO, "--out", str(tmp_path / "no" / "such" / "o.png")]), 2,
         "does not exist"),
        ((["--video", astronaut_video[0], "--out", str(tmp_path / "o.mkv")]), 2,
         "use one of .avi, .mp4"),
    ]
    for argv, code, message in cases:
        got, err = run(capsys, "fer", "--model", fer_model, *argv)
        assert (got, err.count("\n")) == (code, 1) and message in err, (argv, err)
    got, err = run(capsys, "fer", "--model", wrong, "--image", PHOTO)
    assert got == 1 and "does not take 48×48 grayscale faces" in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["not_a_video.avi", "wrong.npz"]   # nothing written


def test_without_opencv_the_hint_works_from_a_checkout(monkeypatch, fer_model, capsys):
    import builtins
    real_import = builtins.__import__

    def no_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    code, err = run(capsys, "fer", "--model", fer_model, "--image", PHOTO)
    assert code == 1 and "pip install -e '.[video]'" in err and err.count("\n") == 1
