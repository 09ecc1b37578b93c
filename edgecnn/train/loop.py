"""The training loop: data -> model (+ transfer learning) -> epochs -> checkpoints, logs, metrics.

Reproducible by construction: the model is built after ``torch.manual_seed(seed)``; every epoch
reseeds torch from ``(seed, epoch, rank)``, shuffles with a sampler seeded from ``(seed, epoch)``
and augments each sample from ``(seed, epoch, index)``; the learning rate is a function of the
step count. So a run resumed from the checkpoint of its last complete epoch takes exactly the
steps the uninterrupted run took, and reaches the same weights.

Learning-rate schedules (per step, after a linear warm-up of ``warmup_epochs``, at most half the run):
``cosine`` decays to 0; ``step`` multiplies by 0.1 at 50% and 75% of the run; ``none`` stays.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from edgecnn import __version__, hub, registry, threads
from edgecnn.contract import Preprocess
from edgecnn.errors import EdgeCNNError, UsageError
from edgecnn.fileio import atomic_path
from edgecnn.progress import Progress
from edgecnn.train import ddp, transfer
from edgecnn.train.checkpoint import (
    FORMAT,
    CheckpointError,
    is_checkpoint_dict,
    load_checkpoint,
    load_file,
    model_config,
    other_model,
    save_checkpoint,
    validate,
)
from edgecnn.train.config import (
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_WD,
    TrainConfig,
    default_out,
    resolve_device,
)
from edgecnn.train.datasets import Data
from edgecnn.train.task import BACKBONES, init_backbone, make_task
from edgecnn.weights import build_model, stored_config

CACHE_BYTES = 1 << 30  # preprocessed samples kept in memory (no --augment, no --workers) up to this size
# Testing hooks: the process SIGKILLs itself (a crash mid-epoch), or SIGINTs itself (Ctrl-C), after this
# many optimizer steps.
KILL_ENV = "EDGECNN_TRAIN_KILL_AFTER_STEPS"
INTERRUPT_ENV = "EDGECNN_TRAIN_INTERRUPT_AFTER_STEPS"


class TrainError(EdgeCNNError):
    """A run that cannot start or go on (nothing to resume, a diverging loss, a folder in use)."""


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based) of ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "step":
        return 0.1 ** ((step >= int(0.5 * total)) + (step >= int(0.75 * total)))
    return 1.0


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1)


def _print(msg: str) -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(f"Warning: {msg}", file=sys.stderr, flush=True)


def _quiet(msg: str) -> None:
    pass


def train(cfg: TrainConfig, echo: Callable[[str], None] = _print, warn: Callable[[str], None] = _warn,
          note_busy: bool = True) -> dict[str, Any] | None:
    """Run ``cfg``; returns the result (metrics, per-class table, paths) on rank 0, None on others.
    ``note_busy``: warn in one line when the machine is busy at start (the demo says it once itself)."""
    cfg.check()
    device = resolve_device(cfg.device)
    d = ddp.setup(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
    trainer = None
    try:
        plan = threads.resolve(cfg.threads, workers=cfg.workers, cores=max(1, threads.available_cores() // d.world))
        if device.type == "cpu":
            threads.check_fit(plan, cfg.workers)
        threads.apply_torch(plan.n)
        trainer = Trainer(cfg, device, d, echo if d.main else _quiet, warn if d.main else _quiet)
        if note_busy and d.main and plan.note():  # after the checks: an error stays the only line
            warn(plan.note())
        result = trainer.fit()
        return result if d.main else None
    except KeyboardInterrupt:
        raise Interrupted(trainer, cfg.resume) from None
    finally:
        ddp.cleanup(d)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``train``: ``message`` says what the run folder holds, and whether ``--resume`` can
    continue it (only when an epoch of this run, or of the run it resumed, was saved)."""

    def __init__(self, trainer: Trainer | None, resume: bool):
        saved = trainer.saved_epoch if trainer is not None else 0
        if saved:
            self.message = (f"Interrupted: {trainer.cfg.out} keeps its last complete epoch ({saved} of "
                            f"{trainer.cfg.epochs}); continue with --resume")
        elif trainer is None and resume:  # stopped while setting up the resumed run: nothing changed
            self.message = "Interrupted before training resumed: the run folder is as it was; continue with --resume"
        else:
            earlier = trainer is not None and (Path(trainer.cfg.out) / "last.pt").exists()
            self.message = ("Interrupted before the first epoch finished: nothing to resume"
                            + (f" ({trainer.cfg.out} still holds the earlier run)" if earlier else "")
                            + "; run the command again")
        super().__init__(self.message)


