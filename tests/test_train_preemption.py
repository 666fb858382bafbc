"""Preemption under a real mpiexec -n 2: SIGTERM to the launcher or to one rank commits a
checkpoint at the step where the job stopped and exits 75, and --resume auto ends with the
uninterrupted run's metrics (float64); a second signal or a stuck rank exits without a new
checkpoint and without harming the previous one; time-based checkpoints agree across ranks."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from dist_scripts.mpirun import communicate, mpiexec
from test_train_resume import DEBUG, FLOAT64, ROOT, checkpoint_tensors, ckpt, losses, records, train

from lucid.distributed import checkpoint
from lucid.train.preemption import EXIT_PREEMPTED

FAULTS = os.path.join(ROOT, "tests", "train_scripts", "faults.py")


def start(out_dir, *extra, env=None) -> subprocess.Popen:
    """``mpiexec -n 2 python tests/train_scripts/faults.py`` on the float64 debug run, in the background."""
    full = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    cmd = [mpiexec(), "-n", "2", sys.executable, FAULTS, "--config", DEBUG, "--set", f'run.output_dir="{out_dir}"', *FLOAT64, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full, cwd=ROOT, start_new_session=True)


def wait_for_step(out_dir, step: int, proc, timeout: float = 90) -> None:
    path = os.path.join(out_dir, "debug", "metrics.jsonl")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        if os.path.exists(path):
            with open(path) as fh:
                if any(r["kind"] == "train" and r["step"] >= step for r in map(json.loads, fh)):
                    return
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def finish(proc, timeout: float = 90) -> tuple[int, str, str]:
    out, err = communicate(proc, timeout, "the training job")
    return proc.returncode, out, err


def committed_steps(out_dir) -> list[int]:
    return [int(p.rsplit("_", 1)[1]) for p in checkpoint.committed(os.path.join(out_dir, "debug", "checkpoints"))]


def assert_same_run(a, b, step: int) -> None:
    assert losses(a) == losses(b)  # float64, bit for bit
    fa, fb = checkpoint_tensors(ckpt(a, step)), checkpoint_tensors(ckpt(b, step))
    for name in fa:
        np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)
    assert records(a, "summary")[-1]["val_loss"] == records(b, "summary")[-1]["val_loss"]


def preempt_and_resume(tmp_path, target: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, "--set", "run.max_steps=8", "--set", "run.ckpt_interval=0")
    pids = tempfile.mkdtemp(dir=tmp_path)
    proc = start(b, "--set", "run.max_steps=8", "--set", "run.ckpt_interval=0",
                 env={"LUCID_TEST_STEP_SLEEP": "0.4", "LUCID_TEST_PID_DIR": pids})
    wait_for_step(b, 2, proc)
    if target == "launcher":
        os.kill(proc.pid, signal.SIGTERM)
    else:
        with open(os.path.join(pids, "rank1.pid")) as fh:
            os.kill(int(fh.read()), signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == EXIT_PREEMPTED, f"{rc}\n{out}\n{err}"
    (stop,) = records(b, "preempted")
    assert 2 <= stop["step"] < 8 and committed_steps(b) == [stop["step"]]
    assert stop["ranks_signalled"] == (2 if target == "launcher" else 1)
    assert f"checkpoint {ckpt(b, stop['step'])} committed at step {stop['step']}" in out
    assert max(losses(b)) == stop["step"]  # stopped at the next step boundary
    res = train(2, b, *FLOAT64, "--set", "run.max_steps=8", "--set", "run.ckpt_interval=0", "--resume", "auto")
    assert f"at step {stop['step']}" in res.stdout
    assert_same_run(a, b, 8)


def test_sigterm_to_mpiexec_commits_and_resume_is_exact(tmp_path):
    preempt_and_resume(tmp_path, "launcher")


def test_sigterm_to_one_rank_stops_every_rank(tmp_path):
    preempt_and_resume(tmp_path, "rank")


def test_stuck_rank_exits_after_grace_keeping_previous_checkpoint(tmp_path):
    proc = start(tmp_path, "--set", "run.max_steps=8", "--set", "run.preempt_grace_s=2",
                 env={"LUCID_TEST_STEP_SLEEP": "0.4", "LUCID_TEST_STALL_RANK": "1"})
    wait_for_step(tmp_path, 4, proc)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    rc, out, err = finish(proc, timeout=60)
    assert rc == 128 + signal.SIGTERM and time.monotonic() - t0 < 30, f"{rc}\n{err}"
    assert "no checkpoint committed within the grace period of 2 s" in err
    assert committed_steps(tmp_path) == [3]  # ckpt_interval 3: the previous one, intact
    checkpoint.load(ckpt(tmp_path, 3))


def test_second_signal_exits_at_once(tmp_path):
    proc = start(tmp_path, "--set", "run.max_steps=8", "--set", "run.preempt_grace_s=300",
                 env={"LUCID_TEST_STEP_SLEEP": "0.4", "LUCID_TEST_STALL_RANK": "1"})
    wait_for_step(tmp_path, 4, proc)
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(1.5)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    rc, out, err = finish(proc, timeout=60)
    assert rc == 128 + signal.SIGTERM and time.monotonic() - t0 < 20, f"{rc}\n{err}"
    assert "second stop signal (SIGTERM): exiting without a checkpoint" in err
    assert committed_steps(tmp_path) == [3]
    checkpoint.load(ckpt(tmp_path, 3))


def test_time_based_checkpoint_is_agreed_across_ranks(tmp_path):
    """Only rank 1's clock says a checkpoint is due (voted in step 5): both ranks save at step 5,
    between the step-interval ones (3, 6, and the final 8)."""
    proc = start(tmp_path, "--set", "run.max_steps=8", "--set", "run.ckpt_minutes=30", "--set", "run.keep_last=5",
                 env={"LUCID_TEST_CLOCK_JUMP": "1:4"})
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [r["step"] for r in records(tmp_path, "checkpoint")] == [3, 5, 6, 8]
    assert committed_steps(tmp_path) == [3, 5, 6, 8]


def test_stop_signals_each_signal_second_signal_and_grace(tmp_path):
    """SIGTERM, SIGUSR1 and SIGINT each set the request (SIGINT raises no KeyboardInterrupt); a
    second one, or the grace period running out, calls the exit with 128 + N."""
    script = tmp_path / "signals.py"
    script.write_text('''
import os, signal, time
from lucid.train.preemption import StopSignals

def wait(pred):
    end = time.monotonic() + 10
    while not pred() and time.monotonic() < end:
        time.sleep(0.01)

for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
    exits = []
    with StopSignals(grace=30, exit_fn=lambda m, c: exits.append(c)) as stop:
        os.kill(os.getpid(), s)
        wait(lambda: stop.requested)
        os.kill(os.getpid(), s)
        wait(lambda: exits)
        print(signal.Signals(stop.signum).name, exits)
    exits = []
    with StopSignals(grace=0.3, exit_fn=lambda m, c: exits.append((c, m))) as stop:
        os.kill(os.getpid(), s)
        wait(lambda: exits)
        print("grace", exits[0][0], "grace period of 0.3 s" in exits[0][1])
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
''')
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:6] == ["SIGTERM [143]", "grace 143 True", "SIGUSR1 [138]", "grace 138 True",
                                          "SIGINT [130]", "grace 130 True"]
