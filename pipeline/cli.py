"""Command line: ``python -m pipeline [OPTIONS] COMMAND ...`` (also ``cli.py`` and ``pipeline``).

The group builds one :class:`App` (config + run settings) into ``ctx.obj``; commands are thin:
parse, call the library, report. Heavy modules (numpy, torch, librosa) are imported inside the
commands so that ``--help`` is instant. Exit codes: 0 all good, 1 some inputs failed (each
named, the rest finished), 2 usage errors (bad options, unknown config keys, bad values, a
broken model directory, an unwritable --out), 130 interrupted (Ctrl-C). Every expected error is
one line; ``-v`` adds the traceback.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace

import click

from .config import ENGINES, Config, build_config
from .errors import ParameterError, PipelineError
from .progress import plural
from .stage import STAGES, file_stages

STAGE_NAMES = tuple(STAGES)
FILE_STAGE_NAMES = tuple(file_stages(context_free=False))
CTX = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


class ModelDirType(click.ParamType):
    """``--model``: a model directory, or the name of a shipped model (``vad``, ``vad-stream``);
    an existing path wins over a name."""

    name = "MODEL_DIR"

    def convert(self, value, param, ctx):
        from .modeldir import resolve_model_dir, shipped_models

        path = resolve_model_dir(value)
        if not path.is_dir():
            names = ", ".join(shipped_models()) or "none installed"
            self.fail(f"{value!r} is neither a model directory nor a shipped model ({names})", param, ctx)
        return str(path)


MODEL_DIR = ModelDirType()


@dataclass
class App:
    """What every command gets: the layered config and the run settings."""

    config: Config
    settings: "object"  # runner.Settings (imported lazily: it is cheap, but keeps the path clear)
    run: dict
    config_file: str | None
    given: frozenset = frozenset()  # "section.key" names that --set gave
    shard: tuple | None = None  # (i, n) of --shard
    t0: float = 0.0  # when the command started (the summary counts the whole command)
    explicit: dict = field(default_factory=dict)  # "section.key" -> where the user gave it (file or --set)

    def echo(self, msg: str = "", *, err: bool = False) -> None:
        if self.settings.verbosity >= 0 or err:
            click.echo(msg, err=err)


def _fail_usage(msg: str) -> None:
    click.echo(f"Error: {msg}", err=True)
    sys.exit(2)


@click.group(context_settings=CTX)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML config file; sections are the stage names.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache directory [default: $PIPELINE_CACHE_DIR or .pipeline-cache].")
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE",
              help="Override one config value (repeatable); wins over the config file.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, help="Worker processes for per-file stages.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
              help="Where features and networks run (cuda: torch).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto",
              help="The network's engine: onnx (ONNX Runtime, no torch), torch; auto: onnx where the "
                   "model has model.onnx and --device is cpu.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              help="local worker processes, or a Dask cluster.")
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786); without it a local cluster.")
@click.option("--shard", default=None, metavar="I/N",
              help="Process only the I-th of N disjoint shares of the inputs (1 <= I <= N), e.g. a SLURM array task.")
@click.option("-v", "--verbose", count=True, help="Show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final summary.")
@click.version_option(package_name="audio-seq-pipeline")
@click.pass_context
def cli(ctx, config_file, cache_dir, overrides, jobs, device, engine, executor, scheduler, shard, verbose, quiet):
    """Cached audio sequence pipeline: decode, spectrograms, chunks, recurrent frame models."""
    import time

    from .inputs import parse_shard
    from .runner import Settings

    t0 = time.perf_counter()
    try:
        shard = parse_shard(shard) if shard else None
    except ParameterError as exc:
        _fail_usage(str(exc))

    try:
        explicit: dict[str, str] = {}
        config, extra, given = build_config(config_file, overrides, sources=explicit)
    except ParameterError as exc:
        _fail_usage(str(exc))
    run = dict(extra.get("run", {}))
    settings = Settings(cache_dir=cache_dir or run.pop("cache_dir", None), jobs=jobs, device=device,
                        engine=engine, executor=executor, scheduler=scheduler, verbosity=-1 if quiet else verbose)
    ctx.obj = App(config, settings, run, config_file, given, shard, t0, explicit)


def resolve_device(app: App) -> App:
    """Turn ``--device auto`` into cuda or cpu, and check that ``cuda`` exists (imports torch, so
    only where a command needs it)."""
    from .engine import resolve_device as resolve

    app.settings = replace(app.settings, device=resolve(app.settings.device))
    return app


def _model_config(app: App, model_dir: str) -> Config:
    """The run's config as the model sees it: its load and features, its post-processing."""
    from .jobs import open_model

    return open_model(model_dir, app.config, app.settings, app.given)[1]


