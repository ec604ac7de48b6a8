"""The train stage: chunks -> a model directory, resumable, optionally distributed (torchrun).

The model directory holds ``config.json`` (task, classes, every upstream config, stage versions,
the training data's keys, final metrics), ``model.safetensors`` (the best epoch by validation
loss), ``checkpoint.pt`` (the last epoch, for ``--resume``; weights-only loadable),
``history.csv`` and ``loss.png``, and ``.pipeline-outputs``, the record of what it wrote (size
and mtime of each file, the format of :mod:`pipeline.outputs`).

``--out`` follows predict's ownership rule: an existing directory is refused unless ``--resume``
continues its checkpoint, or every file in it is one this pipeline wrote and left unchanged (then
the old model's files are removed and it is replaced). Under torchrun rank 0 decides and tells
the others; no other rank touches the directory.

Fine-tuning (``init``, :func:`start_from`) starts from another model directory's weights and its
settings (features, chunking, network, post-processing), at a tenth of its learning rate unless
``train.lr`` is given; the origin (directory, weights' sha256) goes into ``config.json``.

Optimisation: AdamW, gradient clipping, linear warm-up then cosine decay per step, early stopping
on the validation loss. A fixed ``train.seed`` gives the same model on the same machine.
Under ``torchrun`` every process trains on its share of the chunks (DDP; gloo on the CPU, nccl
on GPUs), all of them validate on the same chunks, and rank 0 writes the directory.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import SECTIONS, Config, TrainConfig, key_fields, section_from_dict
from .errors import ModelError, ParameterError, PipelineError
from .metrics import frame_metrics
from .modeldir import CONFIG_FILE, WEIGHTS_FILE, read_model_config, weights_file
from .nets import FrameModel, save_model
from .outputs import OutputDir
from .stage import STAGES

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
LOSS_PLOT = "loss.png"
# every file training writes into a model directory (model.onnx: the export at the end of fit)
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT, HISTORY, LOSS_PLOT, "model.onnx")
INIT_LR_FACTOR = 0.1  # fine-tuning: the starting model's learning rate times this, unless given


# ------------------------------------------------------------------ distributed set-up


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world, device)


# ------------------------------------------------------------------ metrics


def frame_f1(probs: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> float:
    """Micro frame F1 over valid frames: probs, targets [shape=(n, C)]."""
    if multi_label:
        pred = probs >= 0.5
    else:
        pred = np.zeros_like(probs, dtype=bool)
        pred[np.arange(len(probs)), probs.argmax(1)] = True
    f1 = frame_metrics(targets > 0.5, pred)["overall"]["f1"]
    return 1.0 if f1 is None else f1


def _batches(indices: np.ndarray, batch_size: int):
    for s in range(0, len(indices), batch_size):
        yield np.sort(indices[s: s + batch_size])  # sorted: sequential mmap reads


def _tensors(arrays, idx: np.ndarray, model: FrameModel, device: str, *, raw: bool = False):
    """``(x, y, m)`` of a batch: ``model``'s inputs, the targets, the valid frames; with ``raw``,
    the chunks' features as heard (as stored, at the run's input level if it has one) are appended
    (another model's inputs, :func:`_inputs`)."""
    x = torch.from_numpy(np.asarray(arrays["X"][idx], dtype=np.float32)).to(device)  # (B, T, F)
    if "level_shift" in arrays:  # predict.level_db: each chunk as its file is heard (chunk_levels)
        g = torch.from_numpy(np.asarray(arrays["level_shift"][idx], dtype=np.float32)).to(device)
        x = shift_rows(x, g[:, None, None], arrays["level_floor"])
    m = torch.from_numpy(np.asarray(arrays["mask"][idx])).to(device)  # (B, T)
    task = model.cfg.task
    y = torch.from_numpy(np.asarray(arrays["Y"][idx], dtype=np.float32)).to(device) if task == "classify" else x
    return (_inputs(x, m, model), y, m) + ((x,) if raw else ())


def shift_rows(x: torch.Tensor, g: torch.Tensor, floor: float) -> torch.Tensor:
    """Log rows ``x`` as if their audio were louder by ``g`` (in the rows' units, broadcast):
    bins at the floor (digital silence, which no gain moves) stay there, none goes below it
    (:class:`pipeline.features.Leveled` in torch)."""
    from .features import SILENT_ABOVE_FLOOR

    return torch.where(x <= floor + SILENT_ABOVE_FLOOR, x, torch.clamp_min(x + g.to(x.dtype), floor))


def _inputs(x: torch.Tensor, m: torch.Tensor, model: FrameModel) -> torch.Tensor:
    """A chunk batch as ``model`` reads it: for a look-ahead model a chunk's padding reads as the
    end of its file, as predict gives it."""
    if model.cfg.delay:
        return torch.where(m[..., None], x, model.end_frames(*x.shape[:2]).to(x.dtype))
    return x


def hidden_frames(model: FrameModel, m: torch.Tensor, mask: tuple[float, int],
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The frames a masked-frame model rebuilds in a batch whose valid frames are ``m`` (B, T):
    spans of ``mask = (fraction, span)`` frames (:func:`pipeline.nets.hide_spans`), in units of
    the network's steps when it stacks frames (``model.stack``), so that a step never sees part
    of what it must rebuild."""
    from .nets import hide_spans

    k = model.cfg.stack
    if k == 1:
        return hide_spans(m, mask[0], mask[1], generator)
    B, T = m.shape
    pad = -T % k
    steps = torch.cat([m, m.new_zeros(B, pad)], 1).reshape(B, -1, k).any(-1)  # (B, T / k)
    hidden = hide_spans(steps, mask[0], max(1, round(mask[1] / k)), generator)
    return hidden.repeat_interleave(k, dim=1)[:, :T] & m


def hide(x: torch.Tensor, hidden: torch.Tensor, model: FrameModel) -> torch.Tensor:
    """``x`` (B, T, F) with the ``hidden`` (B, T) frames set to the training mean (normalised: 0)."""
    return torch.where(hidden[..., None], model.mean.to(x.dtype).expand_as(x), x)


@torch.no_grad()
def evaluate_chunks(model: FrameModel, arrays, idx: np.ndarray, *, batch_size: int, device: str,
                    teacher: "Teacher | None" = None, mask: tuple[float, int] = TrainConfig().mask) -> dict[str, float]:
    """Validation loss (mean over batches weighted by valid frames) and the task's metric; against
    ``teacher``'s probabilities instead of the labels when given (a run that learns from the
    teacher alone, ``train.distill=1``). A masked-frame model rebuilds the same hidden spans at
    every call (``mask = (fraction, span)``, drawn from a generator seeded with 0), so that epochs
    compare; its metric is the loss of rebuilding every hidden frame as the mean frame."""
    model.eval()
    task, h = model.cfg.task, model.cfg.horizon
    total, frames, probs, refs, base, pairs = 0.0, 0, [], [], 0.0, 0
    draw = torch.Generator().manual_seed(0) if task == "masked" else None
    for b in _batches(idx, batch_size):
        x, y, m, raw = _tensors(arrays, b, model, device, raw=True)
        if teacher is not None:
            y = teacher.targets(raw, y, m, 1.0)
        if task == "masked":
            m = hidden_frames(model, m, mask, draw)
            x = hide(x, m, model)
        out, _ = model(x)
        n = int(m.sum())
        total += float(model.loss(out, y, m)) * n
        frames += n
        if task == "masked":  # the mean frame (0 once normalised) as every hidden frame's guess
            base += float(model.normalize(y).abs().mean(-1)[m].sum())
            pairs += n
        elif task == "classify":
            p = model.probabilities(out)
            probs.append(p[m].float().cpu().numpy())
            refs.append(y[m].cpu().numpy())
        else:  # "repeat the last frame" baseline on the same frames the loss uses
            z = model.normalize(x)
            both = m[:, h:] & m[:, :-h]
            base += float((z[:, h:] - z[:, :-h]).abs().mean(-1)[both].sum())
            pairs += int(both.sum())
    metrics = {"valid_loss": total / max(frames, 1)}
    if task == "classify":
        metrics["valid_f1"] = frame_f1(np.concatenate(probs), np.concatenate(refs),
                                       multi_label=model.cfg.multi_label)
    elif task == "masked":
        metrics["valid_mean_frame_l1"] = base / max(pairs, 1)
    else:
        metrics["valid_baseline_l1"] = base / max(pairs, 1)
    return metrics


# ------------------------------------------------------------------ checks


def check_training_data(arrays, meta: dict, cfg: Config, *, labels_used: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation chunk indices, after the checks that must fail before training
    (``labels_used=False``: a teacher gives every target, so no class needs positive frames)."""
    split = np.asarray(arrays["split"])
    train_idx, valid_idx = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    if len(train_idx) == 0:
        raise ParameterError("the training split is empty (every file went to validation)")
    if cfg.train.gain_db > 0 and cfg.model.task == "classify" and cfg.features.kind not in ("logmel", "fbank"):
        raise ParameterError(f"train.gain_db={cfg.train.gain_db} needs log features (features.kind logmel "
                             f"or fbank), not {cfg.features.kind!r}")
    if cfg.model.task == "classify":
        classes = meta["classes"]
        if not classes:
            raise ParameterError("task 'classify' needs labels, and the dataset has no labelled events "
                                 "(use model.task=forecast for unlabelled audio, or learn a classifier's "
                                 "outputs on it: --teacher MODEL_DIR --set train.distill=1)")
        Y = arrays["Y"]
        positives = np.zeros(len(classes), dtype=np.int64)
        for b in _batches(train_idx, 256):
            positives += np.asarray(Y[b]).sum(axis=(0, 1), dtype=np.int64)
        empty = [c for c, n in zip(classes, positives) if n == 0]
        if empty and labels_used:
            raise ParameterError(f"class {empty[0]!r} has no positive frame in the training split")
    if len(valid_idx) == 0:
        valid_idx = train_idx  # a one-file dataset validates on its training data (said in the log)
    return train_idx, valid_idx


# ------------------------------------------------------------------ the model directory (--out)


def record_outputs(out: Path) -> None:
    """Record every model file now in ``out`` as the pipeline's (in ``OUT/.pipeline-outputs``,
    through :class:`pipeline.outputs.OutputDir`, the record's one writer)."""
    record = OutputDir(out, "--out")
    for name in MODEL_FILES:
        if (out / name).is_file():
            record.record(out / name)


def claim_model_dir(out: str | Path, *, resume: bool, replace: bool, log: Callable[[str], None] = print) -> None:
    """Check that training may write the model directory ``out``, and create it.

    Allowed: a new or empty directory; with ``resume``, one holding ``checkpoint.pt``; otherwise
    only a directory every (non-hidden) file of which this pipeline wrote and left unchanged,
    whose model files are then removed when ``replace`` (so no file of the old model survives
    beside the new one).

    Raises
    ------
    ParameterError
        The directory holds something else, or cannot be written (one line naming it and the
        way out).
    """
    out = Path(out)
    if resume and (out / CHECKPOINT).is_file():
        return
    if out.is_dir():
        why = OutputDir(out, "--out", create=False).foreign()  # its names, not the user's hidden files
        if why:
            way = ", or continue its training with --resume" if (out / CHECKPOINT).is_file() else ""
            raise ParameterError(f"--out {out}: exists and {why}; train does not overwrite a directory it "
                                 f"did not write (choose another --out or move it away{way})")
    try:
        old = [out / n for n in MODEL_FILES if (out / n).is_file()]
        if old and replace:
            log(f"replacing the model in {out} (written by this pipeline, unchanged)")
            for p in old:
                p.unlink()
        out.mkdir(parents=True, exist_ok=True)
        record_outputs(out)  # also proves the directory writable
    except OSError as exc:
        raise ParameterError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def claim_on_rank0(out: str | Path, dist: Dist, *, resume: bool, replace: bool,
                   log: Callable[[str], None] = print) -> None:
    """:func:`claim_model_dir` on rank 0 only, its verdict sent to every rank (all raise the same
    error, or none does); the other ranks never touch the directory."""
    error = None
    if dist.main:
        try:
            claim_model_dir(out, resume=resume, replace=replace, log=log)
        except ParameterError as exc:
            error = str(exc)
    if dist.world > 1:
        import torch.distributed as tdist

        box = [error]
        tdist.broadcast_object_list(box, src=0)
        error = box[0]
    if error:
        raise ParameterError(error)


# ------------------------------------------------------------------ fine-tuning: where a run starts

# ``model`` settings a fine-tune may change: everything else is the network's shape or meaning
FREE_MODEL_KEYS = ("dropout",)
# ``model`` settings a fine-tune may raise: the network grows, computing what it computed
# (:func:`pipeline.nets.widen_into`), and training puts the new units to use
GROW_MODEL_KEYS = ("hidden", "conv_channels")


@dataclasses.dataclass(frozen=True)
class Start:
    """A fine-tune's starting point: a model directory, its ``config.json``, and the run's
    settings (the model's own, with what the user gave on top)."""

    directory: Path
    config: dict[str, Any]
    cfg: Config

    @property
    def task(self) -> str:
        """The starting model's own task (a masked-frame model's fine-tune is a classifier)."""
        return str(self.config["model"].get("task", "classify"))

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"]) if self.task == "classify" else []

    def weights(self) -> Path:
        return weights_file(self.directory)


def config_classes(config: dict, where: str) -> list[str]:
    """A model's classes from its ``config.json`` (read at ``where``); ModelError unless a list of names."""
    classes = config.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise ModelError(f"{where}: needs 'classes', a list of class names (got {classes!r})")
    return classes


def start_from(model_dir: str | Path, cfg: Config, explicit: dict[str, str] | None = None,
               log: Callable[[str], None] = print) -> Start:
    """The settings of a fine-tune of ``model_dir``: its load, features, chunk, model, train and
    predict tables, then the settings the user gave (``explicit``: ``"section.key"`` -> where it
    was given, e.g. ``"--set"``; their values are ``cfg``'s). The learning rate is the model's
    times :data:`INIT_LR_FACTOR` unless ``train.lr`` is given.

    Raises
    ------
    ModelError
        ``model_dir`` is not a readable model directory.
    ParameterError
        A given load/features setting differs from the model's (the network reads only its own
        features), or a model setting other than :data:`FREE_MODEL_KEYS` does (its shape).
    """
    directory = Path(model_dir)
    where = f"{directory}/{CONFIG_FILE}"
    config = read_model_config(directory)
    for table in ("load", "features", "model"):
        if not isinstance(config.get(table), dict):
            raise ModelError(f"{where}: needs a {table!r} table (the settings the model was trained with)")
    classes = config_classes(config, where)
    parts = {}
    for name, klass in SECTIONS.items():
        table = config.get(name) if isinstance(config.get(name), dict) else {}
        if name in ("chunk", "train", "predict"):  # not the network's: a newer pipeline's keys may be gone
            table = {k: v for k, v in table.items() if k in {f.name for f in dataclasses.fields(klass)}}
        parts[name] = section_from_dict(klass, name, table, source=where)
    trained = dict(parts)  # the model's own, before the user's settings
    for name in sorted(explicit or {}):
        section, key = name.split(".", 1)
        value, was = getattr(getattr(cfg, section), key), getattr(trained[section], key)
        grows = key in GROW_MODEL_KEYS and value > was and (key != "conv_channels" or was > 0)  # no front end: none added
        pretrained = name == "model.task" and (was, value) == ("masked", "classify")  # a new head on the body
        fixed = (section in ("load", "features") and key in key_fields(trained[section])) or \
            (section == "model" and key not in FREE_MODEL_KEYS and not grows and not pretrained)
        if fixed and value != was:
            raise ParameterError(
                f"{explicit[name]} {name}={value!r}: {directory} was trained with {name}={was!r}; a fine-tune "
                f"keeps the model's {'features' if section != 'model' else 'network'} (leave the setting out, "
                f"{'raise it (a network only grows), ' if key in GROW_MODEL_KEYS else ''}"
                f"or train from scratch without --init)")
        parts[section] = dataclasses.replace(parts[section], **{key: value})
    if "train.lr" not in (explicit or {}):
        factor = 1.0 if trained["model"].task == "masked" else INIT_LR_FACTOR  # a pretrained body, a new head
        lr = trained["train"].lr * factor
        parts["train"] = dataclasses.replace(parts["train"], lr=lr)
        log(f"fine-tuning {directory} at learning rate {lr:g} (its {trained['train'].lr:g} x {factor:g}; "
            f"--set train.lr=... to change it)")
    return Start(directory, config, Config(**parts))


def classifier_from_pretrained(start: Start, ds, explicit: dict[str, str] | None,
                               log: Callable[[str], None] = print) -> Start:
    """A masked-frame (pretraining) model fine-tuned on labelled audio becomes a classifier of its
    classes (unless ``model.task`` was given): everything but the head starts from it. On audio
    without labels it goes on pretraining."""
    if start.task != "masked" or start.cfg.model.task != "masked" or not ds.classes or "model.task" in (explicit or {}):
        return start
    log(f"{start.directory} is a masked-frame (pretraining) model: training a classifier of "
        f"{list(ds.classes)} from it (a new output layer; the rest starts from its weights)")
    cfg = dataclasses.replace(start.cfg, model=dataclasses.replace(start.cfg.model, task="classify"))
    return dataclasses.replace(start, cfg=cfg)


def match_classes(ds, start: Start, log: Callable[[str], None] = print):
    """The dataset with the starting model's class order when it has the same classes; else
    with the classes it shares with the model first, in the model's order, then its new ones,
    and a one-line warning that the output layer is replaced (the shared classes keep their
    outputs' weights, :func:`load_start`). Returns ``(dataset, kept)``."""
    if start.cfg.model.task != "classify":
        return ds, True
    if start.task != "classify":  # a pretrained body (classifier_from_pretrained said so)
        return ds, False
    if set(ds.classes) == set(start.classes):
        return dataclasses.replace(ds, classes=tuple(start.classes)), True
    shared = [c for c in start.classes if c in ds.classes]
    ds = dataclasses.replace(ds, classes=tuple(shared + [c for c in ds.classes if c not in shared]))
    how = f"{shared} keep their weights, {[c for c in ds.classes if c not in shared]} start new" if shared \
        else f"new, for {len(ds.classes)} class(es)"
    log(f"WARNING: {ds.origin}: its classes {list(ds.classes)} differ from {start.directory}'s {start.classes}: "
        f"the output layer is replaced ({how}); the rest starts from {start.directory}")
    return ds, False


@dataclasses.dataclass
class Teacher:
    """Knowledge distillation (Hinton et al. 2015): a trained classifier whose probabilities join
    the labels in the training targets, so a small or streaming network learns what a larger or
    bidirectional one makes of the same audio, its doubts included. It reads the training chunks
    as they are stored (no SpecAugment) and is never trained. Validation stays on the labels, so
    early stopping compares with a run without it, except where the teacher gives every target
    (``train.distill=1``, unlabelled audio allowed): then it is against the teacher's
    probabilities. Built by :func:`teacher_from`."""

    directory: Path
    model: FrameModel  # eval mode, on the run's device
    rows: list[int]  # the teacher's output for each of the run's classes
    classes: list[str]
    sha256: str

    @torch.no_grad()
    def targets(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, weight: float) -> torch.Tensor:
        """``(1 - weight) * y + weight * p``: ``p`` the teacher's probabilities of the run's classes
        on the chunks ``x`` ``(B, T, F)`` (features as stored, ``m`` their valid frames), ``y`` the
        labels: ``(B, T, C)`` in [0, 1], or ``(B, T)`` class indices (multi-class; one-hot first).
        Returns ``(B, T, C)`` soft targets."""
        logits, _ = self.model(_inputs(x, m, self.model))
        p = self.model.probabilities(logits.float())[..., self.rows]  # (B, T, C)
        if y.dim() == 2:
            y = torch.nn.functional.one_hot(y.long().clamp(min=0), num_classes=len(self.rows)).to(p.dtype)
        return (1.0 - weight) * y.to(p.dtype) + weight * p

    def record(self, weight: float) -> dict[str, Any]:
        """What ``config.json`` says of the teacher."""
        return {"directory": str(self.directory), "sha256": self.sha256, "classes": self.classes,
                "distill": weight}


def teacher_from(directory: str | Path, cfg: Config, classes: list[str], device: str = "cpu") -> Teacher:
    """Load ``directory`` (weights only) as the teacher of a run with settings ``cfg`` and
    ``classes``.

    Raises
    ------
    ModelError
        ``directory`` is not a readable model directory.
    ParameterError
        It is not a classifier; it reads other features (a load or features setting that changes
        them differs from the run's); it lacks one of the run's classes; one of the two is
        multi-label and the other not, or, multi-class, their classes differ. The message names
        the directory and the rule.
    """
    from .cache import file_digest
    from .modeldir import weights_file
    from .nets import load_model

    directory = Path(directory)
    model, config = load_model(directory, map_location=device)
    where = f"--teacher {directory}"
    if model.cfg.task != "classify":
        raise ParameterError(f"{where}: a teacher must be a classifier (its model.task is {model.cfg.task!r})")
    for name in ("load", "features"):
        trained = key_fields(section_from_dict(SECTIONS[name], name, config.get(name) or {},
                                               source=f"{directory}/{CONFIG_FILE}"))
        ours = key_fields(getattr(cfg, name))
        differ = sorted(k for k in ours if trained.get(k) != ours[k])
        if differ:
            raise ParameterError(f"{where}: it reads other features than this run ("
                                 + ", ".join(f"{name}.{k}={trained.get(k)!r} against {ours[k]!r}" for k in differ)
                                 + "); a teacher must read the run's own chunks")
    taught = list(config.get("classes") or [])
    missing = [c for c in classes if c not in taught]
    if missing:
        raise ParameterError(f"{where}: it has no output for class(es) {missing} (its classes: {taught})")
    if model.cfg.multi_label != cfg.model.multi_label or (not cfg.model.multi_label and sorted(taught) != sorted(classes)):
        raise ParameterError(f"{where}: its outputs are {'multi-label' if model.cfg.multi_label else 'multi-class'} "
                             f"over {taught}, this run's {'multi-label' if cfg.model.multi_label else 'multi-class'} "
                             f"over {list(classes)}: a teacher's probabilities must mean what the targets mean")
    for p in model.parameters():
        p.requires_grad_(False)
    return Teacher(directory, model.eval(), [taught.index(c) for c in classes], list(classes),
                   file_digest(weights_file(directory)))


# ------------------------------------------------------------------ the loop


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return f


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _write_history(out: Path, history: list[dict]) -> None:
    if not history:
        return
    cols = list(history[0])
    with open(out / HISTORY, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(history)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the plot extra is optional; history.csv has the numbers
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], label="train loss")
    ax.plot(ep, [h["valid_loss"] for h in history], label="valid loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if "valid_f1" in history[0]:
        ax2 = ax.twinx()
        ax2.plot(ep, [h["valid_f1"] for h in history], "g--", label="valid frame F1")
        ax2.set_ylabel("frame F1")
        ax2.set_ylim(0, 1)
    ax.legend(loc="upper right")
    ax.set_title(out.name)
    fig.tight_layout()
    fig.savefig(out / LOSS_PLOT, dpi=100)
    plt.close(fig)


@dataclasses.dataclass
class Trainer:
    """Everything one training run holds: the model (and its DDP wrapper), the optimiser, the
    schedule, the chunks, and where the run stands (for the checkpoint)."""

    model: FrameModel
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    dist: Dist
    arrays: dict
    train_idx: np.ndarray
    valid_idx: np.ndarray
    per_rank: int
    use_amp: bool
    start_epoch: int = 1
    best: float = float("inf")
    bad_epochs: int = 0
    history: list = dataclasses.field(default_factory=list)
    head_kept: bool = True  # fine-tune: whether the output layer came from the starting model
    classes: tuple = ()  # the run's classes, in the output layer's order
    start: dict | None = None  # fine-tune: the validation figures before any step ("epoch 0")
    teacher: "Teacher | None" = None  # distillation: whose probabilities join the targets
    judge: "Teacher | None" = None  # the teacher when it gives every target: validation against it

    def state(self, epoch: int) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": epoch, "best": self.best,
                "bad_epochs": self.bad_epochs, "history": self.history, "start": self.start}


