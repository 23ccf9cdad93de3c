"""Images/s of the training loader on Fashion-MNIST (S = 37, crop 32, batch 128, in-process).

Uses only the loader API that has not changed since the first release, so the same file
measures any checkout: PYTHONPATH=CHECKOUT/src python tools/bench/fashion_loader_rate.py
"""

import sys
import time

from vggnet.data import GlobalBatchSampler, TrainTransform, open_source, parse_scale, train_loader

BATCHES = 150
source = open_source(sys.argv[1] if len(sys.argv) > 1 else "fashion-mnist", "train")
sampler = GlobalBatchSampler(len(source), 128, 1, 0, 0)
sampler.set_epoch(0, 0, BATCHES)
loader = train_loader(source, TrainTransform(parse_scale("37", 32), 32, 0), sampler, 0)
start, images = time.perf_counter(), 0
for batch in loader:
    images += len(batch.labels)
print(f"{images / (time.perf_counter() - start):.0f}")
