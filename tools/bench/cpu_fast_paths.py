"""Which CPU tricks speed up VGG-16's forward pass here? Each candidate against torchvision's
default fp32 vgg16, same weights and input, interleaved repeats, one process.

    python tools/bench/cpu_fast_paths.py [--batch 8] [--repeats 3]

Candidates: channels_last; TorchScript freeze + optimize_for_inference (oneDNN weight
prepacking); torch.compile with Inductor's freezing; int8 static quantization (eager mode,
fbgemm and onednn engines, per-channel weights, calibrated on random inputs: a speed probe,
not an accuracy claim). bf16 is left out where the CPU has no native bf16 (emulated: slower).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import warnings

import torch
import torchvision
from torch import nn

from vggnet.bench.common import interleaved, machine, summary
from vggnet.bench.forward import rate


class QuantizedVGG(nn.Module):
    """torchvision's vgg16 with quantized convolutions (features) and float classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.features, self.avgpool, self.classifier = (
            model.features,
            model.avgpool,
            model.classifier,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dequant(self.features(self.quant(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def int8_model(model: nn.Module, engine: str) -> nn.Module:
    from torch.ao.quantization import convert, fuse_modules, get_default_qconfig, prepare

    torch.backends.quantized.engine = engine
    q = QuantizedVGG(copy.deepcopy(model)).eval()
    pairs = [[str(i), str(i + 1)] for i, m in enumerate(q.features) if isinstance(m, nn.Conv2d)]
    fuse_modules(q.features, pairs, inplace=True)
    q.qconfig = get_default_qconfig(engine)
    q.classifier.qconfig = None
    prepare(q, inplace=True)
    with torch.no_grad():
        q(torch.randn(4, 3, 224, 224))
    return convert(q, inplace=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    x = torch.randn(args.batch, 3, 224, 224)
    xc = x.contiguous(memory_format=torch.channels_last)
    candidates = {
        "channels_last": (copy.deepcopy(reference).to(memory_format=torch.channels_last), xc)
    }
    with torch.no_grad():
        scripted = torch.jit.freeze(torch.jit.script(copy.deepcopy(reference)))
        candidates["jit freeze + optimize_for_inference"] = (
            torch.jit.optimize_for_inference(scripted),
            x,
        )
    import torch._inductor.config as inductor

    inductor.freezing = True
    candidates["torch.compile (freezing)"] = (torch.compile(copy.deepcopy(reference)), x)
    for engine in ("fbgemm", "onednn"):
        candidates[f"int8 ({engine})"] = (int8_model(reference, engine), x)

    with torch.inference_mode():
        expected = reference(x)
    runs = {"torchvision fp32": lambda: rate(reference, x, 2)}
    for name, (model, inp) in candidates.items():
        with torch.inference_mode():
            diff = (model(inp) - expected).abs().max().item()  # also the warm-up / compilation
        print(f"{name}: max |logit difference| {diff:.2e}", flush=True)
        runs[name] = lambda model=model, inp=inp: rate(model, inp, 2)
    results = interleaved(runs, args.repeats)
    base = results["torchvision fp32"]
    print(f"forward vgg16 224x224 batch {args.batch} on {machine(torch.device('cpu'))}")
    for name, values in results.items():
        ratio = [a / b for a, b in zip(values, base, strict=True)]
        print(
            f"  {name:38s} images/s median {statistics.median(values):6.2f}  ratio {summary(ratio)}"
        )


if __name__ == "__main__":
    main()
