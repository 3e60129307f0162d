"""Fine-tune the pretrained facial-expression model on your own faces.

    python examples/finetune_fer.py FOLDER [--epochs 5] [--lr 1e-4] [--out tuned.npz]

FOLDER holds one sub-folder per emotion, named as in tm.fer.EMOTIONS (Angry, Disgust, Fear,
Happy, Sad, Surprise, Neutral), with photos inside. Each photo's largest face is found and
cropped the way the pipeline crops it (64×64 grayscale in [0, 1]); photos without a face are
skipped. The pretrained mini-Xception (an imported Keras model) trains with `tm.fit` (Adam,
cross-entropy; BatchNorm's running statistics move with Keras's momentum), then is saved with
`tm.save_model`; `tinygrad-mlp fer --model tuned.npz --image photo.jpg` runs it.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import tinygrad_mlp as tm
from tinygrad_mlp import fer, nn, optim


def load_faces(folder: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(faces (N, 1, 64, 64) float32, labels (N,) indices into EMOTIONS, skipped files)."""
    faces, labels, skipped = [], [], []
    for label, emotion in enumerate(fer.EMOTIONS):
        directory = os.path.join(folder, emotion)
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            path = os.path.join(directory, name)
            try:
                image = fer.read_image(path)
            except (OSError, ValueError):                 # not an image fer reads
                skipped.append(path)
                continue
            boxes = fer.detect_faces(image)
            if not boxes:
                skipped.append(path)
                continue
            faces.append(fer.face_pixels(image, boxes[0], size=64)[None])
            labels.append(label)
    if not faces:
        raise SystemExit(f"no faces found under {folder!r} (expected sub-folders named "
                         f"{', '.join(fer.EMOTIONS)} holding photos)")
    return np.stack(faces), np.array(labels), skipped


def fine_tune(faces: np.ndarray, labels: np.ndarray, epochs: int = 5, lr: float = 1e-4,
              seed: int = 0) -> tuple[nn.Module, tm.History]:
    """The pretrained model after `epochs` passes of Adam over the faces (batches of 16)."""
    tm.manual_seed(seed)
    model = fer.pretrained()
    history = tm.fit(model, faces, labels, loss=nn.CrossEntropyLoss(),
                     optimizer=optim.Adam(model.parameters(), lr=lr), epochs=epochs,
                     batch_size=16, progress=False)
    return model.eval(), history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--out", default="fer_tuned.npz")
    args = parser.parse_args(argv)
    faces, labels, skipped = load_faces(args.folder)
    counts = ", ".join(f"{fer.EMOTIONS[k]} {n}"
                       for k, n in zip(*np.unique(labels, return_counts=True)))
    print(f"{len(faces)} faces ({counts})"
          + (f"; {len(skipped)} photos without a face skipped" if skipped else ""))
    before = tm.evaluate(fer.pretrained(), faces, labels, loss=nn.CrossEntropyLoss())
    model, history = fine_tune(faces, labels, args.epochs, args.lr)
    after = tm.evaluate(model, faces, labels, loss=nn.CrossEntropyLoss())
    print(f"loss {before['loss']:.4f} → {after['loss']:.4f}, accuracy "
          f"{before['accuracy']:.2f} → {after['accuracy']:.2f} (on the faces given)")
    tm.save_model(model, args.out)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