def report_and_exit(app: App, report) -> None:
    """Name each failure on stderr, print the summary, exit 1 if anything failed."""
    for note in report.notes:
        click.echo(f"REPAIRED {note}", err=True)
    for r in report.failed:
        click.echo(f"FAILED {r.error}", err=True)
    import time

    click.echo(report.summary(wall=time.perf_counter() - app.t0),
               err=bool(report.failed) and app.settings.verbosity < 0)
    if report.failed:
        sys.exit(1)


def _run_stage(app: App, inputs, upto: str) -> None:
    from .inputs import expand_inputs
    from .runner import run_files

    sources, problems = expand_inputs(inputs, shard=app.shard)
    if not sources and not problems and not app.shard:
        _fail_usage("no inputs given")
    report = run_files(sources, app.config, app.settings, upto=upto, problems=problems)
    report_and_exit(app, report)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.pass_obj
def load(app: App, inputs):
    """Decode and resample INPUTS (files, folders, globs, manifests) into the cache."""
    _run_stage(app, inputs, "load")


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.pass_obj
def features(app: App, inputs):
    """Spectrograms of INPUTS into the cache (runs load as needed)."""
    _run_stage(resolve_device(app), inputs, "features")


# ----------------------------------------------------------------------------- datasets


def _log(app: App):
    return lambda msg: app.echo(msg, err=msg.startswith(("FAILED", "WARNING")))


@cli.command()
@click.argument("dataset")
@click.option("--valid", "valid_spec", default=None, help="A second DATASET used as the validation split.")
@click.pass_obj
def chunk(app: App, dataset, valid_spec):
    """Fixed chunks + frame targets of DATASET (cached; runs features as needed)."""
    from .chunks import ensure_chunks
    from .dataset import load_dataset

    ds = load_dataset(dataset)
    valid = load_dataset(valid_spec, classes=list(ds.classes)) if valid_spec else None
    entry, report = ensure_chunks(ds, app.config, app.settings, valid=valid, log=_log(app))
    split = entry["split"]
    app.echo(f"chunk {entry.key[:16]}: {plural(len(split), 'chunk')} of {app.config.chunk.frames} frames "
             f"({int((split == 0).sum())} train, {int((split == 1).sum())} valid) from "
             f"{plural(len(entry.meta['files']), 'file')}, classes {entry.meta['classes'] or '(none)'}")
    if report.failed:
        sys.exit(1)


@cli.command()
@click.argument("dataset")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (a new one, or one this pipeline wrote and nobody changed).")
@click.option("--valid", "valid_spec", default=None, help="A second DATASET used as the validation split.")
@click.option("--init", "init_dir", default=None, type=MODEL_DIR,
              help="Fine-tune this model: its weights and settings, a tenth of its learning rate "
                   "(a masked-frame pretraining model: a classifier on its weights, at its learning rate).")
@click.option("--teacher", "teacher_dir", default=None, type=MODEL_DIR,
              help="Distil this classifier: the targets mix its probabilities into the labels "
                   "(weight train.distill, default 0.5); it must read the same features.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt after an interruption.")
@click.pass_obj
def train(app: App, dataset, out_dir, valid_spec, init_dir, teacher_dir, resume):
    """Fit a frame model on DATASET and write it to --out (works under torchrun too); with --init,
    fine-tune MODEL_DIR on it (its features, chunking, network and post-processing); with
    --teacher, learn from another model's probabilities as well as from the labels."""
    import os

    from .engine import require_torch

    require_torch("train")
    from .train import train_dataset

    if int(os.environ.get("RANK", "0")) > 0:
        app.settings = replace(app.settings, verbosity=-1)
    app = resolve_device(app)
    try:
        best, report = train_dataset(dataset, out_dir, app.config, app.settings, valid_spec=valid_spec,
                                     init=init_dir, resume=resume, explicit=app.explicit, log=_log(app),
                                     teacher=teacher_dir)
    except KeyboardInterrupt:
        if not os.path.isfile(os.path.join(out_dir, "checkpoint.pt")):
            raise  # before the first epoch: main's line (cache entries kept)
        click.echo(f"interrupted: the last finished epoch is in {out_dir}/checkpoint.pt; "
                   f"continue with --resume", err=True)
        sys.exit(130)
    shown = ", ".join(f"{k} {v}" for k, v in best.items() if k in ("epoch", "valid_loss", "valid_f1",
                                                                      "valid_baseline_l1", "valid_mean_frame_l1"))
    app.echo(f"model written to {out_dir} (best epoch: {shown})")
    if report.failed:
        sys.exit(1)


