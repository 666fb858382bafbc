"""Rerun a training command after a failure or preemption, continuing from its checkpoint.

    python -m launch.supervise --max-restarts 3 -- mpiexec -n 4 python -m launch.train --config c.toml
    python -m launch.supervise --max-restarts 5 --min-ranks 2 -- mpiexec -n 4 python -m launch.train ...

The command runs as given; when it exits with a failure (a rank died, was killed, an
error) or with the preemption code 75, it is started again with ``--resume auto``
appended (and ``--overwrite`` removed), after a backoff that doubles each time, up to
``--max-restarts`` times. With ``--min-ranks M``, each relaunch after a failure (not
after a preemption) asks the launcher (``-n``/``-np``/``--ntasks``) for one rank fewer,
down to M: the run continues at the smaller world size with the same global batch.

Not restarted: exit 0 (done), exit 2 (a usage error: a restart would fail the same
way), and any exit after the supervisor itself received SIGTERM/SIGUSR1/SIGINT, which
it forwards to the command once per signal: the whole job is being stopped. The
supervisor exits with the command's last exit code.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time

EXIT_USAGE = 2
EXIT_PREEMPTED = 75  # lucid.train.preemption.EXIT_PREEMPTED (kept import-free: no MPI here)
RANK_OPTIONS = ("-n", "-np", "--np", "--n", "-c", "--ntasks")
MAX_BACKOFF = 300.0


def rank_option(cmd: list[str]) -> tuple[int, int] | None:
    """(index of the token holding the count, the count) of the launcher's rank option."""
    for i, tok in enumerate(cmd):
        name, eq, value = tok.partition("=")
        if name in RANK_OPTIONS:
            if eq:
                return (i, int(value)) if value.isdigit() else None
            if i + 1 < len(cmd) and cmd[i + 1].isdigit():
                return i + 1, int(cmd[i + 1])
            return None
    return None


def with_ranks(cmd: list[str], ranks: int) -> list[str]:
    """``cmd`` with the launcher's rank count replaced."""
    i, _ = rank_option(cmd)
    out = list(cmd)
    name, eq, _ = out[i].partition("=")
    out[i] = f"{name}={ranks}" if eq else str(ranks)
    return out


def resuming(cmd: list[str]) -> list[str]:
    """``cmd`` continuing its run: ``--overwrite`` dropped, ``--resume auto`` last (argparse keeps the last)."""
    return [t for t in cmd if t != "--overwrite"] + ["--resume", "auto"]


def describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code == EXIT_PREEMPTED:
        return "preempted (exit 75, checkpoint committed)"
    if code > 128 and code - 128 in signal.valid_signals():
        return f"exit {code} (signal {signal.Signals(code - 128).name})"
    if 0 < code < 65 and code in signal.valid_signals() and code != 1:
        return f"exit {code} (a rank died of {signal.Signals(code).name}, as MPICH reports it)"
    return f"exit {code}"


class Supervisor:
    """Runs ``cmd`` and restarts it by the rules of the module docstring."""

    def __init__(self, cmd: list[str], max_restarts: int, min_ranks: int | None, backoff: float, log=sys.stderr):
        self.cmd, self.max_restarts, self.min_ranks, self.backoff, self.log = cmd, max_restarts, min_ranks, backoff, log
        self.ranks = rank_option(cmd)[1] if min_ranks is not None else None
        self.signalled = False
        self.child: subprocess.Popen | None = None

    def say(self, text: str) -> None:
        print(f"[supervise {time.strftime('%Y-%m-%d %H:%M:%S')}] {text}", file=self.log, flush=True)

    def _forward(self, signum, frame) -> None:
        self.signalled = True
        if self.child is not None and self.child.poll() is None:
            self.say(f"{signal.Signals(signum).name} received: forwarded to the command; no restart after it ends")
            self.child.send_signal(signum)

    def run(self) -> int:
        for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            signal.signal(s, self._forward)
        cmd, restarts = self.cmd, 0
        while True:
            self.say(f"attempt {restarts + 1}: {shlex.join(cmd)}")
            # its own session: a terminal's Ctrl-C reaches the command once, through us
            self.child = subprocess.Popen(cmd, start_new_session=True)
            code = self.child.wait()
            if code == 0:
                self.say("the command finished (exit 0)")
                return 0
            reason = describe(code)
            if self.signalled:
                self.say(f"the command ended after a stop signal: {reason}; not restarting")
                return _exit_code(code)
            if code == EXIT_USAGE:
                self.say(f"{reason}: a usage error, which a restart would repeat; not restarting")
                return code
            if restarts >= self.max_restarts:
                self.say(f"{reason}; no restarts left (--max-restarts {self.max_restarts})")
                return _exit_code(code)
            restarts += 1
            cmd = resuming(self.cmd)
            if self.ranks is not None:
                if code != EXIT_PREEMPTED and self.ranks > self.min_ranks:
                    self.ranks -= 1
                cmd = with_ranks(cmd, self.ranks)
            delay = min(self.backoff * 2 ** (restarts - 1), MAX_BACKOFF)
            size = f" on {self.ranks} ranks" if self.ranks is not None else ""
            self.say(f"{reason}; restart {restarts} of {self.max_restarts}{size} in {delay:g} s with --resume auto")
            time.sleep(delay)


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code


def main(argv=None) -> int:
    from lucid.version import add_version

    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="python -m launch.supervise", description=__doc__.split("\n")[0],
                                usage="%(prog)s [options] -- COMMAND ...")
    add_version(p)
    p.add_argument("--max-restarts", type=int, default=3, help="relaunches after the first run (default 3)")
    p.add_argument("--min-ranks", type=int, help="allow each relaunch after a failure one rank fewer, down to this")
    p.add_argument("--backoff", type=float, default=10.0, help="seconds before the first relaunch, doubled each time (default 10)")
    args = p.parse_args(argv[:split])
    cmd = argv[split + 1 :]
    if not cmd:
        p.error("no command: give it after --, e.g. -- mpiexec -n 4 python -m launch.train --config c.toml")
    if args.max_restarts < 0 or args.backoff < 0:
        p.error("--max-restarts and --backoff must be >= 0")
    if args.min_ranks is not None:
        found = rank_option(cmd)
        if found is None:
            p.error(f"--min-ranks needs the launcher's rank count ({'/'.join(RANK_OPTIONS)} N) in the command")
        if not 1 <= args.min_ranks <= found[1]:
            p.error(f"--min-ranks {args.min_ranks} must be between 1 and the command's {found[1]} ranks")
    return Supervisor(cmd, args.max_restarts, args.min_ranks, args.backoff).run()


if __name__ == "__main__":
    sys.exit(main())
