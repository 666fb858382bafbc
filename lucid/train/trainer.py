"""Trainer: the training loop of ``launch.train``, the same code for one process or N ranks.

Per optimizer step: ``grad_accum`` micro-batches (all but the last under ``no_sync``),
the bucketed all-reduce finished by ``ddp.finish()`` (False when any rank saw a
non-finite value: every rank skips the step), the optimizer step, then the per-step
learning-rate schedule. Checkpoints hold everything needed to continue exactly —
also at another world size, where the global batch is kept and split anew.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import time
from contextlib import nullcontext

import numpy as np

import lucid
import lucid.distributed as dist
import lucid.nn.functional as F
from lucid._backend import asnumpy
from lucid.data.device_prefetch import DevicePrefetcher
from lucid.distributed import checkpoint
from lucid.distributed.consistency import ReplicaCheck, check_same_settings
from lucid.nn.utils import clip_grad_norm_
from lucid.ops import device_asserts
from lucid.train import finetune, run_dir
from lucid.train.batch_mix import build_batch_mix
from lucid.train.best import BestTracker
from lucid.train.config import TrainConfig
from lucid.train.data_setup import build_data
from lucid.train.ema import ModelEma
from lucid.train.evaluation import evaluate_model
from lucid.train.logging import MetricsLog, Progress
from lucid.train.mixed_precision import build_amp
from lucid.train.model_setup import build_model
from lucid.train.optim_setup import build_optimizer, build_scheduler, scaled_lr
from lucid.train.preemption import Preempted, StepVotes, StopSignals
from lucid.train.skipped_images import SkippedImages


class Trainer:
    """One run: model, data, optimizer and schedule built from ``cfg`` on every rank.

    Args:
        cfg: the validated run config.
        resume: None (fresh start), "auto" (newest usable checkpoint of this run, if any)
            or the path of a checkpoint directory.
        stop: the process's active ``StopSignals``: on a stop signal every rank commits a
            checkpoint at the next step and ``fit`` raises ``Preempted``.
        overwrite: let a fresh ``fit`` move aside a previous run found in the run directory
            (otherwise it refuses, see ``lucid.train.run_dir``).
        command: the command line, recorded in the run directory's ``command.txt``.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        resume: str | None = None,
        stop: StopSignals | None = None,
        overwrite: bool = False,
        command: list[str] | None = None,
    ):
        self.resume, self.overwrite, self.command = resume, overwrite, command
        self.cfg = cfg
        dist.init()
        # same config and launch options on every rank, or the same error on every rank
        check_same_settings({"config": cfg.to_dict(), "launch": {"resume": resume}}, what="configs")
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = self.rank == 0
        self.device = dist.device(require_gpu=True) if cfg.run.device == "gpu" else "cpu"
        self.autocast, self.scaler = build_amp(cfg.run.amp, self.device)
        self.run_dir = os.path.join(cfg.run.output_dir, cfg.run.name)
        self.ckpt_dir = os.path.join(self.run_dir, "checkpoints")
        self.log = MetricsLog(self.run_dir, self.main, tensorboard=cfg.run.tensorboard)
        self.progress = Progress(self.main, cfg.run.progress)
        loaded = self._find_checkpoint(resume)
        self.resumed_from = loaded[0] if loaded is not None else None
        self.batch_size, self.global_batch = self._settle_batch(loaded)
        lucid.manual_seed(cfg.run.seed)
        self.model = build_model(cfg, self.device, self.world, on_pretrained=self._report_pretrained)
        self.data = build_data(cfg.data, cfg.model.num_classes, self.rank, self.world, cfg.run.seed, self.batch_size)
        self.ddp = dist.DistributedDataParallel(self.model, compression="fp16" if cfg.run.fp16_compression else None, votes=2)
        self.mix = build_batch_mix(cfg, self.batch_size, self.ddp.process_group)  # None: no mixup/CutMix
        self.replica_check = ReplicaCheck(self.model, cfg.run.replica_check_interval)
        self.votes = StepVotes(stop, cfg.run.ckpt_minutes)
        datasets = {"train": self.data.train_loader.dataset, "val": self.data.val_loader.dataset}
        self.skipped_images = SkippedImages(self.run_dir, self.main, datasets)
        self.stop = stop
        self.optimizer = build_optimizer(self.model, cfg.optim, self.global_batch)
        self.steps_per_epoch = len(self.data.train_loader) // cfg.run.grad_accum
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"run.grad_accum = {cfg.run.grad_accum} is more than the {len(self.data.train_loader)} batches of an epoch"
            )
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.steps_per_epoch, cfg.run.epochs)
        self.step = self.epoch = self.skipped = 0
        self.saved_step: int | None = None  # step of the last checkpoint this Trainer committed
        self.saved_path: str | None = None
        self.last_eval: dict | None = None
        self.ema = ModelEma(self.model, cfg.run.ema_decay, cfg.run.ema_warmup) if cfg.run.ema_decay else None
        self.best = BestTracker(cfg.run.keep_best)
        self._saved_marks: dict | None = None  # the manifest marks of the last checkpoint committed
        if loaded is not None:
            self._restore(*loaded)

    # -- set-up --------------------------------------------------------------------
    def _report_pretrained(self, load) -> None:
        """What ``model.pretrained`` loaded: on the console and as a ``pretrained`` record."""
        self.progress.write(finetune.describe_load(load))
        self.log.write("pretrained", **dataclasses.asdict(load))

    def _find_checkpoint(self, resume: str | None):
        """(path, state, rank_state) of the checkpoint to resume from, or None.

        "auto" starts fresh only when the run holds no checkpoint at all; a PATH may be a
        checkpoint or a folder of them (its newest usable one).
        """
        if resume is None:
            return None
        if resume == "auto":
            found = checkpoint.load_newest(self.ckpt_dir, map_location=self.device)
            if found is None:
                self.progress.write(f"no checkpoint under {self.ckpt_dir}: starting fresh")
                return None
        else:
            found = checkpoint.load_path(resume, map_location=self.device)
        path, (state, rank_state, _) = found
        return path, state, rank_state

    def _settle_batch(self, loaded) -> tuple[int, int]:
        """(per-rank batch, global batch) of this run: the config's, or the checkpoint's
        global batch split over this world size (so the maths of a step is unchanged).
        The config itself stays as it was read."""
        d, run = self.cfg.data, self.cfg.run
        global_batch = d.batch_size * self.world * run.grad_accum
        if loaded is None:
            return d.batch_size, global_batch
        saved = loaded[1]["global_batch"]
        if saved == global_batch:
            return d.batch_size, global_batch
        per_rank, rest = divmod(saved, self.world * run.grad_accum)
        if rest or per_rank < 1:
            raise ValueError(
                f"{loaded[0]} was trained with a global batch of {saved}, which {self.world} ranks x "
                f"grad_accum {run.grad_accum} cannot split evenly; choose a world size that divides it"
            )
        self.progress.write(
            f"resuming at world size {self.world}: data.batch_size {d.batch_size} -> {per_rank} per rank (global batch {saved})"
        )
        return per_rank, saved

    # -- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs (identical on every rank)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.data.train_loader.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "skipped_steps": self.skipped,
            "global_batch": self.global_batch,
            "config": self.cfg.to_dict(),
            "lucid_version": lucid.__version__,
            "best": self.best.state_dict(),
        } | ({"ema": self.ema.state_dict()} if self.ema else {}) | (
            {"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {})

    def save(self) -> str:
        path = checkpoint.save(
            self.ckpt_dir,
            self.step,
            self.state_dict(),
            rank_state={"rng": lucid.random.get_rng_state()},
            keep_last=self.cfg.run.keep_last,
            marks=self.best.marks(self.step),
        )
        self.saved_step, self.saved_path, self._saved_marks = self.step, path, self.best.marks(self.step)
        self.votes.checkpointed()
        self.log.write("checkpoint", step=self.step, epoch=self.epoch, path=path, best=bool(self._saved_marks))
        return path

    def _save_once(self) -> str:
        """``save()`` unless this step is already committed with the marks it deserves (the
        final checkpoint is written once; a step that became the best after its checkpoint
        is written again, marked)."""
        if self.saved_step != self.step or self._saved_marks != self.best.marks(self.step):
            self.save()
        return self.saved_path

    def _restore(self, path: str, state: dict, rank_state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise checkpoint.CheckpointError(f"{path} does not fit model {self.cfg.model.name!r}: {exc}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.data.train_loader.load_state_dict(state["sampler"])
        self.step, self.epoch, self.skipped = state["step"], state["epoch"], state["skipped_steps"]
        if "best" in state:
            self.best.load_state_dict(state["best"])
        if self.ema and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        elif self.ema:
            self.ema = ModelEma(self.model, self.cfg.run.ema_decay, self.cfg.run.ema_warmup)
            self.progress.write(f"{path} has no EMA weights: the EMA starts from its weights at step {self.step}")
        if self.data.train_sampler.epoch_done or self._epoch_step() >= self.steps_per_epoch:
            self.epoch += 1
        if self.scaler.is_enabled() and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        elif self.scaler.is_enabled():
            self.progress.write(f"{path} has no loss scale: run.amp starts from scale {self.scaler.get_scale():g}")
        if "rng" in rank_state:
            lucid.random.set_rng_state(rank_state["rng"])
        if os.path.dirname(os.path.abspath(path)) == os.path.abspath(self.ckpt_dir):
            self.saved_step, self.saved_path = self.step, path  # already committed in this run
        self.progress.write(f"resumed from {path} at step {self.step} (epoch {self.epoch + 1})")

    def _epoch_step(self) -> int:
        """Optimizer steps already taken in the current epoch (from the sampler's cursor)."""
        sampler = self.data.train_sampler
        if sampler.epoch != self.epoch:
            return 0
        return sampler.consumed // self.global_batch

    # -- the loop ------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to ``run.epochs`` (or ``run.max_steps``), evaluating and checkpointing on the way.

        Loader workers kept between epochs (``data.persistent_workers``) are stopped at the end."""
        try:
            return self._fit()
        finally:
            self.data.train_loader.close()
            self.data.val_loader.close()

    def _fit(self) -> dict:
        run = self.cfg.run
        self._start_run()
        start = time.perf_counter()
        first_step = self.step
        while self.epoch < run.epochs and not self._done():
            self.train_epoch()
            bad = self.skipped_images.collect("train")
            self.log.write("epoch", epoch=self.epoch, step=self.step, skipped_images=bad)
            if run.eval_interval and (self.epoch + 1) % run.eval_interval == 0:
                self.evaluate()  # before the epoch's checkpoint, which may then be marked best
            if (run.ckpt_interval == 0 and not self._done()) or self.best.marks(self.step):
                self._save_once()
            self.epoch += 1
        if self.last_eval is None or self.last_eval["step"] != self.step:
            self.evaluate()
        self._save_once()
        elapsed = time.perf_counter() - start
        ev = self.last_eval
        summary = {
            "steps": self.step,
            "epochs": self.epoch,
            "skipped_steps": self.skipped,
            "val_top1": ev["top1"],
            "val_top5": ev["top5"],
            "val_loss": ev["loss"],
            **({"val_ema_top1": ev["ema_top1"], "val_ema_top5": ev["ema_top5"]} if self.ema else {}),
            "seconds": round(elapsed, 1),
            "img_per_s": round((self.step - first_step) * self.global_batch / max(elapsed, 1e-9), 1),
            "skipped_images": self.skipped_images.total("train"),
            "unreadable_val_images": self.skipped_images.total("val"),
        }
        self.log.write("summary", **summary)
        bad = summary["skipped_images"] + summary["unreadable_val_images"]
        self.progress.write(
            f"done: {self.step} steps, val top-1 {ev['top1']:.2f}%  top-5 {ev['top5']:.2f}%  "
            f"loss {ev['loss']:.4f}  ({summary['seconds']} s, {summary['img_per_s']} img/s, "
            f"{self.skipped} skipped steps"
            + (f", {summary['skipped_images']} unreadable training images skipped, {summary['unreadable_val_images']} "
               f"validation images left out: see {self.skipped_images.path})" if bad else ")")
        )
        return summary

    def _start_run(self) -> None:
        """Claim the run directory, record config and command, log ``run_start`` and the banner."""
        moved = run_dir.claim(self.run_dir, self.ckpt_dir, self.resume is None, self.overwrite, self.main)
        if moved:
            self.progress.write(f"--overwrite: the previous run in {self.run_dir} was moved to {moved}")
        if self.main:
            run_dir.record_start(self.run_dir, self.cfg.to_toml(), self.command)
        cfg = self.cfg
        lr = scaled_lr(cfg.optim, self.global_batch)
        resume_step = self.step if self.resumed_from is not None else None
        self.log.write(
            "run_start", world_size=self.world, device=self.device, global_batch=self.global_batch,
            batch_per_rank=self.batch_size, grad_accum=cfg.run.grad_accum, lr=lr,
            resume_from=self.resumed_from, resume_step=resume_step, epoch=self.epoch, lucid_version=lucid.__version__,
        )
        start = f"resuming {self.resumed_from} at step {self.step}" if self.resumed_from else "fresh start"
        self.progress.write(
            f"run {cfg.run.name!r} in {self.run_dir}: {cfg.model.name} on {self.world} rank(s) x {self.device}, "
            f"global batch {self.global_batch} ({self.batch_size} per rank x {self.world} x grad_accum "
            f"{cfg.run.grad_accum}), lr {lr:.4g}, {start}"
        )

    def _done(self) -> bool:
        return bool(self.cfg.run.max_steps) and self.step >= self.cfg.run.max_steps

    def train_epoch(self) -> None:
        run = self.cfg.run
        loader = self.data.train_loader
        loader.set_epoch(self.epoch)
        self.skipped_images.begin("train")
        self.model.train()
        done = self._epoch_step()
        self.progress.start(self.epoch, run.epochs, self.steps_per_epoch, done)
        ids = loader.sampler.indices() if run.log_samples else None
        batches = iter(loader)
        if self.mix:  # mixed on the host, before any copy to the device; soft targets as labels
            batches = self.mix.stream(batches, self.step, run.grad_accum)
        batches = DevicePrefetcher(batches, self.device, self.data.normalize)  # the next batch copied during this step
        window = {"loss": 0.0, "count": 0, "time": time.perf_counter(), "steps": 0, "grad_norms": []}
        for step_in_epoch in range(done, self.steps_per_epoch):
            if self._done():
                break
            loss = self._train_step(batches, window["grad_norms"])
            if ids is not None:
                b = self.batch_size * run.grad_accum
                k = step_in_epoch - done
                self._log_samples(ids[k * b : (k + 1) * b])
            window["loss"] += loss
            window["count"] += 1
            window["steps"] += 1
            self.progress.step()
            if self.step % run.log_interval == 0 or step_in_epoch == self.steps_per_epoch - 1:
                self._log_window(window)
            if run.ckpt_interval and self.step % run.ckpt_interval == 0:
                self._save_once()
            self._step_boundary()
        self.progress.close()

    def _train_step(self, batches, grad_norms: list):
        """One optimizer step over grad_accum micro-batches; returns this rank's mean loss,
        left on the device (read when the window is logged: no host wait per step).

        With ``optim.clip_grad_norm`` the averaged gradients (the same on every rank) are
        clipped to that global norm and the norm before clipping goes to ``grad_norms``."""
        accum = self.cfg.run.grad_accum
        total = 0.0
        for k in range(accum):
            if k == accum - 1:  # the votes ride in the synchronised micro-batch's all-reduce
                self.ddp.reducer.votes[:] = self.votes.votes()
            images, labels = next(batches)
            images = images.to(self.device).to(self.cfg.run.dtype)
            labels = labels.to(self.device)
            with self.ddp.no_sync() if k < accum - 1 else nullcontext():
                with self.autocast():
                    logits = self.ddp(images)
                    smoothing = 0.0 if self.mix else self.cfg.optim.label_smoothing  # mixing: in the soft targets
                    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
                self.scaler.scale(loss / accum if accum > 1 else loss).backward()
            total = total + loss.data.astype("float64")  # stays on the device
        # every rank gets the same verdict: a NaN/Inf on any rank (all-reduce flag) or in the reduced gradients
        if self.scaler.unscale_(self.optimizer, found_inf=not self.ddp.finish()):
            if self.cfg.optim.clip_grad_norm:
                grad_norms.append(clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm).data)
            self.optimizer.step()
            if self.ema:
                self.ema.update(self.model, self.step + 1)
        else:
            device_asserts.raise_pending()  # a bad input found on the GPU: its error, not a skip
            self.skipped += 1
            self.log.write("skipped_step", step=self.step + 1, reason="non-finite loss or gradient on some rank")
            self.progress.write(f"step {self.step + 1}: non-finite loss or gradient on some rank; step skipped"
                                + (f" (amp loss scale {self.scaler.get_scale():g} -> "
                                   f"{self.scaler.get_scale() * self.scaler.get_backoff_factor():g})"
                                   if self.scaler.is_enabled() else ""))
        self.scaler.update()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.step += 1
        self.replica_check.maybe_check(self.step)
        return total / accum

    def _step_boundary(self) -> None:
        """Act on the votes every rank summed in this step: a time-based checkpoint, or the
        stop checkpoint followed by ``Preempted``."""
        stops, due = self.votes.decide(self.ddp.reducer.vote_totals)
        if not (stops or due):
            return
        self.progress.close()
        path = self._save_once()
        if not stops:
            return
        if self.stop is not None:
            self.stop.committed.set()
        mine = signal.Signals(self.stop.signum).name if self.stop is not None and self.stop.requested else "none"
        reason = f"stop signal on {stops} of {self.world} ranks (this rank: {mine})"
        self.log.write("preempted", step=self.step, epoch=self.epoch, path=path, ranks_signalled=stops)
        self.progress.write(f"{reason}: checkpoint {path} committed at step {self.step}; resume with --resume auto")
        raise Preempted(self.step, path, reason)

    def _log_window(self, window: dict) -> None:
        """Global mean loss over the last steps, lr and throughput; resets the window."""
        device_asserts.raise_pending()
        sums = dist.all_reduce(np.array([float(asnumpy(window["loss"])), window["count"]], dtype=np.float64))
        loss = sums[0] / max(sums[1], 1)
        elapsed = time.perf_counter() - window["time"]
        ips = window["steps"] * self.global_batch / max(elapsed, 1e-9)
        lr = self.optimizer.param_groups[0]["lr"]
        norms = [float(asnumpy(n)) for n in window["grad_norms"]]
        extra = {"grad_norm": sum(norms) / len(norms)} if norms else {}  # mean over the window's steps
        if self.scaler.is_enabled():
            extra["loss_scale"] = self.scaler.get_scale()
        self.log.write("train", step=self.step, epoch=self.epoch, loss=float(loss), lr=lr, img_per_s=round(ips, 2), **extra)
        self.progress.show(loss=f"{loss:.4f}", lr=f"{lr:.4g}", img_s=f"{ips:.1f}")
        window.update(loss=0.0, count=0, time=time.perf_counter(), steps=0, grad_norms=[])

    def _log_samples(self, ids) -> None:
        path = os.path.join(self.run_dir, f"samples-rank{self.rank}.jsonl")
        os.makedirs(self.run_dir, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(f'{{"step": {self.step}, "world": {self.world}, "ids": {[int(i) for i in ids]}}}\n')

    # -- evaluation ----------------------------------------------------------------
    def evaluate(self) -> dict:
        """Exact top-1/top-5 and mean loss over the whole validation set (every rank a share),
        of the raw weights and, with ``run.ema_decay``, of the EMA weights (``ema_*`` entries)."""
        stats = self._evaluate_model()
        k = stats["k"]
        self.last_eval = {"step": self.step, "top1": stats["top1"], "top5": stats["topk"], "loss": stats["loss"]}
        text = f"top-1 {stats['top1']:.2f}%  top-{k} {stats['topk']:.2f}%  loss {stats['loss']:.4f}"
        if self.ema:
            with self.ema.applied_to(self.model):
                ema = self._evaluate_model()
            self.last_eval.update(ema_top1=ema["top1"], ema_top5=ema["topk"], ema_loss=ema["loss"])
            text += f"; EMA top-1 {ema['top1']:.2f}%  top-{k} {ema['topk']:.2f}%  loss {ema['loss']:.4f}"
        new_best = self.best.observe(self.step, stats["top1"])
        record = {m: v for m, v in self.last_eval.items() if m != "step"}
        self.log.write("eval", step=self.step, epoch=self.epoch, count=stats["count"], skipped_images=stats["skipped_images"],
                       **record, best=new_best)
        self.progress.write(f"eval at step {self.step} (epoch {self.epoch + 1}): {text}  ({stats['count']} images)"
                            + ("  new best" if new_best else ""))
        return self.last_eval

    def _evaluate_model(self) -> dict:
        """``evaluate_model`` of ``self.model`` as it is now, with the unreadable images it met."""
        self.skipped_images.begin("val")
        with self.autocast():
            stats = evaluate_model(self.model, self.data.val_loader, self.device, self.cfg.run.dtype, self.cfg.model.num_classes,
                                   self.data.normalize)
        stats["skipped_images"] = self.skipped_images.collect("val")
        self.model.train()
        return stats