@cli.command()
@click.argument("model_dir", type=MODEL_DIR)
@click.pass_obj
def export(app: App, model_dir):
    """Add model.onnx to MODEL_DIR (checked against torch; its sha256 recorded in config.json), so
    that inference runs on ONNX Runtime without torch."""
    from .engine import require_torch

    require_torch("export")
    from .export import export_onnx

    path = export_onnx(model_dir)
    app.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


# ----------------------------------------------------------------------------- predict / evaluate


def _predict(app: App, inputs, model_dir, out_dir, formats: str, plot: bool, ref_spec=None):
    from .jobs import predict_to_dir
    from .outputs import parse_formats

    reference = None
    if ref_spec:
        from .dataset import load_dataset

        reference = {i.name: list(i.segments) for i in load_dataset(ref_spec).items}
    report, _ = predict_to_dir(inputs, model_dir, out_dir, app.config, resolve_device(app).settings,
                               given=app.given, formats=parse_formats(formats), plot=plot, reference=reference,
                               shard=app.shard)
    return report


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_dir", required=True, type=MODEL_DIR)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--format", "formats", default="", help="Extra formats beside .tsv: rttm,audacity,json,textgrid,npy.")
@click.option("--plot", is_flag=True, help="Also a PNG per file (spectrogram, scores, segments).")
@click.option("--ref", "ref_spec", default=None, help="Reference DATASET drawn in the plots.")
@click.pass_obj
def predict(app: App, inputs, model_dir, out_dir, formats, plot, ref_spec):
    """Frame scores and segments for INPUTS with a trained model, written under --out."""
    report_and_exit(app, _predict(app, inputs, model_dir, out_dir, formats, plot, ref_spec))


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_dir", required=True, type=MODEL_DIR)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--ref", "ref_spec", default=None, help="Reference DATASET drawn under the predictions.")
@click.pass_obj
def plot(app: App, inputs, model_dir, out_dir, ref_spec):
    """PNG per file: spectrogram, frame scores, predicted (and reference) segments (+ the .tsv)."""
    report_and_exit(app, _predict(app, inputs, model_dir, out_dir, "", True, ref_spec))


