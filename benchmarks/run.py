"""Benchmark suite: tinygrad_mlp against hand-written numpy and the other frameworks, side by side.

    python -m benchmarks [--quick] [--threads N] [--repeat K] [--only W1,W3]
                         [--impl numpy,tinygrad,torch] [--markdown FILE] [--no-memory]
    python benchmarks/run.py ...           (the same, from the repository root)

All implementations run in ONE process. Each repetition runs every implementation once, in
round-robin order (rotated each repetition, so drift and cache effects hit all alike), after one
warm-up round; the table shows the median seconds, min–max, and the ratio to hand-written numpy.
Before timing, a correctness guard checks that every implementation gives numpy's loss after
one step from the same weights (a benchmark of different math is meaningless) and prints a
WARNING line if not. Peak memory for W1, W7, W8.64 and W9 is measured in one subprocess per
implementation. W8/W9 (benchmarks/vision.py) have no numpy version: guard and ratios are to
PyTorch.

BLAS threads: `--threads N` (default 1) sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS before numpy is first imported (this file reads argv before importing numpy;
`python -m benchmarks` does the same in __main__.py) and calls torch.set_num_threads(N). On 2
shared cores, extra BLAS threads turn ratios into noise. If numpy was already imported by the
caller (e.g. main() called from a test), the thread count already in force is reported instead.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":     # `python benchmarks/run.py`: find the package, then set threads
    _ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    from benchmarks.common import set_threads_from_argv
    set_threads_from_argv(sys.argv[1:])

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import scaling  # noqa: E402
from benchmarks.common import NotApplicable  # noqa: E402
from benchmarks.impl_numpy import BlasBoundRunner  # noqa: E402
from benchmarks.vision import VISION_KINDS, make_vision_data  # noqa: E402
from benchmarks.workloads import Workload, chain_input, flops, make_data, workloads  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (module holding the runner, runner class, the import that tells whether it is installed)
IMPLEMENTATIONS = {
    "numpy": ("benchmarks.impl_numpy", "NumpyRunner", "numpy"),
    "tinygrad_fit": ("benchmarks.impl_tinygrad", "TinygradFitRunner", "tinygrad_mlp"),
    "tinygrad_loop": ("benchmarks.impl_tinygrad", "TinygradRunner", "tinygrad_mlp"),
    "tinygrad_step": ("benchmarks.impl_tinygrad", "TinygradStepRunner", "tinygrad_mlp"),
    "torch": ("benchmarks.impl_frameworks", "TorchRunner", "torch"),
    "mygrad": ("benchmarks.impl_frameworks", "MygradRunner", "mygrad"),
    "autograd": ("benchmarks.impl_frameworks", "AutogradRunner", "autograd"),
    "sklearn": ("benchmarks.impl_frameworks", "SklearnRunner", "sklearn"),
    "jax": ("benchmarks.impl_frameworks", "JaxRunner", "jax"),
    "onnxruntime": ("benchmarks.vision", "OnnxVisionRunner", "onnxruntime"),
    "keras_jax": ("benchmarks.vision", "KerasJaxVisionRunner", "jax"),
}
BOUND = "BLAS bound"   # the matrix products alone, timed round-robin with the implementations
ALIASES = {"tinygrad": ("tinygrad_fit", "tinygrad_loop", "tinygrad_step"), "pytorch": ("torch",),
           "scikit-learn": ("sklearn",)}


# --- command line --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller N, 2 repetitions: a smoke run for CI (well under a minute)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (set before numpy is imported; default 1)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="minimum timed rounds per workload (default 5, quick 2); short "
                             "workloads get up to 4x that within a few seconds")
    parser.add_argument("--only", default="",
                        help="workloads to run, e.g. W1,W3 (W8: W8.1 and W8.64); S is the scaling "
                             "study (time per sample against batch size), V the face video's "
                             "fps; default all")
    parser.add_argument("--impl", default="",
                        help="implementations, e.g. numpy,tinygrad,torch (default all; "
                             f"names: {', '.join(IMPLEMENTATIONS)}; tinygrad means both)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as markdown")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results (machine, command, tables, raw times) as "
                             "JSON: the docs' benchmark page and the README's figure read it")
    parser.add_argument("--figure", metavar="PNG",
                        help="write the scaling study's log-log figure (needs matplotlib)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory runs (W1, W7, W8.64, W9)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall (default): perf_counter; cpu: process_time, steadier when "
                             "other jobs share the cores (fair only with 1 thread everywhere)")
    parser.add_argument("--memory-child", metavar="IMPL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be a positive integer, got {args.repeat}")
    return args


def select_workloads(only: str, quick: bool) -> tuple[list[Workload], list[Workload]]:
    """(the selected workloads W1–W7, the scaling study's workloads or [] when not selected)."""
    suite = workloads(quick)
    if not only:
        return list(suite.values()), scaling.workloads(quick)
    keys = [k.strip().upper() for k in only.split(",") if k.strip()]
    keys = [k for key in keys for k in ([s for s in suite if s.startswith(key + ".")] or [key])]
    unknown = [k for k in keys if k not in suite and k not in ("S", "V")]
    if unknown:
        raise SystemExit(f"--only: unknown workload(s) {', '.join(unknown)}; "
                         f"expected some of {', '.join(suite)}, S, V")
    return ([suite[k] for k in keys if k not in ("S", "V")],
            scaling.workloads(quick) if "S" in keys else [])


def select_impls(spec: str) -> list[str]:
    if not spec:
        return list(IMPLEMENTATIONS)
    names: list[str] = []
    for name in (n.strip().lower() for n in spec.split(",") if n.strip()):
        expanded = ALIASES.get(name, (name,))
        for n in expanded:
            if n not in IMPLEMENTATIONS:
                raise SystemExit(f"--impl: unknown implementation {name!r}; expected some of "
                                 f"{', '.join(list(IMPLEMENTATIONS) + list(ALIASES))}")
            if n not in names:
                names.append(n)
    if "numpy" not in names:   # every ratio is to numpy
        names.insert(0, "numpy")
    return names


def runner_class(name: str, wl: Workload | None = None) -> type | None:
    """The runner class (for workload `wl`'s kind when given), or None when its framework is not
    installed; NotApplicable when the implementation has no version of `wl`."""
    module_name, class_name, needs = IMPLEMENTATIONS[name]
    try:
        __import__(needs)
    except ImportError:
        return None
    if wl is not None and wl.kind in VISION_KINDS:     # W8/W9: benchmarks/vision.py's runners
        from benchmarks import vision
        if name not in vision.RUNNERS:
            raise NotApplicable
        return vision.RUNNERS[name]
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)


