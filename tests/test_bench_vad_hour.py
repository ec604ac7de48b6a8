"""bench/vad_hour.py --long-pause: the recording's layout, its reference and the stretch without speech."""
import importlib.util
import sys
from pathlib import Path

import pytest

from pipeline.labels import Segment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hour():
    sys.path.insert(0, str(ROOT / "bench"))  # vad_hour imports bench/vad.py and bench/scale.py
    try:
        spec = importlib.util.spec_from_file_location("bench_vad_hour", ROOT / "bench" / "vad_hour.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_vad_hour"] = mod
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(ROOT / "bench"))


def clips(bv, n_speech: int, n_quiet: int) -> list:
    """1 s clips (16 kHz): speech clips with a 0.2-0.5 s utterance, the others without."""
    out = [bv.Clip(f"s{i}", Path(f"s{i}.wav"), [Segment(0.2, 0.5, bv.LABEL)], n_samples=16000) for i in range(n_speech)]
    out += [bv.Clip(f"q{i}", Path(f"q{i}.wav"), [], n_samples=16000) for i in range(n_quiet)]
    return sorted(out, key=lambda c: c.name)


def test_long_pause_layout(hour):
    bv = hour.bv
    cs = clips(bv, 12, 4)
    plan, ref, span = hour.pause_plan(cs, 0)
    assert [c.name for c, _ in plan] == ["s0", "s1", "s10", "q0", "q1", "q2", "q3", "s11", "s2", "s3"]
    assert span == (3.0, 7.0) and all(n == 16000 for _, n in plan)
    assert [(s.onset, s.offset) for s in ref] == [(0.2, 0.5), (1.2, 1.5), (2.2, 2.5), (7.2, 7.5), (8.2, 8.5), (9.2, 9.5)]
    # the other orders: reversed, and every second one then the others; V = 1 takes the next six with speech
    assert [c.name for c, _ in hour.pause_plan(cs, 1)[0]][3:7] == ["q3", "q2", "q1", "q0"]
    assert [c.name for c, _ in hour.pause_plan(cs, 1)[0]][:3] == ["s4", "s5", "s6"]
    with pytest.raises(SystemExit, match="six clips with speech"):
        hour.pause_plan(cs, 2)  # only 12 with speech: V = 2 needs 18
    more = clips(bv, 18, 4)
    assert [c.name for c, _ in hour.pause_plan(more, 2)[0] if c.name.startswith("q")] == ["q1", "q3", "q0", "q2"]
    assert hour.called_speech([Segment(2.5, 3.5, bv.LABEL), Segment(6.0, 8.0, bv.LABEL)], span) == pytest.approx(0.375)
