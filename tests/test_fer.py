"""Facial expressions: the face detector on a real photograph (the public-domain NASA astronaut
portrait, vendored as a crop in tests/data), a generated video of it moving and scaling, the
FER2013 path from a generated CSV to a cnn model file to `tinygrad-mlp fer`, and its errors."""

import os
import sys

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import fer, nn
from tinygrad_mlp.cli import main

cv2 = pytest.importorskip("cv2", reason="the video extra (OpenCV) is not installed")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # plain `pytest`
# the photo (tests/data), its face's box and the generated video's frames: the benchmark's own
from benchmarks.video import FACE, PHOTO, frames_of_the_astronaut  # noqa: E402


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


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
    model = tm.models.cnn(48, 48, 7)
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
    assert printed.startswith(f"model: {fer_model}\nface 1 at x=") and "wrote" in printed
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


# --- hostile pictures and paths (issue 19, items 7–11, 23, 26) ------------------------------------

def png_declaring(width, height):
    """A small PNG whose header declares width×height gray pixels; its data holds one row."""
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(bytes(width + 1))) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, capsys, fer_model):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ValueError, match=r"30000×30000 = 900000000 pixels, more than "
                                         r"fer.MAX_PIXELS = 50000000"):
        fer.read_image(str(bomb))
    code, err = run(capsys, "fer", "--model", fer_model, "--image", str(bomb))
    assert code == 1 and "MAX_PIXELS" in err and err.count("\n") == 1


@pytest.mark.parametrize("encode", [".png", ".jpg", ".bmp", ".webp", ".ppm", ".gif"])
def test_image_size_reads_each_format_header(encode):
    image = np.random.default_rng(0).integers(0, 255, (37, 91, 3), dtype=np.uint8)
    ok, data = cv2.imencode(encode, image)
    assert ok and fer.image_size(data.tobytes()) == (91, 37)


def test_the_pixel_cap_is_the_boundary(tmp_path, monkeypatch):
    path = str(tmp_path / "small.png")
    cv2.imwrite(path, np.zeros((100, 100, 3), np.uint8))
    monkeypatch.setattr(fer, "MAX_PIXELS", 10_000)
    assert fer.read_image(path).shape == (100, 100, 3)
    monkeypatch.setattr(fer, "MAX_PIXELS", 9_999)
    with pytest.raises(ValueError, match="100×100 = 10000 pixels"):
        fer.read_image(path)


@pytest.mark.parametrize("shape", [(1, 1000, 3), (1000, 1, 3), (1, 1000), (2, 2000)])
def test_a_one_pixel_thin_image_has_no_faces_and_no_traceback(shape):
    image = np.full(shape, 90, np.uint8)
    assert fer.detect_faces(image) == []
    assert fer.classify_faces(nn.Sequential(nn.Linear(2304, 7)), image) == []


def plant_links(folder, name, victim):
    """Symlinks to `victim` at the temp names the old writer used (.STEM.PID.tmpEXT) and at the
    first name the new one draws when secrets.choice is made predictable."""
    stem, extension = os.path.splitext(name)
    links = [folder / f".{stem}.{os.getpid()}.tmp{extension}",
             folder / f".{name}.aaaaaaaa.tmp{extension}"]
    for link in links:
        link.symlink_to(victim)
    return links


def predictable_choice(monkeypatch):
    """secrets.choice gives 'a' eight times, then 'b' forever: the first temp name is known."""
    from tinygrad_mlp import _files
    drawn = iter("a" * 8)
    monkeypatch.setattr(_files.secrets, "choice", lambda alphabet: next(drawn, "b"))


