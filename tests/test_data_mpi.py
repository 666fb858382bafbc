"""The loader under a real ``mpiexec``: MPI is initialised before its worker processes start."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from lucid.data import make_fake_image_folder

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from mpi4py import MPI  # MPI_Init happens here; worker processes re-import this module
    from lucid.data import DataLoader, DistributedSampler, ImageFolder, imagenet_train


    def main():
        comm = MPI.COMM_WORLD
        ds = ImageFolder(sys.argv[1], transform=imagenet_train(16))
        sampler = DistributedSampler(len(ds), comm.size, comm.rank, seed=1)
        seen = []
        for mode in ("process", "thread"):
            loader = DataLoader(ds, batch_size=3, sampler=sampler, num_workers=2, worker_mode=mode)
            seen.append([round(float(x.numpy().sum()), 3) for x, _ in loader])
        assert seen[0] == seen[1]
        everything = comm.gather((sampler.indices().tolist(), seen[0]), root=0)
        if comm.rank == 0:
            print(json.dumps(everything))


    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="needs mpiexec")
def test_process_workers_under_mpiexec(tmp_path):
    root = make_fake_image_folder(tmp_path / "tree", num_classes=2, per_class=5)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, str(script), str(root)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = json.loads(proc.stdout.strip().splitlines()[-1])
    indices = [i for rank_indices, _ in ranks for i in rank_indices]
    assert sorted(indices) == list(range(10))
    assert all(len(sums) == 2 for _, sums in ranks)  # 5 samples per rank, batches of 3