def fit(entry, cfg: Config, out_dir: str | Path, *, device: str = "cpu", resume: bool = False,
        threads: int = 1, log: Callable[[str], None] = print, record: dict | None = None,
        init: Start | None = None, dist: Dist | None = None, teacher: Teacher | None = None
        ) -> dict[str, Any]:
    """Train on a chunk cache entry and write the model directory.

    Parameters
    ----------
    entry : cache.Entry of stage "chunk"
    cfg : Config
    out_dir : model directory (created; an existing one only as :func:`claim_model_dir` allows)
    resume : continue from ``out_dir/checkpoint.pt`` if it exists
    threads : torch CPU threads (``-j``); small recurrent nets run fastest on one, and more
        threads than free cores slow them down many times
    record : extra fields for ``config.json`` (dataset description)
    init : fine-tune: start from this model (:func:`start_from`); its validation figures before
        any step are "epoch 0", kept if no epoch improves on them
    dist : the process group a caller joined already, having checked ``out_dir`` against
        ``init`` (:func:`train_dataset`); by default both happen here
    teacher : distil this model (:func:`teacher_from`, on ``device``; weight ``cfg.train.distill``)

    Returns
    -------
    metrics : dict of the best epoch
    """
    torch.set_num_threads(threads)
    out = Path(out_dir)
    if dist is None:
        check_not_init(out, init)
        dist = setup_distributed(device)
    alone = teacher is not None and cfg.train.distill == 1.0  # the labels play no part
    t = set_up(entry, cfg, dist, log, init, labels_used=not alone)
    t.teacher = teacher
    t.judge = t.teacher if alone else None
    # the old model's files go only now, when the new one is about to be written (train_dataset
    # checked the directory before chunking, with replace=False)
    claim_on_rank0(out, t.dist, resume=resume, replace=True, log=log)
    if resume:
        resume_from(t, out / CHECKPOINT, log)
    record = dict(record or {})
    if init is not None:
        record["init"] = init_record(init, t)
    if t.teacher is not None:
        record["teacher"] = {**t.teacher.record(cfg.train.distill), "validation": "teacher" if alone else "labels"}
    if init is not None and t.start_epoch == 1:  # every rank: early stopping starts from it
        t.start = {"epoch": 0, **{k: round(v, 6) for k, v in evaluate_chunks(
            t.model, t.arrays, t.valid_idx, batch_size=cfg.train.batch_size, device=t.dist.device,
            teacher=t.judge, mask=cfg.train.mask).items()}}
        t.best = t.start["valid_loss"]
    if t.dist.main:
        log(f"training {cfg.model.cell} {cfg.model.layers}x{cfg.model.hidden}"
            f"{' bidirectional' if cfg.model.bidirectional else ''} ({t.model.n_parameters():,} parameters) "
            f"on {len(t.train_idx)} chunks, validating on {len(t.valid_idx)}, {t.dist.world} process(es), "
            f"{t.dist.device}" + (f"; targets {1 - cfg.train.distill:g} x labels + {cfg.train.distill:g} x "
                                  f"{t.teacher.directory}'s probabilities" if t.teacher else ""))
        if t.start and t.start_epoch == 1:
            log(f"epoch   0  (from {init.directory})  valid {t.start['valid_loss']:.4f}"
                + (f"  F1 {t.start['valid_f1']:.3f}" if "valid_f1" in t.start else ""))
            _written(out, lambda: save_model(t.model, out, model_record(cfg, entry.meta, entry.key, record, t.start)))
    for epoch in range(t.start_epoch, cfg.train.epochs + 1):
        if t.bad_epochs >= cfg.train.patience:
            break
        row, improved = run_epoch(t, cfg, epoch)
        if t.dist.main:
            _log_epoch(log, row, improved)
            if improved:
                _written(out, lambda: save_model(t.model, out, model_record(cfg, entry.meta, entry.key, record, row)))
            _written(out, lambda: (_save_checkpoint(out / CHECKPOINT, t.state(epoch)), _write_history(out, t.history)))
    rows = ([t.start] if t.start else []) + t.history  # a tie keeps the start, as early stopping does
    best_row = min(rows, key=lambda r: r["valid_loss"]) if rows else {}
    if t.dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    if t.dist.main and not (out / WEIGHTS_FILE).is_file():
        raise PipelineError(f"{out}: training ended without a model (no epoch ran)")
    if t.dist.main and best_row.get("epoch") == 0:
        log(f"no epoch improved on {init.directory}'s validation loss {t.start['valid_loss']:.4f}: "
            f"{out} holds its weights as they were")
    if t.dist.main and cfg.model.task == "masked":
        log(f"{out} is a masked-frame (pretraining) model: it scores nothing itself, so it has no "
            f"model.onnx; train a classifier from it with train DATASET --init {out}")
    elif t.dist.main:  # the best epoch's network for ONNX Runtime, its sha256 beside the weights'
        _export_after_training(out, log)
        _written(out, lambda: record_outputs(out))
    return best_row