def test_write_image_never_writes_through_a_planted_temp_name(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    links = plant_links(tmp_path, "out.png", victim)
    predictable_choice(monkeypatch)
    fer.write_image(str(tmp_path / "out.png"), np.zeros((8, 8, 3), np.uint8))
    assert victim.read_text() == "precious"
    assert cv2.imread(str(tmp_path / "out.png")).shape == (8, 8, 3)
    assert all(link.is_symlink() for link in links)
    os.umask(old := os.umask(0o022))
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~old


def test_annotate_video_never_writes_through_a_planted_temp_name(astronaut_video, tmp_path,
                                                                 monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    plant_links(tmp_path, "out.avi", victim)
    predictable_choice(monkeypatch)
    tm.manual_seed(0)
    result = fer.annotate_video(nn.Sequential(nn.Linear(2304, 7)), astronaut_video[0],
                                str(tmp_path / "out.avi"), progress=False, max_frames=3)
    assert victim.read_text() == "precious" and result["frames"] == 3
    assert int(cv2.VideoCapture(str(tmp_path / "out.avi")).get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_out_equal_to_the_input_is_refused(fer_model, astronaut_video, tmp_path, capsys):
    import shutil

    image, video = tmp_path / "photo.jpg", tmp_path / "clip.avi"
    shutil.copyfile(PHOTO, image)
    shutil.copyfile(astronaut_video[0], video)
    (tmp_path / "sub").mkdir()
    for option, source in (("--image", image), ("--video", video)):
        before = source.read_bytes()
        for out in (str(source), str(tmp_path / "sub" / ".." / source.name)):
            code, err = run(capsys, "fer", "--model", fer_model, option, str(source),
                            "--out", out, "--quiet")
            assert code == 2 and "is the input" in err and err.count("\n") == 1, err
        assert source.read_bytes() == before
    with pytest.raises(ValueError, match="is the input"):
        fer.annotate_video(nn.Sequential(nn.Linear(2304, 7)), str(video), str(video))


class ChangingSizeCapture:
    """A stand-in for cv2.VideoCapture whose frames alternate between 640×480 and 320×200, as
    a stream that changes resolution midway does."""

    def __init__(self, source):
        self.frames = [np.full((480, 640, 3) if i % 2 == 0 else (200, 320, 3), 40 + 10 * i,
                               np.uint8) for i in range(10)]

    def isOpened(self):
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480,
                cv2.CAP_PROP_FPS: 10.0, cv2.CAP_PROP_FRAME_COUNT: 10}.get(prop, 0)

    def release(self):
        pass


def test_frames_that_change_size_are_all_written(astronaut_video, tmp_path, monkeypatch):
    real_capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", ChangingSizeCapture)
    out = str(tmp_path / "out.avi")
    result = fer.annotate_video(nn.Sequential(nn.Linear(2304, 7)), astronaut_video[0], out,
                                progress=False)
    written = real_capture(out)
    count = 0
    while True:
        ok, frame = written.read()
        if not ok:
            break
        assert frame.shape == (480, 640, 3)
        count += 1
    assert result["frames"] == count == 10


def test_a_model_that_outputs_nan_is_an_error_not_a_result(tmp_path, capsys):
    model = nn.Sequential(nn.Linear(2304, 7))
    model[0].weight.data[...] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        fer.classify_faces(model, cv2.imread(PHOTO))
    path = str(tmp_path / "nan.npz")
    tm.save_model(model, path)
    code, err = run(capsys, "fer", "--model", path, "--image", PHOTO)
    assert code == 1 and "NaN or inf" in err and "nan" not in capsys.readouterr().out


def test_a_directory_given_as_a_file_is_called_a_directory(fer_model, tmp_path, capsys):
    folder = str(tmp_path)
    for argv in (["fer", "--model", fer_model, "--image", folder],
                 ["fer", "--model", fer_model, "--video", folder],
                 ["fer", "--model", folder, "--image", PHOTO],
                 ["train", "--data", f"fer2013:{folder}", "--quiet"]):
        code, err = run(capsys, *argv)
        assert code == 1 and "is a directory, not a file" in err and "not found" not in err, err


def test_the_crop_is_the_box_read_as_x_then_y():
    """A box far from the diagonal (x = 150, y = 20 on a 200×300 image): the crop is the
    reference crop gray[y:y + h, x:x + w], not its (y, x) twin."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box = (150, 20, 60, 40)
    x, y, w, h = box
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    reference = cv2.resize(gray[y:y + h, x:x + w], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(fer.face_pixels(image, box, margin=0),
                                  reference / np.float32(255))
