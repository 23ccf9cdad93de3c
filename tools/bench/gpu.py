"""Every GPU measurement of a session, in one run (the device is scarce: run once, record).

    PYTHONPATH=src python tools/bench/gpu.py [--out DIR]        # on the GPU machine
    python tools/bench/gpu.py --smoke                          # the same code path on a CPU, tiny

Measures, with torchvision's vgg16 as the baseline in the same process:
1. forward images/s, D vs vgg16 at 224, batch 8 and 64: fp32, and bf16 + channels_last;
2. dense evaluation (class score maps) images/s at Q = 256, 384, 512;
3. the training input pipeline on generated ~500x375 JPEGs: JPEG bytes decoded and
   augmented on the GPU (nvJPEG) vs decoded on the CPU workers, images/s, and how far
   the GPU-decoded crops are from the CPU-decoded ones (max / mean |difference|);
4. peak GPU memory of each forward configuration;
5. the training step of D at 224, batch 256: torchvision fp32 vs ours fp32, bf16 +
   channels_last, and + torch.compile; images/s, ratio and model FLOPs utilisation.
Writes a JSON of all numbers to DIR/gpu.json and prints a readable log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from vggnet import to_dense
from vggnet.bench.common import machine
from vggnet.bench.pipeline import write_jpegs
from vggnet.bench.train_step import run as train_step_run
from vggnet.data import GlobalBatchSampler, TrainTransform, open_source, parse_scale, train_loader
from vggnet.data.gpu import DeviceDecoder, encoded_train_loader
from vggnet.interop.torchvision import import_torchvision


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn, images_per_call: int, iters: int, device: torch.device) -> float:
    """Images per second of ``fn`` over ``iters`` calls (after one warm-up call)."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return iters * images_per_call / (time.perf_counter() - start)


def forward_section(
    device, batches, iters, repeats, log, precisions=("fp32", "bf16")
) -> list[dict]:
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    ours = import_torchvision(reference.state_dict()).eval()
    rows = []
    for precision in precisions:
        fmt = torch.channels_last if precision == "bf16" else torch.contiguous_format
        ref = reference.to(device, memory_format=fmt)
        net = ours.to(device, memory_format=fmt)
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=fmt)
            autocast = (
                torch.autocast(device.type, dtype=torch.bfloat16)
                if precision == "bf16"
                else contextlib.nullcontext()
            )
            result = {"precision": precision, "channels_last": precision == "bf16", "batch": batch}
            for name, model in (("torchvision", ref), ("vggnet", net)):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)

                def step(model=model, x=x, autocast=autocast):
                    with torch.inference_mode(), autocast:
                        model(x)

                result[name] = [rate(step, batch, iters, device) for _ in range(repeats)]
                if device.type == "cuda":
                    result[f"{name}_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            result["ratio"] = statistics.median(result["vggnet"]) / statistics.median(
                result["torchvision"]
            )
            log(
                f"forward {precision:4s} batch {batch:3d}: torchvision "
                f"{statistics.median(result['torchvision']):8.1f} img/s, vggnet "
                f"{statistics.median(result['vggnet']):8.1f} img/s, ratio {result['ratio']:.3f}"
                + (
                    f", peak {result['vggnet_peak_mib']:.0f} MiB"
                    if "vggnet_peak_mib" in result
                    else ""
                )
            )
            rows.append(result)
    return rows


def dense_section(device, scales, batch, iters, log) -> list[dict]:
    torch.manual_seed(0)
    model = import_torchvision(torchvision.models.vgg16(weights=None).state_dict())
    dense = to_dense(model.to(device, memory_format=torch.channels_last))
    precision = "bf16" if device.type == "cuda" else "fp32"
    rows = []
    for q in scales:
        x = torch.randn(batch, 3, q, q, device=device).contiguous(memory_format=torch.channels_last)

        def step(x=x):
            autocast = (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if device.type == "cuda"
                else contextlib.nullcontext()
            )
            with torch.inference_mode(), autocast:
                dense(x)

        value = rate(step, batch, iters, device)
        rows.append({"q": q, "batch": batch, "images_per_s": value})
        log(f"dense {precision} channels_last Q={q} (square) batch {batch}: {value:8.1f} img/s")
    return rows


