"""The automatic output checks compare a video with what the endpoint should make (its
effective parameters, interpolation included), not with the raw request."""

from __future__ import annotations

import pytest
from fal_double import clip

from lorad.generation import endpoints
from lorad.media import outputcheck

WAN22_T2V = "fal-ai/wan/v2.2-a14b/text-to-video/lora"


@pytest.fixture
def interpolated(tmp_path):
    """What fal returns for 17 frames at 16 fps with its default interpolation."""
    path = tmp_path / "out.mp4"
    path.write_bytes(clip("motion", 33, 32))
    return path


def test_an_interpolated_output_passes_and_records_what_was_expected(interpolated):
    expected = endpoints.get(WAN22_T2V).expected_output({"num_frames": 17})
    facts = outputcheck.check(interpolated, expected)
    assert facts["ok"] and facts["problems"] == []
    assert (facts["frames"], facts["fps"]) == (33, 32.0)
    assert facts["expected"] == {"frames": 33, "fps": 32.0}


def test_an_output_that_is_not_what_was_expected_is_flagged_with_the_reason(interpolated):
    expected = endpoints.get(WAN22_T2V).expected_output({"num_frames": 21})
    facts = outputcheck.check(interpolated, expected)
    assert not facts["ok"] and facts["usable"]
    assert facts["problems"] == ["33 frames, 41 expected (21 asked; film, 1 frame between each pair)"]


def test_without_interpolation_the_asked_frames_and_fps_are_expected(interpolated):
    expected = endpoints.get(WAN22_T2V).expected_output({"num_frames": 17,
                                                         "interpolator_model": "none"})
    facts = outputcheck.check(interpolated, expected)
    assert facts["problems"] == ["32 fps, 16 expected", "33 frames, 17 expected"]
    assert facts["expected"] == {"frames": 17, "fps": 16.0}


def test_aspect_is_checked_only_when_asked(interpolated):
    assert outputcheck.check(interpolated, {"aspect_ratio": "9:16"})["ok"]  # 160x288
    facts = outputcheck.check(interpolated, {"aspect_ratio": "16:9"})
    assert facts["problems"] == ["aspect 160x288 is not the 16:9 asked"]


@pytest.mark.parametrize("profile,override,flagged,floor", [
    ("quality", None, True, 0.003),  # the seed's threshold for quality runs
    ("smoke", None, False, 0.0),  # quick runs: a frozen clip is no news
    ("smoke", 0.02, True, 0.02),  # a run's own threshold wins, and is recorded
    ("quality", 0.0, False, 0.0),
])
def test_the_frozen_check_follows_the_check_profile(tmp_path, profile, override, flagged, floor):
    """The frozen check had one hard-coded threshold: a smoke run's still clip and a quality
    run's were judged alike, and nobody could tell afterwards which threshold had been used."""
    still = tmp_path / "still.mp4"
    still.write_bytes(clip("static", 17, 16))
    facts = outputcheck.check(still, {}, limits=outputcheck.thresholds(profile, override))
    assert any("frozen" in p for p in facts["problems"]) == flagged
    assert facts["thresholds"]["min_frame_diff"] == floor
    assert facts["thresholds"]["min_frame_diff_from"] == ("override" if override is not None
                                                          else "profile")


def test_an_unknown_check_profile_is_refused():
    with pytest.raises(Exception, match="use one of quality, smoke"):
        outputcheck.thresholds("fast")