def _export_after_training(out: Path, log: Callable[[str], None]) -> None:
    """``model.onnx`` for the trained model; a failed export (the graph differs from torch, the
    ``onnx`` module missing) is a warning: the trained model stays usable with torch."""
    try:
        from .export import export_onnx

        export_onnx(out)
    except (ParameterError, ImportError) as exc:  # ModelError: a ParameterError
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log(f"WARNING: {out}/model.onnx not written ({why}): run python -m pipeline export {out}")


def _written(out: Path, write: Callable[[], Any]) -> None:
    """Run a write into the model directory, and record it; an OS error is one line naming it."""
    try:
        write()
        record_outputs(out)
    except OSError as exc:
        raise PipelineError(f"{out}: cannot write the model directory "
                            f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''})") from None


def check_not_init(out: Path, init: Start | None) -> None:
    """A fine-tune writes a new directory: its origin must stay there to be checked."""
    if init is not None and os.path.realpath(out) == os.path.realpath(init.directory):
        raise ParameterError(f"--out {out} is the --init model itself; a fine-tune writes a new model "
                             f"directory (choose another --out)")


def init_record(init: Start, t: "Trainer") -> dict[str, Any]:
    """What ``config.json`` says of a fine-tune's origin: the directory, its weights' sha256,
    its classes, whether the output layer was kept, how the network was widened (``{key: [from,
    to]}``), the learning rate, the figures before."""
    from .cache import file_digest

    weights = init.weights()
    grown = {k: [init.config["model"][k], getattr(init.cfg.model, k)] for k in GROW_MODEL_KEYS
             if init.config["model"][k] != getattr(init.cfg.model, k)}
    return {"directory": str(init.directory), "weights": weights.name, "sha256": file_digest(weights),
            **({} if init.task == "classify" else {"task": init.task}),
            "classes": init.classes, "output_layer": "kept" if t.head_kept else "replaced",
            **({} if t.head_kept else {"outputs_kept": [c for c in init.classes if c in t.classes]}),
            **({"widened": grown} if grown else {}),
            "lr": init.cfg.train.lr}