# --- machine -------------------------------------------------------------------------------------

def blas_threads() -> str:
    """BLAS threads actually in force (threadpoolctl when installed, else the env variable)."""
    try:
        from threadpoolctl import threadpool_info
        counts = {str(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"}
        if counts:
            return ",".join(sorted(counts))
    except Exception:   # threadpoolctl is optional and its probing may fail on odd BLAS builds
        pass
    return os.environ.get("OPENBLAS_NUM_THREADS", "default")


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu": f"{cpu}, {os.cpu_count()} logical cores", "python": platform.python_version(),
            "load": f"{load:.2f}",
            "numpy": np.__version__, "blas_threads": blas_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# --- measuring -----------------------------------------------------------------------------------

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_call(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> float:
    gc.collect()                      # untimed: no collection left over from the previous run
    start = clock()
    fn()
    return clock() - start


def prepare(wl: Workload) -> dict[str, Any]:
    if wl.kind == "chain":
        return {"x": chain_input()}
    if wl.kind == "digits":
        return {}
    if wl.kind in VISION_KINDS:
        return make_vision_data(wl)
    return make_data(wl)


def _error(error: Exception) -> str:
    return f"error: {type(error).__name__}: {error}".splitlines()[0][:120]


def correctness_guard(wl: Workload, runners: dict[str, Any],
                      status: dict[str, str] | None = None) -> list[str]:
    """WARNING lines for implementations whose one-step loss (or output) differs from the
    workload's base implementation's (numpy's; PyTorch's for W8/W9).

    An implementation that raises is dropped from `runners` with its error in `status`.
    """
    status = {} if status is None else status
    base = wl.base
    if base not in runners:
        return []
    try:
        expected = runners[base].check()
    except Exception as error:
        status[base] = _error(error)
        del runners[base]
        return [f"ERROR {wl.key} {base}: {status[base]} (no guard, no ratios)"]
    # float32 after one step; W6 compares held-out accuracies of two different training runs
    rtol, atol = {"digits": (0.0, 0.03), "vision_infer": (0.0, 1e-4),
                  "vision_train": (0.0, 1e-4)}.get(wl.kind, (2e-4, 1e-5))
    warnings_ = []
    for name, runner in list(runners.items()):
        if name == base:
            continue
        try:
            got = runner.check()
        except NotApplicable:
            continue
        except Exception as error:   # a broken implementation is reported, the run goes on
            status[name] = _error(error)
            del runners[name]
            warnings_.append(f"ERROR {wl.key} {name}: {status[name]}")
            continue
        got = np.asarray(got, dtype=np.float64)
        if got.shape != np.shape(expected) or not np.allclose(got, expected, rtol=rtol, atol=atol):
            worst = np.max(np.abs(got - expected)) if got.shape == np.shape(expected) else "shape"
            warnings_.append(f"WARNING {wl.key} {name}: result after one step differs from "
                             f"{'hand-written numpy' if base == 'numpy' else base}'s (max |diff| "
                             f"{worst}); its timing is of different math")
    return warnings_


def bench_workload(wl: Workload, impls: list[str], repeat: int, log: Callable[[str], None],
                   clock: Callable[[], float] = time.perf_counter,
                   budget: float = 3.0, bound: bool = True) -> dict[str, Any]:
    """Times of every implementation on one workload, measured round-robin.

    At least `repeat` timed rounds after the warm-up; a workload whose round is short gets
    more rounds (at most 4 × repeat) while they fit in `budget` seconds. `bound`: also time
    the BLAS bound where the workload has one.
    """
    data = prepare(wl)
    runners: dict[str, Any] = {}
    status: dict[str, str] = {}
    for name in impls:
        try:
            cls = runner_class(name, wl)
            if cls is None:
                status[name] = "not installed"
                continue
            runners[name] = cls(wl, data)
        except NotApplicable as reason:
            status[name] = str(reason) or "n/a"
        except Exception as error:
            status[name] = _error(error)
            log(f"ERROR {wl.key} {name}: {status[name]}")
    flagged = correctness_guard(wl, runners, status)
    for line in flagged:
        log(line)
    if not flagged and len(runners) > 1:
        what = {"digits": "held-out accuracy", "train": "one-step loss", "conv": "one-step loss",
                "vision_train": "first step's loss"}.get(wl.kind, "output")
        print(f"guard: {', '.join(n for n in runners if n != wl.base)} agree with {wl.base} "
              f"({what})", end=" ... ", flush=True)
    try:
        if bound:
            runners[BOUND] = BlasBoundRunner(wl, data)
    except NotApplicable:
        pass
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    rounds, rep = repeat, 0
    while rep <= rounds:                              # round 0 is the warm-up
        started = time.perf_counter()
        shift = rep % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            runner = runners[name]
            try:
                runner.reset()
                seconds = time_call(runner.run, clock)
            except NotApplicable as reason:
                status[name] = str(reason) or "n/a"
                continue
            except Exception as error:
                status[name] = _error(error)
                log(f"ERROR {wl.key} {name}: {status[name]}")
                names.remove(name)
                times[name] = []
                continue
            if rep > 0:
                times[name].append(seconds)
        if rep == 0:    # short workloads: more rounds (up to 4× --repeat) within the time budget
            per_round = time.perf_counter() - started
            rounds = max(repeat, min(4 * repeat, int(budget / max(per_round, 1e-9))))
        rep += 1
    return {"times": {n: t for n, t in times.items() if t}, "status": status, "rounds": rounds}


# --- peak memory (MEMORY_WORKLOADS, one subprocess per implementation) ---------------------------

def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(name: str, key: str, quick: bool) -> None:
    """Run workload `key` once with one implementation; print {"import": KiB, "peak": KiB}."""
    wl = workloads(quick)[key]
    try:
        cls = runner_class(name, wl)
    except NotApplicable as reason:
        print(json.dumps({"error": str(reason) or "n/a"}))
        return
    if cls is None:
        print(json.dumps({"error": "not installed"}))
        return
    __import__(IMPLEMENTATIONS[name][2])        # the framework's import cost counts
    imported = _vm_kib("VmRSS")
    try:
        runner = cls(wl, prepare(wl))
    except NotApplicable as reason:
        print(json.dumps({"error": str(reason) or "n/a"}))
        return
    runner.reset()
    runner.run()
    print(json.dumps({"import": imported, "peak": _vm_kib("VmHWM")}))


def measure_memory(impls: list[str], key: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Peak RSS of one fresh process per implementation running workload `key` once."""
    results = {}
    for name in impls:
        command = [sys.executable, "-m", "benchmarks.run", "--memory-child", f"{name}:{key}",
                   "--threads", os.environ.get("OPENBLAS_NUM_THREADS", "1")]
        if quick:
            command.append("--quick")
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT + os.pathsep +
                                   os.environ.get("PYTHONPATH", "")})
        try:
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            results[name] = {"error": f"failed: {tail}"}
    return results


# --- tables --------------------------------------------------------------------------------------

def _fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.2f} s"


def rows(wls: list[Workload], results: dict[str, Any], impls: list[str]) -> list[list[str]]:
    """Table rows: workload, implementation, median, min–max, ratio of medians to numpy's (the
    figure the issue's targets use), ratio of minimums (steadier under load), time per step.
    W8/W9 have no numpy version: their ratios are to PyTorch, as their workload cell says."""
    out = []
    for wl in wls:
        res = results[wl.key]
        base_times = res["times"].get(wl.base)        # numpy, or torch where numpy has none
        base = statistics.median(base_times) if base_times else None
        base_min = min(base_times) if base_times else None
        steps = steps_of(wl)
        for name in impls + ([BOUND] if BOUND in res["times"] else []):
            label = f"{wl.key} {wl.heading}" if not out or out[-1][0].split()[0] != wl.key else ""
            if name in res["times"]:
                t = res["times"][name]
                med = statistics.median(t)
                ratio = f"{med / base:.2f}×" if base else "–"
                ratio_min = f"{min(t) / base_min:.2f}×" if base_min else "–"
                per = _fmt_seconds(med / steps) if steps else ""
                if name == BOUND:
                    per = f"{flops(wl) / 1e9:.3g} GFLOP, {flops(wl) / med / 1e9:.3g} GFLOP/s"
                out.append([label or wl.key, name, _fmt_seconds(med),
                            f"{_fmt_seconds(min(t))} – {_fmt_seconds(max(t))}", ratio, ratio_min,
                            per])
            elif res["status"].get(name, "n/a") != "n/a":    # no row where a workload doesn't apply
                out.append([label or wl.key, name, res["status"][name], "", "", "", ""])
    return out


def steps_of(wl: Workload) -> int:
    if wl.kind in ("train", "conv"):
        return -(-wl.N // (wl.batch or wl.N)) * wl.epochs
    if wl.kind == "chain":
        return wl.n_ops
    if wl.kind in VISION_KINDS:
        return 1
    return 0


HEADER = ["workload", "implementation", "median", "min – max", "vs numpy", "mins vs numpy",
          "per step/op"]
MEM_HEADER = ["peak RSS", "vs numpy", "RSS after imports"]
BOUND_NOTE = ("BLAS bound: the workload's matrix products alone (same shapes, preallocated "
              "outputs), timed with the others; training FLOPs = 2·N·(2·D·M + 3·M·K) per epoch "
              "(forward 2·N·(D·M + M·K), backward twice that minus the input gradient 2·N·D·M), "
              "inference 2·N·(D·M + M·K).")
SCALING_NOTE = ("Scaling study: µs per sample of one SGD epoch, the minimum over the rounds, "
                "with its ratio to hand-written numpy's minimum.")
MEMORY_WORKLOADS = ("W1", "W7", "W8.64", "W9")   # peak memory: a fresh process per implementation


def memory_rows(mem: dict[str, dict[str, Any]], base_name: str = "numpy") -> list[list[str]]:
    base = mem.get(base_name, {}).get("peak")
    out = []
    for name, m in mem.items():
        if "error" in m:
            out.append([name, m["error"], "", ""])
        else:
            out.append([name, f"{m['peak'] / 1024:.0f} MiB",
                        f"{m['peak'] / base:.2f}×" if base else "–",
                        f"{m['import'] / 1024:.0f} MiB"])
    return out


def text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body])


def markdown_report(info: dict[str, str], command: str, wls: list[Workload], table: str,
                    memory: str | None, scaling_table: str | None, notes: list[str]) -> str:
    parts = [f"Machine: {info['cpu']}; Python {info['python']}, numpy {info['numpy']}, "
             f"BLAS threads {info['blas_threads']}, load average {info['load']} at start. "
             f"Date: {info['date']}.  ",
             f"Command: `{command}`"]
    if wls:
        parts += ["", "\n".join(f"- **{wl.key}** {wl.heading}: {wl.describe()}" for wl in wls),
                  "", table]
    if memory:
        parts += ["", memory]
    if scaling_table:
        parts += ["", scaling_table]
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"


def write_json(path: str, info: dict[str, str], command: str, clock: str, wls: list[Workload],
               results: dict[str, Any], body: list[list[str]], memory: list[str],
               scaling_text: str | None, notes: list[str]) -> None:
    """The run as JSON: what ran where, the tables as printed (markdown) and every raw time, so
    a report (docs/benchmarks.md, the README's headline) is generated from it, never pasted."""
    report = {"machine": info, "command": command, "clock": clock,
              "workloads": {wl.key: {"title": wl.heading, "what": wl.describe(),
                                     "rounds": results[wl.key]["rounds"],
                                     "times": results[wl.key]["times"],
                                     "status": results[wl.key]["status"]} for wl in wls},
              "table": {"header": HEADER, "rows": body}, "memory": memory,
              "scaling": scaling_text, "video": results.get("V"), "notes": notes}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
        f.write("\n")


# --- main ----------------------------------------------------------------------------------------

def run_video(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """V: the face pipeline's fps (benchmarks/video.py), or why it did not run."""
    from benchmarks import video
    try:
        import cv2  # noqa: F401
    except ImportError:
        return {"status": "not installed: opencv-python-headless (the video extra)"}
    try:
        result = video.measure(rounds=2 if args.quick else 7,
                               frames=8 if args.quick else video.FRAMES, clock=args.clock,
                               threads=args.threads)
    except Exception as error:
        log(f"ERROR V: {_error(error)}")
        return {"status": _error(error)}
    log(video.describe(result))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child.split(":"), quick=args.quick)
        return 0
    repeat = args.repeat or (2 if args.quick else 5)
    wls, scaling_wls = select_workloads(args.only, args.quick)
    impls = select_impls(args.impl)
    missing = [name for name in impls if runner_class(name) is None]
    impls = [name for name in impls if name not in missing]
    if "torch" in impls:
        import torch
        torch.set_num_threads(args.threads)
    info = machine()
    command = "python -m benchmarks " + " ".join(argv)
    print(f"{info['cpu']} | Python {info['python']} | numpy {info['numpy']} | "
          f"BLAS threads {info['blas_threads']} | load {info['load']} | {info['date']}")
    print(f"command: {command.strip()} | {repeat}+ repetitions after 1 warm-up, round-robin; "
          f"{args.clock} clock; median, min – max, ratio of medians to hand-written numpy")
    notes: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        notes.append(line)

    if missing:
        log(f"not installed: {', '.join(missing)}")
    if float(info["load"]) > 0.5 * (os.cpu_count() or 1):
        log(f"WARNING: load average {info['load']} before the run: other jobs share the cores, "
            f"so times are noisy (compare ratios, rerun when idle, or use --clock cpu)")

    results = {}
    for wl in wls:
        if wl.kind == "digits":
            from benchmarks.digits import config
            log("W6 settings (the CLI's defaults): " +
                ", ".join(f"{k} {v}" for k, v in config(wl).items()))
        print(f"{wl.key} {wl.heading}: {wl.describe()} ...", end=" ", flush=True)
        start = time.perf_counter()
        results[wl.key] = bench_workload(wl, impls, repeat, log, CLOCKS[args.clock],
                                         budget=1.0 if args.quick else 3.0)
        print(f"{results[wl.key]['rounds']} rounds, {time.perf_counter() - start:.1f} s",
              flush=True)
    scaling_impls = [name for name in scaling.IMPLS if name in impls]
    for wl in scaling_wls:
        print(f"scaling: {wl.title}, batch {wl.batch or 'full'}, {wl.describe()} ...", end=" ",
              flush=True)
        start = time.perf_counter()
        results[wl.key] = bench_workload(wl, scaling_impls, repeat, log, CLOCKS[args.clock],
                                         budget=0.5 if args.quick else 2.0, bound=False)
        print(f"{results[wl.key]['rounds']} rounds, {time.perf_counter() - start:.1f} s",
              flush=True)
    body = rows(wls, results, impls)
    if wls:
        print()
        print(text_table(HEADER, body))
        print(BOUND_NOTE)
    scaling_text = None
    if scaling_wls:
        header, scaling_body = scaling.table(scaling_wls, results, scaling_impls)
        print()
        print(text_table(header, scaling_body))
        print(SCALING_NOTE)
        scaling_text = markdown_table(header, scaling_body) + "\n\n" + SCALING_NOTE
        if args.figure:
            scaling.figure(scaling_wls, results, scaling_impls, args.figure,
                           f"{command.strip()} | {info['cpu']} | {info['date']}")
            print(f"figure written to {args.figure}")
    mem_tables = []
    for wl in wls if not args.no_memory else []:
        if wl.key not in MEMORY_WORKLOADS:
            continue
        mem = measure_memory([n for n in impls if n in results[wl.key]["times"]], wl.key,
                             args.quick)
        header = [f"{wl.key} implementation", MEM_HEADER[0], f"vs {wl.base}", MEM_HEADER[2]]
        print()
        print(text_table(header, memory_rows(mem, wl.base)))
        print(f"peak RSS (VmHWM) of a fresh process that imports the framework and runs "
              f"{wl.key} once")
        mem_tables.append(markdown_table(header, memory_rows(mem, wl.base)))
    mem_text = "\n\n".join(mem_tables) or None
    keys = {k.strip().upper() for k in args.only.split(",")}
    if not args.only or "V" in keys:
        results["V"] = run_video(args, log)
    if args.json:
        write_json(args.json, info, command.strip(), args.clock, wls, results, body,
                   mem_tables, scaling_text, notes)
        print(f"results written to {args.json}")
    if args.markdown:
        report = markdown_report(info, command.strip(), wls, markdown_table(HEADER, body),
                                 mem_text, scaling_text, notes)
        with open(args.markdown, "w") as f:
            f.write(report)
        print(f"markdown written to {args.markdown}")
    failed = [line for line in notes if line.startswith("ERROR")]
    if failed:
        print(f"{len(failed)} implementation error(s): see the ERROR lines above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
