"""Ring buffers and windows against the batch reference (models.data.window), without a broker."""

from __future__ import annotations

import numpy as np

from models.data import window
from streams.replay import build_streams
from streams.windows import WindowConfig, Windower

FS = 250


def _feed(windower, stream, seqs):
    for k in seqs:
        windower.add_chunk(stream.chunk(k, FS, float(k)), 0, k)


def _cut_all(windower):
    items, _ = windower.ready()
    return {(it.patient_id, it.end_s): it for it in items}


class TestWindower:
    def test_in_order_windows_equal_the_record_slices(self, stream_records):
        w = Windower(WindowConfig())
        streams = build_streams(stream_records[:2])
        got = {}
        for k in range(250, 300):
            for s in streams:
                _feed(w, s, [k])
            got.update(_cut_all(w))
        for s in streams:
            ends = sorted(e for p, e in got if p == s.patient_id)
            assert ends == [float(e) for e in range(266, 301)]
            for e in ends:
                it = got[(s.patient_id, e)]
                assert np.array_equal(it.window, window(s.record, e), equal_nan=True)
                assert not it.degraded_reasons

    def test_earlier_windows_of_an_alarm_window_are_the_record_slices(self, stream_records):
        """A verdict averaged over earlier windows gets the patient's windows ending 1..k s before the alarm's, newest
        first, as long as the ring holds them whole (a stream that began 18 s before the window gives 2)."""
        w = Windower(WindowConfig())
        s = build_streams(stream_records[:1])[0]
        _feed(w, s, range(250, 300))
        it = _cut_all(w)[(s.patient_id, 300.0)]
        wins, masks = w.earlier(it, 3)
        assert wins.shape == (3, 5, 16 * FS) and wins.dtype == np.float32 and masks.shape == (3, 5)
        for o in range(3):
            assert np.array_equal(wins[o], window(s.record, 300.0 - 1 - o), equal_nan=True)
            assert np.array_equal(masks[o], it.mask)
        late = Windower(WindowConfig())
        _feed(late, s, range(282, 300))
        it = _cut_all(late)[(s.patient_id, 300.0)]
        assert len(late.earlier(it, 4)[0]) == 2  # windows ending 299 and 298 start at 283 and 282; 297 was never whole
        assert len(Windower(WindowConfig()).earlier(it, 4)[0]) == 0  # a patient this windower never saw

    def test_out_of_order_and_duplicates_still_identical(self, stream_records):
        w = Windower(WindowConfig())
        s = build_streams(stream_records[:1])[0]
        order = list(range(250, 300))
        for i in range(1, len(order) - 1, 3):  # swap pairs: k+1 before k (the first chunk stays first)
            order[i], order[i + 1] = order[i + 1], order[i]
        order = order[:10] + order[5:15] + order[10:]  # and resend some
        got = {}
        for k in order:
            _feed(w, s, [k])
            got.update(_cut_all(w))
        assert w.counts["duplicates"] == 10
        assert sorted(e for _, e in got) == [float(e) for e in range(266, 301)]
        for (_, e), it in got.items():
            assert np.array_equal(it.window, window(s.record, e), equal_nan=True)
            assert not it.degraded_reasons

    def test_gap_is_nan_filled_and_flagged(self, stream_records):
        w = Windower(WindowConfig(lateness_s=2.0))
        s = build_streams(stream_records[:1])[0]
        got = {}
        for k in [k for k in range(250, 300) if k != 280]:
            _feed(w, s, [k])
            got.update(_cut_all(w))
        assert sorted(e for _, e in got) == [float(e) for e in range(266, 301)]
        for (_, e), it in got.items():
            ref = window(s.record, e).copy()
            start = int(e) - 16
            if start <= 280 < int(e):
                ref[:, (280 - start) * FS : (281 - start) * FS] = np.nan
                assert any("gap" in r for r in it.degraded_reasons)
            else:
                assert not it.degraded_reasons
            assert np.array_equal(it.window, ref, equal_nan=True)

    def test_a_backlog_longer_than_the_ring_loses_no_window(self, stream_records):
        """A consumer catching up gets minutes of one patient in one poll: windows are cut before overwritten."""
        w = Windower(WindowConfig(ring_s=20.0, lateness_s=2.0))
        s = build_streams(stream_records[:1])[0]
        _feed(w, s, range(200, 300))  # 100 s of chunks, ring of 20 s, no ready() call in between
        got = _cut_all(w)
        assert sorted(e for _, e in got) == [float(e) for e in range(216, 301)]
        for (_, e), it in got.items():
            assert np.array_equal(it.window, window(s.record, e), equal_nan=True)
        assert w.counts["windows_lost"] == 0

    def test_commit_offset_holds_back_to_the_next_windows_data(self, stream_records):
        w = Windower(WindowConfig())
        s = build_streams(stream_records[:1])[0]
        for k in range(100, 130):
            w.add_chunk(s.chunk(k, FS, 0.0), 0, 1000 + k)  # offset = 1000 + seq
        w.ready()
        # windows up to end 130 s are cut; the next one (131) needs seconds 115..131 -> chunk 115
        assert w.committable({("icu.waveforms", 0): 1130}) == {("icu.waveforms", 0): 1115}

    def test_window_masks_and_ring_views_match_the_samples(self):
        """Masks come from per-chunk finite flags when windows are whole chunks: they must equal the rule on the
        samples (a slot is present iff it has a finite sample in the window), for aligned and unaligned windows;
        ``ready(copy=False)`` views hold the same samples as the copies."""
        from streams.schemas import WaveformChunk

        rng = np.random.default_rng(1)
        for cfg in (WindowConfig(), WindowConfig(window_s=16.5, hop_s=0.5)):
            views, copies = Windower(cfg), Windower(cfg)
            n_views, abp_absent = 0, 0
            for k in range(60):
                if k == 30:
                    continue  # a gap: NaN-filled, flagged
                x = rng.standard_normal((2, FS)).astype(np.float32)
                if 10 <= k < 40:
                    x[1] = np.nan  # ABP absent for 30 s: windows inside this stretch have no ABP
                if k == 9:
                    x[1, FS // 2 :] = np.nan  # a window starting mid-chunk 9 (unaligned) sees no finite ABP in it
                if k == 45:
                    x[1, :100] = np.nan
                chunk = WaveformChunk("p", k, float(k), float(FS), ("II", "ABP"), x, float(k))
                views.add_chunk(chunk, 0, k)
                copies.add_chunk(chunk, 0, k)
                got, _ = views.ready(copy=False)
                ref, _ = copies.ready()
                assert [it.end_s for it in got] == [it.end_s for it in ref]
                for a, b in zip(got, ref):
                    assert np.array_equal(a.window, b.window, equal_nan=True)
                    assert np.array_equal(a.mask, np.isfinite(b.window).any(axis=1))
                    assert np.array_equal(a.mask, b.mask)
                    abp_absent += not a.mask[2]
                    n_views += not a.owned
                    a.materialize()
                    assert a.owned and a.window.base is None
            assert n_views > 20 and abp_absent > 5