def chunk_levels(arrays, meta: dict, cfg: Config, stats: bool = False) -> dict[str, Any]:
    """``predict.level_db`` in training: each file heard at that level, as ``predict`` hears it
    (:func:`pipeline.features.leveled`): its rows rebuilt from its chunks, its gain measured on
    them. Returns each chunk's shift in the features' units and the floor, for :func:`_tensors`;
    with ``stats``, the training files' per-bin mean and std as heard (a new model's normalisation)."""
    from .chunks import reassemble
    from .features import Leveled, db_per_unit, level_floor, level_gain

    index, X = np.asarray(arrays["index"]), arrays["X"]
    shift = np.zeros(len(index), dtype=np.float32)
    n, total, squares = 0, 0.0, 0.0  # the training files' rows as heard (float64 sums)
    for f, info in enumerate(meta["files"]):
        S = reassemble(X, index, f, int(info["n_frames"]))
        gain = level_gain(S, cfg.features, cfg.predict.level_db, cfg.predict.level_range_db)
        shift[index[:, 0] == f] = gain / db_per_unit(cfg.features)
        if stats and info.get("split") != "valid":
            heard = Leveled(S, cfg.features, gain)[:].astype(np.float64)
            n, total, squares = n + len(heard), total + heard.sum(axis=0), squares + (heard ** 2).sum(axis=0)
    out = {"level_shift": shift, "level_floor": float(level_floor(cfg.features))}
    if stats and n:
        mean = total / n
        out["mean"] = mean.astype(np.float32)
        out["std"] = np.sqrt(np.maximum(squares / n - mean ** 2, 1e-10)).astype(np.float32)
    return out


