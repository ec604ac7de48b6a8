"""Metrics of predicted segments and frame scores against reference labels: pure functions over
arrays and segments (no file system; :mod:`pipeline.evaluate` reads the folders), one module per
family:

- :mod:`~pipeline.metrics.frame`: segments rasterised at ``fps`` (frame ``i`` active iff
  ``onset <= i / fps < offset``), precision / recall / F1 per class and overall; from the frame
  scores, ROC AUC and average precision (PR AUC), and the curves.
- :mod:`~pipeline.metrics.events`: sed_eval's segment-based and event-based metrics (event
  matching one-to-one and maximum).
- :mod:`~pipeline.metrics.detection`: pyannote.metrics' detection error rate (no collar) per
  class, and boundaries: onset and offset errors of each reference event and the predicted event
  of its class it overlaps most. With two or more classes the overall detection error sums each
  class's false alarm, miss and reference time (pyannote.metrics would merge the labels, so
  speech taken for music would count as found).
- :mod:`~pipeline.metrics.psds_roc`: PSDS, intersection-based, on every operating point, as
  ``sed_scores_eval``.
- :mod:`~pipeline.metrics.dataset`: :func:`evaluate_files` composes them over a dataset, each
  view summed over files before rates are taken (micro averages), with per-file bootstrap
  intervals; :mod:`~pipeline.metrics.counts` holds the counts and checks they share.

Deliberate differences from sed_eval 0.2.1, and what they do to the numbers:

- no ``eps`` in denominators: a rate with a zero denominator is ``None`` (sed_eval: 0 or
  ``I / eps``); ``F1 = 2 TP / (2 TP + FP + FN)``, so a class with references and no predictions
  scores 0 (sed_eval: NaN). Counts are unchanged.
- event substitutions (only with two or more classes) pair leftover reference and predicted
  events of different labels by a maximum matching; sed_eval pairs them greedily in list order,
  which can find fewer. Each extra substitution lowers the event ER by ``1 / N_ref`` (one
  substitution replaces one deletion and one insertion); TP, FP, FN and F1 are unchanged.
- segment rolls take ``floor(onset / L + 1e-9)`` and ``ceil(offset / L - 1e-9)``: at ``L = 1 s``
  and times on a millisecond grid this equals sed_eval's; at other ``L`` it avoids an extra
  segment from round-off (``0.3 * (1 / 0.1) = 3.0000000000000004``).
- counts: ``fp`` and ``fn`` include substituted events or classes (sed_eval's event-based overall
  ``Nfp``/``Nfn`` exclude them; those are ``insertions`` and ``deletions`` here).

The public names are importable from here (``from pipeline.metrics import evaluate_files``).
"""
from .counts import EPS
from .dataset import bootstrap_ci, evaluate_files
from .detection import HIST_EDGES, boundary_pairs, boundary_summary, detection_error
from .events import event_metrics, segment_metrics
from .frame import average_precision, curves, frame_metrics, roc_auc
from .psds_roc import PSDS1, PSDS2, PSDS_CELLS, psds, score_timestamps

__all__ = ["EPS", "frame_metrics", "roc_auc", "curves", "average_precision", "segment_metrics",
           "event_metrics", "detection_error", "boundary_pairs", "boundary_summary", "HIST_EDGES",
           "psds", "score_timestamps", "PSDS1", "PSDS2", "PSDS_CELLS", "evaluate_files",
           "bootstrap_ci"]
