"""lucid/_malloc.py: after `import lucid`, a freed large array's memory is reused without new page faults."""
import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, numpy as np
import lucid
n = 128 * 2**20 // 4                      # 128 MiB: far above glibc's largest mmap threshold
np.ones(n, np.float32)                    # allocate, touch, free
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(n, np.float32)                # the same size again
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(tuning: str) -> int:
    env = dict(os.environ, LUCID_MALLOC_TUNING=tuning)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_large_arrays_are_reused_without_page_faults():
    tuned, untouched = page_faults("1"), page_faults("0")
    assert tuned < 32, tuned  # reused heap memory: no new pages
    assert untouched >= 64, untouched  # fresh mmap: at least one fault per 2 MiB huge page
