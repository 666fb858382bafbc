"""lucid/_malloc.py: `import lucid` leaves malloc alone; `dist.init()` makes freed large arrays reusable."""
import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, numpy as np
import lucid
if sys.argv[1] != "import":
    import lucid.distributed as dist
    dist.init(malloc_tuning=sys.argv[1] == "init")
n = 128 * 2**20 // 4                      # 128 MiB: far above glibc's largest mmap threshold
np.ones(n, np.float32)                    # allocate, touch, free
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(n, np.float32)                # the same size again
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str, tuning: str = "1") -> int:
    env = dict(os.environ, LUCID_MALLOC_TUNING=tuning)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_init_tunes_malloc_and_import_does_not():
    assert page_faults("init") < 32  # reused heap memory: no new pages
    assert page_faults("import") >= 64  # import alone: fresh mmap, at least one fault per 2 MiB huge page
    assert page_faults("init-opt-out") >= 64  # init(malloc_tuning=False)
    assert page_faults("init", tuning="0") >= 64  # LUCID_MALLOC_TUNING=0
