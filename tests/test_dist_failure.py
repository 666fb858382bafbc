"""Failure semantics under a real mpiexec: no rank may wait forever."""
import pytest
from dist_scripts.mpirun import mpirun


@pytest.mark.parametrize(
    "mode, needle",
    [
        ("raise", "ValueError: injected failure on the last rank"),
        ("raise_ddp", "ValueError: injected failure before backward"),
        ("thread", "ZeroDivisionError: division by zero"),
    ],
)
def test_exception_on_one_rank_aborts_the_job(mode, needle):
    run = mpirun("failing_rank.py", 3, mode, timeout=30)
    assert run.returncode != 0
    assert run.seconds < 30
    lines = run.stderr.splitlines()
    assert any(line.startswith("[rank 2] ") and needle in line for line in lines), run.stderr
    assert "[rank 2] Traceback (most recent call last):" in run.stderr or "[rank 2] in thread loader:" in run.stderr
    assert "finished normally" not in run.stdout


@pytest.mark.parametrize(
    "mode, name", [("stall", "all_reduce(sum)"), ("stall_ddp", "DDP gradient all-reduce (bucket 1 of 1)")]
)
def test_watchdog_names_the_stuck_collective(mode, name):
    run = mpirun("failing_rank.py", 2, mode, timeout=30)
    assert run.returncode != 0
    assert run.seconds < 20  # timeout 2 s + checks every 0.5 s + launcher teardown
    assert f"[rank 0] watchdog: collective '{name}' has waited" in run.stderr, run.stderr


def test_sys_exit_on_one_rank_inside_abort_on_exit():
    run = mpirun("failing_rank.py", 2, "exit", timeout=30)
    assert run.returncode != 0 and run.seconds < 30
    assert "[rank 1] sys.exit(3) on this rank; aborting all ranks" in run.stderr, run.stderr
