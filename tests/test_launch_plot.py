"""launch.plot: curves of several runs from metrics.jsonl into a PNG of the asked size; bad input."""
import json
import struct
import subprocess
import sys

import pytest

from launch.plot import main
from lucid.train.curves import load_run, plot_runs

pytest.importorskip("matplotlib")


def write_run(folder, losses, lrs, top1, steps_per_epoch=4):
    """A metrics.jsonl like launch.train's: a train record per step, an eval per epoch, other kinds between."""
    folder.mkdir(parents=True)
    rows = []
    for i, (loss, lr) in enumerate(zip(losses, lrs), 1):
        epoch = (i - 1) // steps_per_epoch
        rows.append({"kind": "train", "time": 1.0, "step": i, "epoch": epoch, "loss": loss, "lr": lr, "img_per_s": 5.0})
        if i % steps_per_epoch == 0:
            rows.append({"kind": "checkpoint", "time": 1.0, "step": i, "epoch": epoch, "path": "x"})
            rows.append({"kind": "eval", "time": 1.0, "step": i, "epoch": epoch, "count": 10,
                         "top1": top1[epoch], "top5": 99.0, "loss": loss})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(tmp_path / "a", [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.75, 0.7], [0.1] * 4 + [0.05] * 4, [60.0, 70.0])
    b = write_run(tmp_path / "b", [2.2, 1.9, 1.6, 1.4, 1.3, 1.2], [0.2, 0.15, 0.1, 0.05, 0.04, 0.03], [55.0, 58.0],
                  steps_per_epoch=3)
    return a, b


def test_two_runs_give_a_png_of_the_asked_size(two_runs, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main([str(two_runs[0]), str(two_runs[1]), "-o", str(out)]) == 0
    assert png_size(out) == (1500, 450)
    assert "a, b" in capsys.readouterr().out
    assert main([str(d) for d in two_runs] + ["-o", str(out), "--size", "900x600", "--x", "epoch"]) == 0
    assert png_size(out) == (900, 600)


def test_lines_hold_the_metrics(two_runs):
    runs = [load_run(str(d)) for d in two_runs]
    fig = plot_runs(runs, x="step")
    loss_ax, lr_ax, top1_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["a", "b"]
    assert list(loss_ax.lines[1].get_ydata()) == [2.2, 1.9, 1.6, 1.4, 1.3, 1.2]
    assert list(lr_ax.lines[0].get_xdata()) == list(range(1, 9))
    assert list(top1_ax.lines[0].get_xdata()) == [4, 8] and list(top1_ax.lines[0].get_ydata()) == [60.0, 70.0]
    by_epoch = plot_runs(runs, x="epoch")
    assert list(by_epoch.axes[2].lines[0].get_xdata()) == [1.0, 2.0]  # evaluated after epochs 1 and 2
    assert list(by_epoch.axes[0].lines[0].get_xdata())[:4] == [0.25, 0.5, 0.75, 1.0]
    assert list(by_epoch.axes[2].lines[1].get_xdata()) == [1.0, 2.0]  # run b: 3 steps per epoch


def test_bad_run_directories(tmp_path, two_runs, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(two_runs[0]), str(empty), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert f"{empty} has no metrics.jsonl" in err and not (tmp_path / "x.png").exists()
    assert main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.png")]) == 2
    assert "nowhere is not a directory" in capsys.readouterr().err
    evals_only = tmp_path / "evals"
    evals_only.mkdir()
    (evals_only / "metrics.jsonl").write_text('{"kind": "eval", "step": 1, "top1": 3.0}\n')
    assert main([str(evals_only), "-o", str(tmp_path / "x.png")]) == 2
    assert "has no train records" in capsys.readouterr().err
    one_epoch = write_run(tmp_path / "short", [2.0, 1.0], [0.1, 0.1], [50.0], steps_per_epoch=3)
    assert main([str(one_epoch), "-o", str(tmp_path / "x.png"), "--x", "epoch"]) == 2
    assert "--x epoch needs a run that finished its first epoch" in capsys.readouterr().err


def test_missing_matplotlib_is_a_clear_error(two_runs, tmp_path):
    code = "import sys; sys.modules['matplotlib'] = None; from launch.plot import main; sys.exit(main(sys.argv[1:]))"
    res = subprocess.run([sys.executable, "-c", code, str(two_runs[0]), "-o", str(tmp_path / "x.png")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "plotting needs matplotlib, which is not installed" in res.stderr
