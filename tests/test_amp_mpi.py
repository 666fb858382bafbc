"""Mixed precision under a real ``mpiexec -n 2``: a float16 overflow on one rank alone
makes every rank skip the step and back the loss scale off; replicas stay identical."""
from dist_scripts.mpirun import run_ok


def test_one_rank_overflowing_skips_the_step_on_every_rank():
    res = run_ok("amp_overflow.py", 2, timeout=120)
    expected_taken = [True, True, False, True, False, False, True]
    for r in (0, 1):
        got = res[r]
        assert got["taken"] == expected_taken, (r, got)
        assert got["moved"] == expected_taken, (r, got)
        # growth after 2 clean steps, back-off at each overflow, the same on both ranks
        assert got["scales"] == [256.0, 512.0, 256.0, 256.0, 128.0, 64.0, 64.0], (r, got)
        assert set(got["params_dtype"]) == {"float32"} and got["buffers_finite"]
        # DDP dropped the gradients of every flagged step on every rank; the others are finite
        assert got["grads_present"] == expected_taken and got["grads_finite"] == expected_taken, (r, got)
    assert res[0]["checksums"] == res[1]["checksums"]  # identical replicas after every step
