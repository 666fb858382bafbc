"""ClassificationMeter over uneven per-rank shards of one evaluation set."""
import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist

dist.init()
r, w = dist.rank(), dist.world_size()
rng = np.random.default_rng(1)
N, C = 23, 7
logits = rng.standard_normal((N, C))
labels = rng.integers(0, C, N)
losses = rng.random(N)
meter = dist.ClassificationMeter(topk=(1, 5))
rows = np.array_split(np.arange(N), [3, 4, 11, 20])  # 5 uneven pieces, one per "batch"
for i, piece in enumerate(rows):
    if i % w == r:  # batches dealt to ranks round-robin; some ranks get more samples
        meter.update(lucid.tensor(logits[piece]), lucid.tensor(labels[piece]), loss_sum=losses[piece].sum())
meter.update(np.zeros((0, C)), np.zeros(0, np.int64))  # an empty batch changes nothing
report(r, local_count=meter.sums["count"], **meter.compute())