class Trainer:
    def __init__(self, cfg: TrainConfig, device: torch.device, d: ddp.Dist, echo: Callable[[str], None],
                 warn: Callable[[str], None]):
        self.device, self.dist, self.echo, self.warn = device, d, echo, warn
        self.cfg, resume = self._resolve_run(cfg)
        cfg = self.cfg
        self.task = make_task(_task_kind(cfg.model, resume), cfg)  # classification or detection
        if cfg.batch_size is None:
            self.cfg = cfg = dataclasses.replace(cfg, batch_size=DEFAULT_BATCH[self.task.kind])
        self.data = self.task.open_data(cfg)
        self._report_data(self.data)
        torch.manual_seed(cfg.seed)
        self.model, self.name, self.spec = self._build_model(resume)
        if resume is None:
            for line in self.task.advise(self.model, self.data, self.spec, self.name):
                self.warn(line)
        self.frozen = transfer.freeze(self.model, cfg.freeze)
        self.model.to(device)
        self.lr = cfg.lr or DEFAULT_LR[cfg.optimizer]
        wd = DEFAULT_WD[cfg.optimizer] if cfg.weight_decay is None else cfg.weight_decay
        groups = transfer.param_groups(self.model, self.lr, wd, cfg.layer_lr_decay)
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=self.lr, momentum=cfg.momentum)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=self.lr)
        self.ddp_model = ddp.wrap(self.task.train_module(self.model), d, device)
        self._make_loaders()
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup = min(round(cfg.warmup_epochs * self.steps_per_epoch), self.total_steps // 2)
        self.epoch, self.step, self.history = 0, 0, []
        self.saved_epoch = 0  # the epoch last.pt holds for this run (0: none yet)
        self.best = (-1.0, 0)  # (val metric: top-1 or mAP@.50, epoch)
        self._describe(wd)
        if resume is not None:
            self._restore(resume)

    # ------------------------------------------------------------------------------------ setting up

    def _resolve_run(self, cfg: TrainConfig) -> tuple[TrainConfig, dict | None]:
        name = cfg.model if cfg.model in registry.REGISTRY else None
        if name is None and not Path(cfg.model).exists():
            registry.get_card(cfg.model)  # unknown model: one line with the closest name
        out = Path(cfg.out) if cfg.out else default_out(name or _checkpoint_model(cfg.model), cfg.data)
        last = out / "last.pt"
        if not cfg.resume:
            if last.exists() and not cfg.overwrite:
                raise TrainError(f"{out} already holds a run (last.pt); continue it with --resume, "
                                 "or pass --overwrite or another --out")
            return dataclasses.replace(cfg, out=str(out), epochs=cfg.epochs or DEFAULT_EPOCHS), None
        if not last.is_file():  # never started, or stopped before its first epoch was saved
            raise TrainError(f"--resume: {out} holds no complete epoch (no last.pt): nothing to resume; "
                             "run the command again without --resume")
        ckpt = load_checkpoint(last)
        if name is not None and ckpt["model"] != name:
            raise TrainError(f"--resume: {last} is a run of '{ckpt['model']}', not '{name}'")
        saved = TrainConfig(**ckpt["config"]["train"])
        defaults = TrainConfig(cfg.model, cfg.data)
        ignored = [f"--{f.name.replace('_', '-')} {getattr(cfg, f.name)}" for f in dataclasses.fields(cfg)
                   if f.name not in TrainConfig.RESUMABLE and f.name != "model"
                   and getattr(cfg, f.name) != getattr(defaults, f.name)
                   and getattr(cfg, f.name) != getattr(saved, f.name)]
        if ignored:
            self.warn(f"--resume continues the run with its saved settings; ignoring {', '.join(ignored)}")
        keep = {f: getattr(cfg, f) for f in TrainConfig.RESUMABLE}
        keep.update(out=str(out), epochs=cfg.epochs or saved.epochs, resume=True)
        if keep["epochs"] <= ckpt["epoch"]:
            raise TrainError(f"--resume: {last} already has {ckpt['epoch']} of {keep['epochs']} epochs; "
                             "raise --epochs to train longer")
        return dataclasses.replace(saved, **keep), ckpt

    def _report_data(self, data: Data) -> None:
        if data.skipped:
            path, why = data.skipped[0]
            total = len(data.train) + len(data.val) + len(data.skipped)
            self.warn(f"skipped {len(data.skipped)} unreadable image{'s' if len(data.skipped) > 1 else ''} "
                      f"of {total:,} in {self.cfg.data} (first: {path}: {why})")
        for w in data.warnings:
            self.warn(w)
        for n in data.notes:
            self.echo(n)

    def _build_model(self, resume: dict | None) -> tuple[nn.Module, str, Preprocess]:
        cfg, data = self.cfg, self.data
        base = resume
        init = cfg.init
        if hub.is_tag(init) and cfg.model in registry.REGISTRY:  # --init imagenet/coco: the card's published weights
            card = registry.get_card(cfg.model)
            if self.task.kind == "detect" and hub.dataset(init) == "ImageNet" and cfg.model in BACKBONES:
                card = registry.get_card(BACKBONES[cfg.model])  # a detector: its backbone classifier's weights
            init = str(hub.fetch(hub.resolve(card, init, option="--init"), option="--init").path)
        if cfg.model not in registry.REGISTRY:  # a checkpoint to fine-tune
            if init is not None:
                raise UsageError("give a checkpoint either as MODEL or with --init, not both")
            init = cfg.model
        if base is None and init is not None:
            raw = load_file(init)
            if is_checkpoint_dict(raw):  # else a bare state dict, for the card's configuration
                base = validate(raw, init)
                if cfg.model in registry.REGISTRY and base["model"] != cfg.model:
                    raise other_model(init, base["model"], cfg.model)
        name = base["model"] if base is not None and cfg.model not in registry.REGISTRY else cfg.model
        card = registry.get_card(name)
        stored = model_config(base) if base is not None else {}
        if resume is not None:
            in_ch, size = stored["in_channels"], stored["input_size"]
            labels = resume["contract"].get("labels")
            if labels != self.task.labels(data):
                raise TrainError(f"--resume: the classes of {cfg.data} ({', '.join(data.classes[:5])}...) are not "
                                 f"those of the run ({', '.join((labels or [])[:5])}...)")
        else:
            in_ch = cfg.in_channels or stored.get("in_channels") or card.input_channels
            size = cfg.input_size or stored.get("input_size") or card.input_size
        # the checkpoint's width (and the rest of its model config) carries over; classes follow the data
        width = None if resume is not None else cfg.width_mult  # a resumed run keeps its own
        model = build_model(name, base["config"] if base is not None else None,
                            num_classes=self.task.num_classes(data), in_channels=in_ch, input_size=size,
                            width_mult=width)
        if width not in (None, 1.0) and getattr(model, "width_mult", None) != width:
            raise UsageError(f"--width-mult: {name} has no width multiplier; leave the option out")
        if base is not None and in_ch == stored["in_channels"]:
            spec = Preprocess(**base["contract"]["preprocess"]).resized(size, size)  # keep the trained transform
        else:  # the model's own (a detector's letterbox or stretch), else the ImageNet transform
            spec = getattr(model, "preprocess", None) or Preprocess.imagenet(size, in_ch)
        if cfg.resize and cfg.resize != spec.resize:
            spec = dataclasses.replace(spec, resize=cfg.resize, resize_size=None)
        if hasattr(model, "preprocess"):
            model.preprocess = spec  # a detector's validation reads it
        if resume is None and cfg.anchors == "auto":
            self._fit_anchors(model, name, spec)
        from edgecnn.profile import profile

        profile(model, (in_ch, size, size), name)  # a too-small input fails here, in one line
        if resume is not None:
            model.load_state_dict(resume["state_dict"])
        elif init is not None:
            notes = init_backbone(model, init, name) if self.task.kind == "detect" else None
            labels = self.task.labels(data)  # a head from weights with other classes keeps the rows of these
            for note in notes if notes is not None else transfer.load_init(model, init, name, labels):
                self.echo(f"init: {note}")
            self.echo(f"init: weights from {init}")
        return model, name, spec

    def _fit_anchors(self, model: nn.Module, name: str, spec: Preprocess) -> None:
        """``--anchors auto``: the anchor scales that cover most training objects at this input size."""
        from edgecnn.train.anchor_fit import describe_fit, fit_scales

        if not hasattr(model, "set_anchor_scales"):
            raise UsageError(f"--anchors auto fits a SSDLite detector's anchors; {name} has fixed anchors "
                             "(use --anchors default)")
        fit = fit_scales(model, self.data.train.images, spec)
        if fit is None:
            self.warn("--anchors auto: the training images hold no boxes; keeping the default anchors")
            return
        model.set_anchor_scales(fit["scales"])
        self.echo(describe_fit(fit, name, spec.width))

    def _make_loaders(self) -> None:
        cfg, d = self.cfg, self.dist
        if cfg.batch_size % d.world:
            raise UsageError(f"--batch-size {cfg.batch_size} does not split over {d.world} processes; "
                             f"use a multiple of {d.world}")
        n_train = len(self.data.train)
        self.batch_size = cfg.batch_size
        if self.batch_size > n_train:
            self.batch_size = max(d.world, n_train // d.world * d.world)
            self.warn(f"--batch-size {cfg.batch_size} is more than the {n_train} training images; "
                      f"using {self.batch_size}")
        local = self.batch_size // d.world
        cache = CACHE_BYTES if cfg.workers == 0 else 0
        self.train_set, val_set = self.task.datasets(self.data, self.spec, cfg, cache)
        self.sampler = DistributedSampler(self.train_set, num_replicas=d.world, rank=d.rank, shuffle=True,
                                          seed=cfg.seed)
        self.loader_rng = torch.Generator()
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(self.train_set, batch_size=local, sampler=self.sampler,
                                       num_workers=cfg.workers, collate_fn=self.task.collate, drop_last=True,
                                       pin_memory=pin, generator=self.loader_rng)
        self.val_loader = DataLoader(val_set, batch_size=local, sampler=range(d.rank, len(val_set), d.world),
                                     num_workers=cfg.workers, collate_fn=self.task.collate, pin_memory=pin)
        self.steps_per_epoch = len(self.train_loader)

    def _restore(self, ckpt: dict) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.saved_epoch = self.epoch
        metrics = ckpt.get("metrics") or {}
        self.history = list(metrics.get("history", []))
        self.best = (float(metrics.get(self._best_store, -1.0)), int(metrics.get("best_epoch", 0)))
        rng = (ckpt.get("rng") or {}).get("torch")
        if isinstance(rng, torch.Tensor):
            torch.set_rng_state(rng)
        self.echo(f"resume: {self.cfg.out}/last.pt after epoch {self.epoch} of {self.cfg.epochs} "
                  f"(step {self.step})")

    def _describe(self, wd: float) -> None:
        cfg, data = self.cfg, self.data
        params = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.echo(f"data: {cfg.data} ({data.kind}): {len(data.train):,} train / {len(data.val):,} val images, "
                  f"{len(data.classes)} classes")
        n = torch.get_num_threads()
        where = str(self.device) + (f", {self.dist.world} processes (DDP, "
                                    f"{'nccl' if self.device.type == 'cuda' else 'gloo'})"
                                    if self.dist.enabled else "")
        if self.device.type == "cpu":
            where += f", {n} thread{'s' if n > 1 else ''}{' each' if self.dist.enabled else ''}"
        self.echo(f"model: {self.name}, input {self.spec.channels}x{self.spec.height}x{self.spec.width} "
                  f"({self.spec.resize}), {params:,} params ({trainable:,} trainable), on {where}")
        if cfg.freeze != "none":
            self.echo(f"freeze: {cfg.freeze}: {params - trainable:,} params frozen, BN of frozen stages in eval mode")
        decay = f", layer-lr-decay {cfg.layer_lr_decay}" if cfg.layer_lr_decay else ""
        self.echo(f"optimizer: {cfg.optimizer} lr {self.lr:g} weight-decay {wd:g}{decay}, {cfg.schedule} schedule "
                  f"({self.warmup} warm-up steps), batch {self.batch_size}, {cfg.epochs} epochs "
                  f"x {self.steps_per_epoch} steps{', augment' if cfg.augment else ''}")

    # --------------------------------------------------------------------------------------- training

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
        interrupt_after = int(os.environ.get(INTERRUPT_ENV, "0") or 0)
        last_eval: dict[str, Any] = {}
        for epoch in range(self.epoch, cfg.epochs):
            row = self._train_epoch(epoch, kill_after, interrupt_after)
            last_eval = self._evaluate()
            row.update(self._val_fields(last_eval))
            self.history.append(row)
            is_best = last_eval[self.task.best_key] > self.best[0]
            if is_best:
                self.best = (last_eval[self.task.best_key], epoch + 1)
            self.epoch = epoch + 1
            if self.dist.main:
                self._save(last_eval, is_best)
            else:
                self.saved_epoch = self.epoch
            ddp.barrier(self.dist)
            self.echo(self.task.epoch_line(row, cfg.epochs, is_best))
        if not last_eval:  # resumed a finished run: nothing trained, report the weights as they are
            last_eval = self._evaluate()
        out = Path(cfg.out)
        return {
            "model": self.name, "task": self.task.kind, "out": str(out), "epochs": self.epoch,
            "classes": self.data.classes, "train_images": len(self.data.train), **self._val_fields(last_eval),
            "val_images": last_eval["n"], self._best_store: self.best[0], "best_epoch": self.best[1],
            "per_class": last_eval["per_class"], "history": self.history,
            "files": [str(out / f) for f in ("last.pt", "best.pt", "log.csv", "log.json")],
        }

    def _train_epoch(self, epoch: int, kill_after: int = 0, interrupt_after: int = 0) -> dict[str, Any]:
        cfg, d = self.cfg, self.dist
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, d.rank))
        self.loader_rng.manual_seed(_epoch_seed(cfg.seed, epoch, 1 << 20))
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        transfer.set_train_mode(self.ddp_model, self.frozen)
        loss_sum, seen, bad = 0.0, 0, []
        sums: dict[str, float] = {}
        start = time.perf_counter()
        with Progress(self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}",
                      enabled=None if d.main else False) as bar:
            for x, y, failed in self.train_loader:
                bad.extend(failed)
                factor = lr_factor(self.step, self.total_steps, self.warmup, cfg.schedule)
                for g in self.optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                dummy = x is None  # the whole batch failed to decode
                if dummy and not d.enabled:
                    continue
                if dummy:  # a zero-weight step keeps DDP ranks in lockstep; eval mode keeps BN stats untouched
                    x = torch.zeros(1, self.spec.channels, self.spec.height, self.spec.width)
                    y, weight = self.task.dummy_targets(), 0.0
                    self.ddp_model.eval()
                else:
                    weight = 1.0
                x, y = x.to(self.device, non_blocking=True), self.task.to_device(y, self.device)
                loss, n, parts = self.task.step(self.ddp_model, x, y)
                if dummy:
                    transfer.set_train_mode(self.ddp_model, self.frozen)
                loss = loss * weight
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainError(f"the loss became {value} at epoch {epoch + 1}, step {self.step}; lower --lr "
                                     "(the last checkpoint is kept)")
                if weight:
                    loss_sum += value * n
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v
                    seen += n
                elapsed = time.perf_counter() - start
                bar.update(1, **self.task.running(sums, loss_sum, seen),
                           **{"img/s": f"{seen * d.world / max(elapsed, 1e-9):,.0f}"})
                if kill_after and self.step == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                if interrupt_after and self.step == interrupt_after:
                    os.kill(os.getpid(), signal.SIGINT)
        seconds = time.perf_counter() - start
        keys = sorted(sums)
        totals = ddp.sum_all(d, [loss_sum, seen, len(bad), *(sums[k] for k in keys)])
        loss_sum, seen, n_bad = float(totals[0]), int(totals[1]), int(totals[2])
        sums = {k: float(v) for k, v in zip(keys, totals[3:], strict=True)}
        if n_bad:
            self.warn(f"epoch {epoch + 1}: skipped {n_bad} image{'s' if n_bad > 1 else ''} that failed to decode "
                      f"(first: {bad[0] if bad else 'on another rank'})")
        return {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"],
                **self.task.train_row(sums, loss_sum, seen),
                "images_per_s": seen / max(seconds, 1e-9), "seconds": seconds}

    def _evaluate(self) -> dict[str, Any]:
        self.task.prepare_eval(self.model, self.train_loader, self.device, self.frozen)
        return self.task.evaluate(self.model, self.val_loader, self.device, self.dist, self.data)

    @property
    def _best_store(self) -> str:
        return "best_" + self.task.best_key.removeprefix("val_")  # best_top1 | best_map50

    def _val_fields(self, last_eval: dict[str, Any]) -> dict[str, Any]:
        return {k: last_eval.get(k) for k in self.task.log_fields if k.startswith("val_")}

    # ------------------------------------------------------------------------------------- persisting

    def _save(self, last_eval: dict[str, Any], is_best: bool) -> None:
        out = Path(self.cfg.out)
        train_fields = {k: self.history[-1][k] for k in self.task.log_fields if k.startswith("train_")}
        metrics = {"epoch": self.epoch, **self._val_fields(last_eval), **train_fields,
                   self._best_store: self.best[0], "best_epoch": self.best[1], "per_class": last_eval["per_class"],
                   "history": self.history}
        versions = {"edgecnn": __version__, "torch": str(torch.__version__)}
        weights = {"source": "edgecnn train", "data": self.cfg.data, "epoch": str(self.epoch)}
        contract = self.task.contract(self.model, self.name, self.spec, self.data, weights, last_eval, versions)
        ckpt = {
            "format": FORMAT, "model": self.name,
            "config": {"num_classes": self.task.num_classes(self.data), "in_channels": self.spec.channels,
                       "input_size": self.spec.height, **stored_config(self.model), "train": asdict(self.cfg)},
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "contract": contract.to_dict(), "metrics": metrics, "epoch": self.epoch, "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"name": self.cfg.schedule, "warmup_steps": self.warmup, "total_steps": self.total_steps,
                          "step": self.step},
            "rng": {"seed": self.cfg.seed, "torch": torch.get_rng_state()},
            "versions": {"edgecnn": __version__, "torch": str(torch.__version__)},
        }
        save_checkpoint(ckpt, out / "last.pt")
        self.saved_epoch = self.epoch
        if is_best:
            save_checkpoint(ckpt, out / "best.pt")
        _write_logs(out, self.history, ("epoch", "lr", *self.task.log_fields, "images_per_s", "seconds"))


def _checkpoint_model(path: str) -> str:
    return load_checkpoint(path)["model"]


def _task_kind(model: str, resume: dict | None) -> str:
    """classify | detect: from the card of a zoo name, else of the checkpoint's model."""
    name = model if model in registry.REGISTRY else (resume or load_checkpoint(model))["model"]
    return registry.get_card(name).task


def _write_logs(out: Path, history: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    """``log.csv`` and ``log.json``, rewritten whole (atomically) from the history each epoch, so a
    resumed run's logs hold exactly its complete epochs."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else round(row[k], 6) if isinstance(row[k], float) else row[k])
                         for k in fields})
    try:
        with atomic_path(out / "log.csv") as tmp:
            tmp.write_text(buf.getvalue())
        with atomic_path(out / "log.json") as tmp:
            tmp.write_text(json.dumps(history, indent=1) + "\n")
    except OSError as e:
        raise CheckpointError(f"could not write the logs in {out}: {e.strerror or e}; the checkpoints are kept") from e