def pipeline_section(device, images, batch, workers, log) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_jpegs(root, images)
        log(f"wrote {images} JPEGs in {time.perf_counter() - start:.1f} s")
        source = open_source(str(root), "train")
        result = {}
        for scale in ("256", "256:512"):
            transform = TrainTransform(parse_scale(scale, 224), 224, seed=0)
            sampler = GlobalBatchSampler(len(source), batch, seed=0)
            cpu_loader = train_loader(source, transform, sampler, workers, pin_memory=True)
            gpu_loader = encoded_train_loader(source, transform, sampler, workers)
            decoder = DeviceDecoder(224, device)

            def run_cpu(cpu_loader=cpu_loader):
                n = 0
                for b in cpu_loader:
                    n += len(b.images.to(device, non_blocking=True))
                sync(device)
                return n

            def run_gpu(gpu_loader=gpu_loader, decoder=decoder):
                n = 0
                for b in gpu_loader:
                    n += len(decoder(b).images)
                sync(device)
                return n

            rates = {"cpu_decode": [], "gpu_decode": []}
            for name, fn in (("cpu_decode", run_cpu), ("gpu_decode", run_gpu)) * 2:
                t = time.perf_counter()
                n = fn()
                rates[name].append(n / (time.perf_counter() - t))
            sampler.set_epoch(0)
            cpu_batch = next(iter(cpu_loader))
            gpu_batch = decoder(next(iter(gpu_loader)))
            diff = (cpu_batch.images.to(device).int() - gpu_batch.images.int()).abs().float()
            result[scale] = {
                "images_per_s": rates,
                "max_abs_diff": diff.max().item(),
                "mean_abs_diff": diff.mean().item(),
            }
            log(
                f"pipeline S={scale}: CPU decode ({workers} workers) "
                f"{max(rates['cpu_decode']):7.1f} img/s, GPU decode "
                f"{max(rates['gpu_decode']):7.1f} img/s; GPU vs CPU pixels: max "
                f"{diff.max().item():.0f}, mean {diff.mean().item():.3f}"
            )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["forward", "dense", "pipeline", "train"],
        choices=["forward", "dense", "pipeline", "train"],
    )
    args = parser.parse_args()
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    log(f"tools/bench/gpu.py on {machine(device)}, torchvision {torchvision.__version__}")
    report = {"machine": machine(device)}
    small = args.smoke
    if "forward" in args.sections:
        if small:
            report["forward"] = forward_section(device, [2], 1, 1, log, ("fp32",))
        else:
            report["forward"] = forward_section(device, [8, 64], 10, 3, log)
    if "dense" in args.sections:
        scales, batch = ([256], 1) if small else ([256, 384, 512], 16)
        report["dense"] = dense_section(device, scales, batch, 1 if small else 10, log)
    if "pipeline" in args.sections:
        report["pipeline"] = pipeline_section(
            device, *((16, 8, 2) if small else (2048, 256, 12)), log
        )
    if "train" in args.sections:
        step_args = argparse.Namespace(
            device=str(device),
            size=32 if small else 224,
            width=0.25 if small else 1.0,
            batch=8 if small else 256,
            classes=1000,
            iters=2 if small else 5,
            warmup=1 if small else 3,
            repeats=2 if small else 3,
            variants=["fp32", "fp32-cl"] if small else ["fp32", "bf16-cl", "bf16-cl-compile"],
        )
        report["train"] = train_step_run(step_args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "gpu.json").write_text(json.dumps(report, indent=1))
    Path(args.out, "gpu.log").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
