"""W8 (vision inference) and W9 (vision training): the FER mini-Xception, tinygrad_mlp against
PyTorch and onnxruntime (on tm.export.to_onnx of the same model), one thread, same weights.

    python -m benchmarks.vision [--rounds 11] [--clock cpu] [--threads 1]

The network (Arriaga et al.'s mini-Xception for FER2013, 64×64×1 in, 7 classes): two 3×3 valid
convolutions with BatchNorm + ReLU (8 channels), then four residual blocks of 16, 32, 64, 128
channels — two separable convolutions (depthwise 3×3 + pointwise 1×1, "same") with BatchNorm,
a ReLU between, a 3×3 stride-2 "same" max pool, plus a 1×1 stride-2 convolution + BatchNorm
shortcut — then a 3×3 "same" convolution to 7 channels, global average pooling and softmax.
Built here from tm's layers as a Module subclass (tm.fer.pretrained(), when it lands, is the
same network with trained weights); its PyTorch twin is written out by hand with the weights
copied. W8 times a forward under no_grad in eval mode at batch 1 and 64; W9 one Adam step on
cross-entropy at batch 32 in train mode. Rounds are interleaved (each round runs every engine
once), times are per call; ratios are of minimums and of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds (default 11)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu",
                        help="cpu (default): process_time; wall: perf_counter")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--only", default="W8,W9", help="W8, W9 or both (default)")
    return parser.parse_args(argv)


def build_tm(seed: int = 0):
    """The mini-Xception from tm's layers, in float32, weights from tm.manual_seed(seed) and
    BatchNorm statistics made non-trivial."""
    import numpy as np

    import tinygrad_mlp as tm
    from tinygrad_mlp import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, padding="same",
                                                    bias=False), nn.BatchNorm2d(cout))
            self.body = nn.Sequential(
                nn.Conv2d(cin, cin, 3, padding="same", groups=cin, bias=False),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding="same", groups=cout, bias=False),
                nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout),
                nn.MaxPool2d(3, stride=2, padding="same"))

        def forward(self, X):
            return self.body(X) + self.shortcut(X)

    class MiniXception(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.Conv2d(8, 8, 3, bias=False),
                                      nn.BatchNorm2d(8), nn.ReLU())
            self.blocks = nn.Sequential(Block(8, 16), Block(16, 32), Block(32, 64),
                                        Block(64, 128))
            self.head = nn.Sequential(nn.Conv2d(128, 7, 3, padding="same"),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Softmax())

        def forward(self, X):
            return self.head(self.blocks(self.stem(X)))

    tm.manual_seed(seed)
    model = MiniXception()
    rng = np.random.default_rng(seed)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.data[...] = rng.normal(0, 0.1, buffer.shape)
        elif name.endswith("running_var"):
            buffer.data[...] = rng.uniform(0.5, 1.5, buffer.shape)
    return model


def build_torch(model):
    """PyTorch's twin of build_tm's network with the same parameters and buffers (float32)."""
    import torch
    import torch.nn.functional as F
    from torch import nn as tnn

    def conv(layer):
        twin = tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          stride=layer.stride, groups=layer.groups,
                          padding=layer.padding if layer.stride == (1, 1) else 0,
                          bias=layer.bias is not None)
        return twin

    class SamePool(tnn.Module):            # 3×3 stride 2 "same": TF's pads, then a plain pool
        def forward(self, x):
            H, W = x.shape[2:]
            pads = []
            for size in (W, H):
                total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
                pads += [total // 2, total - total // 2]
            return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)

    class Block(tnn.Module):
        def __init__(self, block):
            super().__init__()
            s, b = block.shortcut, block.body
            self.shortcut = tnn.Sequential(conv(s[0]), tnn.BatchNorm2d(s[1].num_features))
            self.body = tnn.Sequential(conv(b[0]), conv(b[1]), tnn.BatchNorm2d(b[2].num_features),
                                       tnn.ReLU(), conv(b[4]), conv(b[5]),
                                       tnn.BatchNorm2d(b[6].num_features), SamePool())

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    class Twin(tnn.Module):
        def __init__(self):
            super().__init__()
            st = model.stem
            self.stem = tnn.Sequential(conv(st[0]), tnn.BatchNorm2d(8), tnn.ReLU(), conv(st[3]),
                                       tnn.BatchNorm2d(8), tnn.ReLU())
            self.blocks = tnn.Sequential(*[Block(b) for b in model.blocks])
            self.head = tnn.Sequential(conv(model.head[0]), tnn.AdaptiveAvgPool2d(1),
                                       tnn.Flatten(), tnn.Softmax(dim=1))

        def forward(self, x):
            return self.head(self.blocks(self.stem(x)))

    twin = Twin()
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        for name, tensor in twin.state_dict().items():
            if name in state:
                tensor.copy_(torch.tensor(state[name].data).reshape(tensor.shape))
    return twin


def onnx_session(model, X, threads: int):
    """onnxruntime on tm.export.to_onnx(model), checked against the model, or None (said why)."""
    import tempfile

    import numpy as np

    import tinygrad_mlp as tm
    try:
        import onnxruntime
        with tempfile.TemporaryDirectory() as directory:
            path = f"{directory}/mini_xception.onnx"
            tm.export.to_onnx(model.eval(), path, input_shape=(1, 64, 64))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = threads
            session = onnxruntime.InferenceSession(path, options,
                                                   providers=["CPUExecutionProvider"])
    except Exception as error:                       # noqa: BLE001 (a benchmark goes on)
        print(f"onnxruntime: not run ({type(error).__name__}: {error})")
        return None
    with tm.no_grad():
        expected = model(X).data
    got = session.run(None, {session.get_inputs()[0].name: X})[0]
    print(f"guard: onnxruntime on to_onnx agrees within {np.abs(got - expected).max():.1e}")
    return session


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    import tinygrad_mlp as tm
    from tinygrad_mlp import nn

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    model = build_tm()
    twin = build_torch(model)
    rng = np.random.default_rng(1)
    faces = {n: rng.random((n, 1, 64, 64)).astype(np.float32) for n in (1, 32, 64)}
    labels = rng.integers(0, 7, 32)

    model.eval(), twin.eval()
    with tm.no_grad(), torch.no_grad():
        ours, theirs = model(faces[64]).data, twin(torch.tensor(faces[64])).numpy()
    print(f"guard: tm and torch agree within {np.abs(ours - theirs).max():.1e} (batch 64, eval)")

    session = onnx_session(model, faces[64], args.threads) if "W8" in args.only else None
    engines = {}
    if "W8" in args.only:
        for n in (1, 64):
            def tm_infer(n=n):
                with tm.no_grad():
                    model(faces[n])

            def torch_infer(n=n):
                with torch.no_grad():
                    twin(torch.from_numpy(faces[n]))
            engines[f"W8 batch {n}"] = {"tinygrad_mlp": tm_infer, "torch": torch_infer}
            if session is not None:
                engines[f"W8 batch {n}"]["onnxruntime"] = (
                    lambda n=n: session.run(None, {session.get_inputs()[0].name: faces[n]}))
    if "W9" in args.only:
        opt = tm.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        topt = torch.optim.Adam(twin.parameters(), lr=1e-3)

        def tm_step():
            model.train()
            opt.zero_grad()
            loss_fn(model(faces[32]), labels).backward()
            opt.step()

        def torch_step():
            twin.train()
            topt.zero_grad()
            out = twin(torch.from_numpy(faces[32]))
            torch.nn.functional.nll_loss(torch.log(out), torch.from_numpy(labels)).backward()
            topt.step()
        engines["W9 train step, batch 32"] = {"tinygrad_mlp": tm_step, "torch": torch_step}

    for workload, runs in engines.items():
        if workload.startswith("W8"):
            model.eval(), twin.eval()
        times = {name: [] for name in runs}
        for name, run in runs.items():
            run()                                          # warm-up
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = clock()
                run()
                times[name].append(clock() - start)
        print(f"\n{workload} ({args.rounds} interleaved rounds, {args.clock} clock, "
              f"{args.threads} thread(s))")
        base_min, base_median = min(times["torch"]), statistics.median(times["torch"])
        for name, values in times.items():
            low, median = min(values), statistics.median(values)
            print(f"  {name:13s} min {low * 1e3:8.2f} ms  median {median * 1e3:8.2f} ms  "
                  f"× torch: {low / base_min:.2f} (mins)  {median / base_median:.2f} (medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