def set_up(entry, cfg: Config, dist: Dist, log: Callable[[str], None], init: Start | None = None,
           labels_used: bool = True) -> Trainer:
    """Check the chunks, build the model (with the training split's normalisation, or ``init``'s
    weights and normalisation), the optimiser and the warm-up + cosine schedule; wrap the model
    in DDP under torchrun."""
    arrays, meta = entry.arrays, entry.meta
    train_idx, valid_idx = check_training_data(arrays, meta, cfg, labels_used=labels_used)
    if np.array_equal(train_idx, valid_idx) and dist.main:
        log("note: no validation files; validating on the training chunks")
    if cfg.predict.level_db and cfg.model.task == "classify":
        arrays = {**arrays, **chunk_levels(arrays, meta, cfg, stats=init is None)}
        if dist.main:
            from .features import db_per_unit

            gains = arrays["level_shift"] * db_per_unit(cfg.features)
            log(f"input level: each file heard at {cfg.predict.level_db:g} dB (predict.level_db), gains "
                f"{np.percentile(gains, 10):+.1f} / {np.median(gains):+.1f} / {np.percentile(gains, 90):+.1f} dB (p10 / median / p90 of the chunks)")
    torch.manual_seed(cfg.train.seed)
    model = FrameModel(cfg.model, n_features=meta["n_bins"], n_outputs=max(1, len(meta["classes"])))
    head_kept = True
    if init is None:
        model.set_normalization(np.array(arrays["mean"]), np.array(arrays["std"]))
    else:
        head_kept = load_start(model, init, meta["classes"])
    model.to(dist.device)
    net: torch.nn.Module = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[int(dist.device.split(":")[1])]
                                      if "cuda" in dist.device else None)
    tc = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    per_rank = len(train_idx) // dist.world
    if per_rank == 0:
        raise ParameterError(f"{len(train_idx)} training chunks cannot be shared by {dist.world} processes")
    steps_per_epoch = math.ceil(per_rank / tc.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(tc.epochs * steps_per_epoch, tc.warmup_epochs * steps_per_epoch))
    use_amp = tc.amp and dist.device.startswith("cuda")
    return Trainer(model, net, opt, sched, torch.amp.GradScaler("cuda", enabled=use_amp), dist, arrays,
                   train_idx, valid_idx, per_rank, use_amp, head_kept=head_kept,
                   classes=tuple(meta["classes"]))


