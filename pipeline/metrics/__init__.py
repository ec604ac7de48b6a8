"""Metrics of predicted segments and frame scores against reference labels (being split by family;
everything lives in :mod:`pipeline.metrics.dataset` for now)."""
_NAMES = ("EPS", "PSDS1", "PSDS2", "HIST_EDGES", "PSDS_CELLS", "frame_metrics", "roc_auc", "curves",
          "average_precision", "segment_metrics", "event_metrics", "detection_error",
          "boundary_pairs", "boundary_summary", "score_timestamps", "psds", "evaluate_files",
          "bootstrap_ci")


def __getattr__(name: str):
    if name in _NAMES:
        from . import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'pipeline.metrics' has no attribute {name!r}")