@cli.command()
@click.option("--pred", "pred_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="A predict --out folder.")
@click.option("--ref", "ref_spec", required=True,
              help="References: a DATASET, a folder of label files (.tsv .rttm .txt .json .TextGrid), "
                   "one RTTM or DCASE metadata TSV for many files.")
@click.option("--tier", default=None, help="TextGrid tier to read [default: every interval tier].")
@click.option("--uem", type=click.Path(exists=True, dir_okay=False), default=None,
              help="UEM file: the scored region of each file (also its duration).")
@click.option("--json", "as_json", is_flag=True, help="The whole report as JSON.")
@click.option("--per-file", is_flag=True, help="Add a line per file to the table.")
@click.option("--ci", is_flag=True, help="95% per-file bootstrap intervals of frame F1 and DER.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write a self-contained HTML page to DIR/index.html.")
@click.option("--collar", default=0.2, type=float, show_default=True, help="Event-based onset/offset collar (s).")
@click.option("--psds/--no-psds", default=True, show_default=True,
              help="AUC, AP and PSDS from the frame scores (cost grows with frames x distinct scores).")
@click.pass_obj
def evaluate(app: App, pred_dir, ref_spec, tier, uem, as_json, per_file, ci, report_dir, collar, psds):
    """Frame, segment (1 s), event (collar), detection-error, boundary and threshold-free metrics
    of predictions against reference labels."""
    import json

    from .errors import TierError
    from .evaluate import evaluate_dir, format_per_file, format_table

    try:
        report = evaluate_dir(pred_dir, ref_spec, collar=collar, tier=tier, uem=uem, ci=ci,
                              threshold_free=psds, report_dir=report_dir)
    except TierError as exc:  # a tier the references lack is the option's fault, not the file's
        raise ParameterError(f"--tier {tier}: {exc}") from None
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(format_table(report))
        if per_file:
            click.echo(format_per_file(report))
        if report_dir:
            click.echo(f"report in {report['settings']['report']}")
    missing = report.get("missing") or []
    if missing:
        click.echo(f"FAILED missing predictions for {len(missing)} of {len(report['per_file'])} file(s) "
                   f"(counted as nothing predicted): {', '.join(missing)}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("dataset")
@click.option("--model", "model_dir", required=True, type=MODEL_DIR)
@click.option("--metric", type=click.Choice(["frame_f1", "event_f1", "psds1", "detection_error_rate", "segment_f1"]),
              default="frame_f1", show_default=True, help="Objective of each class's search.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="New model directory [default: MODEL_DIR-tuned; for a shipped model named, NAME-tuned here].")
@click.option("--in-place", is_flag=True, help="Overwrite MODEL_DIR's config.json instead (old settings kept).")
@click.pass_obj
def tune(app: App, dataset, model_dir, metric, out_dir, in_place):
    """Search a threshold and a median filter per class on a labelled DATASET (as the DCASE
    baselines do) and write them into a new model directory (or, --in-place, the model's)."""
    from .tune import tune_model

    if in_place and out_dir:
        _fail_usage("--out and --in-place exclude each other")
    res = tune_model(model_dir, dataset, app.config, resolve_device(app).settings, metric=metric,
                     overrides=app.given, log=_log(app), out_dir=out_dir, in_place=in_place)
    app.echo(f"{metric}: {res['before']:.4f} -> {res['after']:.4f} on {plural(res['files'], 'file')}; "
             f"written to {res['config']} (old settings kept in predict_history)")


# ----------------------------------------------------------------------------- run

RUN_DEFAULTS = {"inputs": ["data/samples"], "model": "models/vad", "out": "out", "ref": "data/samples",
                "formats": "npy", "plot": True, "to": "evaluate"}
RUN_STAGES = ("load", "features", "predict", "evaluate")


@cli.command()
@click.option("--to", "to", type=click.Choice(RUN_STAGES), default=None,
              help="Last stage to run [default: the config's run.to, else evaluate].")
@click.pass_obj
def run(app: App, to):
    """The whole graph on the config's [run] table; without one, find the speech in the sample audio
    (data/samples) with the shipped model (models/vad), write segments and plots to out/ and
    evaluate them against the samples' reference labels."""
    unknown = set(app.run) - set(RUN_DEFAULTS)
    if unknown:
        _fail_usage(f"{app.config_file}: unknown key 'run.{sorted(unknown)[0]}' (known: {', '.join(RUN_DEFAULTS)})")
    for key, value in app.run.items():
        want = type(RUN_DEFAULTS[key])
        ok = isinstance(value, want) or (key == "inputs" and isinstance(value, str))
        if key == "inputs" and isinstance(value, list):
            ok = bool(value) and all(isinstance(v, str) for v in value)
        if not ok:
            _fail_usage(f"{app.config_file}: run.{key}={value!r} must be "
                        f"{'a path or a list of paths' if key == 'inputs' else 'a ' + want.__name__}")
    t = {**RUN_DEFAULTS, **app.run}
    to = to or t["to"]
    if to not in RUN_STAGES:
        _fail_usage(f"run.to={to!r} must be one of {', '.join(RUN_STAGES)}")
    inputs = [t["inputs"]] if isinstance(t["inputs"], str) else list(t["inputs"])
    for key, paths in (("inputs", inputs), ("ref", [t["ref"]] if t["ref"] else [])):
        for path in paths:  # the defaults are relative to the repository: say what is missing where
            if not any(c in path for c in "*?[") and not os.path.exists(path):
                given = (f"{app.config_file}'s [run] table" if key in app.run
                         else "the default, relative to the repository")
                _fail_usage(f"run.{key}: {path} not found in {os.getcwd()} ({given}); run it from the repository "
                            f"root, or set run.{key} in a --config file's [run] table")
    if to in ("load", "features"):
        if t["model"]:  # build exactly what the model will read, not the defaults
            app = replace(app, config=_model_config(app, t["model"]))
        return _run_stage(resolve_device(app) if to != "load" else app, inputs, to)
    report = _predict(app, inputs, t["model"], t["out"], t["formats"], bool(t["plot"]), t["ref"] or None)
    if to == "evaluate" and t["ref"]:
        from .evaluate import evaluate_dir, format_table

        app.echo(format_table(evaluate_dir(t["out"], t["ref"])))
    app.echo(f"segments{' and plots' if t['plot'] else ''} in {t['out']}/")
    report_and_exit(app, report)


# ----------------------------------------------------------------------------- cache


@cli.group()
def cache():
    """Inspect and maintain the cache."""


@cache.command("ls")
@click.option("-l", "--long", "long_", is_flag=True, help="One line per entry.")
@click.pass_obj
def cache_ls(app: App, long_):
    """Entries and sizes per stage."""
    from .maintenance import listing

    click.echo(listing(app.settings.cache(), long=long_))


def _status_model(app: App, model_dir: str | None) -> tuple[str | None, str]:
    """The model ``cache status`` judges by, and why: ``--model``; else the [run] table's model;
    else, with no --config and no load/features setting given, run's default model (what ``make
    run`` used) where it exists; else none (the config's own settings)."""
    if model_dir:
        return model_dir, "--model"
    if app.run.get("model"):
        return app.run["model"], f"the [run] table of {app.config_file}"
    if "model" not in app.run and app.config_file is None and not any(
            g.startswith(("load.", "features.")) for g in app.given) and os.path.isdir(RUN_DEFAULTS["model"]):
        return RUN_DEFAULTS["model"], "the model `run` uses by default, as `make run` does"
    return None, ""


@cache.command("status")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_dir", default=None, type=MODEL_DIR,
              help="Judge by this model's settings (its features; with --stage predict, its scores) "
                   "[default: the [run] table's model, else run's default model when no --config or "
                   "--set load/features is given and it exists here].")
@click.option("--stage", "upto", type=click.Choice(FILE_STAGE_NAMES), default=None,
              help="Last stage to check [default: predict with a model, else features].")
@click.pass_obj
def cache_status(app: App, inputs, model_dir, upto):
    """What the current config (or a model's) would recompute for INPUTS, and why; the first line
    says which settings were checked."""
    from .inputs import expand_inputs
    from .maintenance import status
    from .stage import file_stages

    model_dir, why = _status_model(app, model_dir)
    upto = upto or ("predict" if model_dir else "features")
    if model_dir:
        click.echo(f"checked: the settings of model {model_dir} ({why}), up to {upto}")
    else:
        sets = f" with --set {', '.join(sorted(app.given))}" if app.given else ""
        click.echo(f"checked: the settings of {app.config_file or 'the defaults (no --config)'}{sets}, "
                   f"up to {upto}; --model DIR judges by a model's")
    context, cfg = None, app.config
    if model_dir:
        from .jobs import open_model

        scoring, cfg = open_model(model_dir, app.config, app.settings, app.given)
        context = scoring.context
    elif upto not in file_stages(context_free=True):
        _fail_usage(f"cache status --stage {upto} needs --model (its keys depend on a model)")
    sources, problems = expand_inputs(inputs)
    for p in problems:
        click.echo(f"FAILED {p}", err=True)
    click.echo(status(app.settings.cache(), cfg, sources, upto=upto, context=context))


@cache.command("verify")
@click.pass_obj
def cache_verify(app: App):
    """Re-check every entry's arrays against its checksums; exit 1 on any problem."""
    from .maintenance import verify_all

    problems, n = verify_all(app.settings.cache())
    for p in problems:
        click.echo(f"BAD {p}", err=True)
    click.echo(f"verified {plural(n, 'entry', 'entries')}: {plural(len(problems), 'problem')}")
    if problems:
        sys.exit(1)


def _parse_size(text: str | None) -> int | None:
    if text is None:
        return None
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().rstrip("ib").rstrip("b")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units and not t[-1].isdigit() else (t, "")
    try:
        return int(float(num) * units[unit])
    except ValueError:
        _fail_usage(f"--max-size {text!r} must be a size like 500M or 10G")


@cache.command("gc")
@click.option("--max-size", default=None, help="Then drop least recently used entries until the cache fits (e.g. 10G).")
@click.option("--dry-run", is_flag=True, help="Only say what would go.")
@click.pass_obj
def cache_gc(app: App, max_size, dry_run):
    """Remove unreachable entries (sources gone or changed), leftovers of killed runs, and LRU entries beyond --max-size."""
    from .maintenance import gc

    click.echo(gc(app.settings.cache(), max_bytes=_parse_size(max_size), dry_run=dry_run))


@cache.command("clear")
@click.option("--stage", default=None, type=click.Choice(STAGE_NAMES), help="Only this stage.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
@click.pass_obj
def cache_clear(app: App, stage, yes):
    """Remove entries (all, or one stage's)."""
    c = app.settings.cache()
    if not yes and sys.stdin.isatty():
        click.confirm(f"Remove {'all' if not stage else stage} entries under {c.root}?", abort=True)
    n = c.clear(stage)
    click.echo(f"removed {plural(n, 'entry', 'entries')} from {c.root}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group, turning errors into one line and an exit code (0 all good, 1
    some inputs failed, 2 usage and configuration, 130 interrupted); ``-v`` re-raises."""
    args = sys.argv[1:] if argv is None else list(argv)
    verbose = any(a == "--verbose" or (len(a) > 1 and a[0] == "-" and set(a[1:]) == {"v"}) for a in args)
    try:
        cli.main(args=args, prog_name="pipeline", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("interrupted (Ctrl-C): finished cache entries are kept, nothing half-written", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)  # a declined confirmation
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # one line; -v shows the traceback
        if verbose:
            raise
        if isinstance(exc, PipelineError):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2 if isinstance(exc, ParameterError) else 1)
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc} (a bug: rerun with -v for the traceback)",
                   err=True)
        sys.exit(1)


@cli.command()
@click.option("--model", "model_dir", required=True, type=MODEL_DIR,
              help="A unidirectional model directory (models/vad-stream).")
@click.option("--rate", type=click.IntRange(min=1), default=None,
              help="Read raw 16-bit little-endian mono PCM at this rate (Hz) instead of a WAV stream.")
@click.option("--header/--no-header", default=True, help="Print predict's .tsv header row first.")
@click.pass_obj
def stream(app: App, model_dir, rate, header):
    """Audio on standard input -> each segment on standard output (onset, offset, label; TSV) as soon
    as it is final: the segments predict writes for the same audio, while it arrives. -v prints the
    latency that the model's post-processing implies."""
    import time

    from .stream import mono_blocks, open_streamer

    app = resolve_device(app)
    streamer = open_streamer(model_dir, app.config, app.given, device=app.settings.device,
                             engine=app.settings.engine, threads=app.settings.jobs)
    src = sys.stdin.buffer  # read1: whatever has arrived, so segments follow the audio closely
    sr, blocks = mono_blocks(getattr(src, "read1", src.read), rate=rate, channel=streamer.cfg.load.channel,
                             warn=lambda msg: click.echo(f"WARNING {msg}", err=True))  # exit 0, as predict
    if app.settings.verbosity > 0:
        extra = "" if sr == streamer.sr else f", plus the {sr} -> {streamer.sr} Hz resampler's delay"
        click.echo(f"stream: {model_dir}, {streamer.fps:g} frames/s; each segment is printed at most "
                   f"{streamer.latency_seconds():.3f} s of audio after its end (before pad_offset){extra}", err=True)
    seen = [0]

    def counted(bs):
        for b in bs:
            seen[0] += len(b)
            yield b

    if header:
        click.echo("onset\toffset\tevent_label")
    t0, n = time.perf_counter(), 0
    for seg in streamer.segments(counted(blocks), sr=sr):
        click.echo(f"{seg.onset:.3f}\t{seg.offset:.3f}\t{seg.label}")  # click.echo flushes
        n += 1
    if app.settings.verbosity > 0:
        seconds, wall = seen[0] / sr, time.perf_counter() - t0
        click.echo(f"stream: {seconds:.2f} s of audio, {plural(n, 'segment')}, "
                   f"{seconds / max(wall, 1e-9):,.0f}x real time "
                   f"(reading included)", err=True)