def load_start(model: FrameModel, init: Start, classes: list[str]) -> bool:
    """Copy ``init``'s weights and normalisation into ``model`` (built for the run's classes):
    all of them when the classes are the model's, all but the output layer otherwise: that keeps
    its fresh, seeded initialisation, except the outputs of the classes the two share, which are
    copied (a speech model grows a music output and keeps what it knows of speech). A ``model``
    with more units or conv channels than ``init`` (:data:`GROW_MODEL_KEYS`) is ``init`` widened;
    one copy serves both (:func:`pipeline.nets.widen_into`, which is a plain copy at the same
    width). Returns whether the whole output layer was kept."""
    from .nets import load_model, widen_into

    start, _ = load_model(init.directory)
    if start.n_features != model.n_features:
        raise ParameterError(f"{init.directory}: its network reads {start.n_features} features per frame, "
                             f"these chunks have {model.n_features} (features.kind / n_mels / n_fft / n_mfcc differ)")
    kept = model.cfg.task != "classify" or list(classes) == init.classes
    shared = {i: init.classes.index(c) for i, c in enumerate(classes) if c in init.classes}
    widen_into(start, model, head_rows=None if kept else shared)
    return kept


def resume_from(t: Trainer, ckpt_path: Path, log: Callable[[str], None]) -> None:
    """Continue after the last finished epoch in ``ckpt_path`` (weights-only load), if there is one."""
    if not ckpt_path.is_file():
        if t.dist.main:
            log(f"no {ckpt_path} to resume from; starting afresh")
        return
    state = torch.load(ckpt_path, map_location=t.dist.device, weights_only=True)
    t.model.load_state_dict(state["model"])
    t.opt.load_state_dict(state["optimizer"])
    t.sched.load_state_dict(state["scheduler"])
    t.start_epoch, t.best, t.bad_epochs = state["epoch"] + 1, state["best"], state["bad_epochs"]
    t.history, t.start = state["history"], state.get("start")
    if t.dist.main:
        log(f"resuming from {ckpt_path} after epoch {state['epoch']}")


def spec_augment(x: torch.Tensor, mean: torch.Tensor, tc: TrainConfig) -> torch.Tensor:
    """SpecAugment masks on a batch ``(B, T, F)``: ``tc.freq_masks`` bands of up to
    ``tc.freq_mask_width`` bins and ``tc.time_masks`` spans of up to ``tc.time_mask_width`` frames
    per chunk, drawn independently for each chunk from torch's seeded generator, set to the
    training mean (what normalisation maps to 0). Labels are left as they are."""
    from torchaudio.functional import mask_along_axis_iid

    B, T, F = x.shape
    keep = torch.ones(B, 1, F, T, device=x.device)  # torchaudio's (..., freq, time)
    for _ in range(tc.freq_masks):
        keep = mask_along_axis_iid(keep, tc.freq_mask_width, 0.0, axis=2)
    for _ in range(tc.time_masks):
        keep = mask_along_axis_iid(keep, tc.time_mask_width, 0.0, axis=3)
    return torch.where(keep.squeeze(1).transpose(1, 2) > 0, x, mean.to(x.dtype).expand_as(x))


def random_gain(x: torch.Tensor, gain_db: float, fc) -> torch.Tensor:
    """Each chunk of a batch ``(B, T, F)`` of log features as if its audio were ``g`` dB louder,
    ``g`` drawn uniformly in ``[-gain_db, gain_db]`` per chunk from torch's seeded generator.
    ``logmel`` frames are in dB (``+g``), Kaldi ``fbank`` ones in nepers (``+g ln(10) / 10``);
    frames at the floor ``log(amin)`` (digital silence, which no gain moves) stay at the floor,
    and none is shifted below it."""
    from .features import LEVEL_KINDS, db_per_unit, level_floor

    if fc.kind not in LEVEL_KINDS:
        raise ParameterError(f"train.gain_db needs log features (features.kind logmel or fbank), "
                             f"not {fc.kind!r}")
    g = (torch.rand(x.shape[0], 1, 1, device=x.device) * 2.0 - 1.0) * (gain_db / db_per_unit(fc))
    return shift_rows(x, g, level_floor(fc))


def train_step(t: Trainer, batch: np.ndarray, cfg: Config) -> tuple[float, int]:
    """One optimiser step on a batch of chunk indices; returns (mean loss, valid frames)."""
    x, y, m, raw = _tensors(t.arrays, batch, t.model, t.dist.device, raw=True)
    tc = cfg.train
    if t.teacher is not None:  # before SpecAugment: the teacher hears the chunk as it is
        y = t.teacher.targets(raw, y, m, tc.distill)
    frames = int(m.sum())  # the audio read (a masked-frame model is scored on part of it)
    if cfg.model.task == "masked":  # rebuild what is hidden, and only that
        m = hidden_frames(t.model, m, tc.mask)
        x = hide(x, m, t.model)
    if cfg.model.task == "classify" and tc.gain_db > 0:
        x = random_gain(x, tc.gain_db, cfg.features)
    if cfg.model.task == "classify" and (tc.freq_masks or tc.time_masks):
        x = spec_augment(x, t.model.mean, tc)
    with torch.autocast("cuda", dtype=torch.float16, enabled=t.use_amp):
        logits, _ = t.net(x)
        loss = t.model.loss(logits.float(), y, m)
    t.opt.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    if cfg.train.grad_clip > 0:
        t.scaler.unscale_(t.opt)
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), cfg.train.grad_clip)
    t.scaler.step(t.opt)
    t.scaler.update()
    t.sched.step()
    return loss.item(), frames


def run_epoch(t: Trainer, cfg: Config, epoch: int) -> tuple[dict[str, Any], bool]:
    """Train one epoch on this rank's share (a seeded permutation), validate, update early
    stopping; returns the history row and whether the validation loss improved."""
    tc = cfg.train
    t.net.train()
    perm = np.random.default_rng([tc.seed, epoch]).permutation(t.train_idx)[t.dist.rank::t.dist.world][: t.per_rank]
    t0, total, frames = time.perf_counter(), 0.0, 0
    for b in _batches(perm, tc.batch_size):
        loss, n = train_step(t, b, cfg)
        total += loss * n
        frames += n
    seconds = time.perf_counter() - t0
    metrics = evaluate_chunks(t.model, t.arrays, t.valid_idx, batch_size=tc.batch_size, device=t.dist.device,
                              teacher=t.judge, mask=tc.mask)
    row = {"epoch": epoch, "train_loss": round(total / max(frames, 1), 6),
           **{k: round(v, 6) for k, v in metrics.items()}, "lr": t.opt.param_groups[0]["lr"],
           "frames_per_s": round(frames * t.dist.world / seconds), "seconds": round(seconds, 2)}
    t.history.append(row)
    improved = metrics["valid_loss"] < t.best - 1e-6
    if improved:
        t.best, t.bad_epochs = metrics["valid_loss"], 0
    else:
        t.bad_epochs += 1
    return row, improved


def _log_epoch(log: Callable[[str], None], row: dict, improved: bool) -> None:
    log("epoch {epoch:3d}  train {train_loss:.4f}  valid {valid_loss:.4f}".format(**row)
        + (f"  F1 {row['valid_f1']:.3f}" if "valid_f1" in row else
           f"  (mean frame {row['valid_mean_frame_l1']:.4f})" if "valid_mean_frame_l1" in row else
           f"  (repeat-last {row['valid_baseline_l1']:.4f})")
        + f"  {row['frames_per_s']:,} frames/s" + ("  *" if improved else ""))


def model_record(cfg: Config, meta: dict, chunk_key: str, record: dict, metrics: dict) -> dict[str, Any]:
    """Everything ``config.json`` holds besides the network: what predict needs to rebuild inputs."""
    return {
        **record,
        "task": cfg.model.task,
        "classes": meta["classes"] or ["score"],
        "fps": meta["fps"],
        "load": dataclasses.asdict(cfg.load),
        "features": dataclasses.asdict(cfg.features),
        "chunk": dataclasses.asdict(cfg.chunk),
        "train": {k: v for k, v in dataclasses.asdict(cfg.train).items()  # the keys of what the run did
                  if (k != "distill" or "teacher" in record) and (not k.startswith("mask_") or cfg.model.task == "masked")},
        "predict": dataclasses.asdict(cfg.predict),
        "stage_versions": {name: info.version for name, info in STAGES.items()},
        "training_data": {"chunk_key": chunk_key, "features_keys": meta["inputs"][:-1],
                          "labels_sha256": meta["inputs"][-1], "files": len(meta["files"]),
                          "hours": round(meta["duration"] / 3600, 4)},
        "metrics": metrics,
    }


# ------------------------------------------------------------------ the whole job


def train_dataset(dataset_spec: str | Path, out_dir: str | Path, cfg: Config, settings, *,
                  valid_spec: str | Path | None = None, init: str | Path | None = None, resume: bool = False,
                  explicit: dict[str, str] | None = None, log: Callable[[str], None] = print,
                  teacher: str | Path | None = None):
    """``train DATASET --out DIR [--valid V] [--init MODEL_DIR] [--teacher MODEL_DIR] [--resume]``:
    check ``--out`` (before any work), chunk the dataset (cached) and fit; with ``init``, fine-tune
    that model (:func:`start_from`, :func:`match_classes`); with ``teacher``, distil that model
    (:class:`Teacher`, checked here before any chunking). Under torchrun only rank 0 logs.

    Returns
    -------
    best : dict of the best epoch's figures
    report : runner.Report of the features run (its ``failed`` list names the files left out)
    """
    from .chunks import ensure_chunks
    from .dataset import load_dataset

    dist = setup_distributed(settings.device)
    if not dist.main:
        log = _silent
    start = start_from(init, cfg, explicit, log=log) if init is not None else None
    ds = load_dataset(dataset_spec)
    if start:
        start = classifier_from_pretrained(start, ds, explicit, log)
    cfg = start.cfg if start else cfg
    if teacher is not None and cfg.model.task != "classify":
        raise ParameterError(f"--teacher {teacher}: a teacher's probabilities are targets for a classifier, "
                             f"and this run's model.task is {cfg.model.task!r}")
    if teacher is not None and not ds.classes:  # unlabelled audio: the teacher gives every target
        if cfg.train.distill != 1.0:
            raise ParameterError(f"{dataset_spec}: no labelled events; with --teacher, --set train.distill=1 "
                                 f"learns from the teacher's probabilities alone")
        ds = dataclasses.replace(ds, classes=tuple(start.classes if start else config_classes(
            read_model_config(teacher), f"{teacher}/{CONFIG_FILE}")))
    kept = True
    if start:
        ds, kept = match_classes(ds, start, log)
    valid = load_dataset(valid_spec, classes=list(ds.classes)) if valid_spec else None
    check_not_init(Path(out_dir), start)
    if teacher is None and "train.distill" in (explicit or {}):
        raise ParameterError("train.distill is the teacher's weight in the targets: it needs --teacher DIR")
    taught = None
    if teacher is not None:  # loaded and checked once, before any chunking
        if os.path.realpath(out_dir) == os.path.realpath(teacher):
            raise ParameterError(f"--out {out_dir} is the --teacher model itself; the run writes a new model "
                                 f"directory (choose another --out)")
        taught = teacher_from(teacher, cfg, list(ds.classes), dist.device)
    claim_on_rank0(out_dir, dist, resume=resume, replace=False, log=log)
    entry, report = ensure_chunks(ds, cfg, settings, valid=valid, log=log)
    log(report.summary())
    record: dict[str, Any] = {"dataset": str(dataset_spec),
                              "valid_dataset": None if valid_spec is None else str(valid_spec)}
    if start and kept and start.config.get("predict_per_class"):  # its tuned post-processing, per class
        record["predict_per_class"] = start.config["predict_per_class"]
    best = fit(entry, cfg, out_dir, device=settings.device, resume=resume,
               threads=settings.jobs, log=log, record=record, init=start, dist=dist, teacher=taught)
    return best, report


def _silent(msg: str) -> None:
    pass
