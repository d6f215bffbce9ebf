"""FrameClock: fixed-rate deadlines that run late frames instead of skipping them."""

from mug.session.clock import FrameClock


def test_on_time_frames_sleep_until_their_deadline():
    clock = FrameClock(0.0, max_behind=0.1)
    assert clock.wait(0.1, now=0.02) == 0.1 - 0.02
    assert abs(clock.wait(0.1, now=0.15) - 0.05) < 1e-12


def test_a_late_frame_runs_at_once_and_the_schedule_keeps_its_rate():
    clock = FrameClock(0.0, max_behind=0.1)
    assert clock.wait(0.1, now=0.13) == 0.0  # frame 1 was due at 0.1: run now, not at 0.2
    assert abs(clock.wait(0.1, now=0.14) - 0.06) < 1e-12  # frame 2 still due at 0.2


def test_after_a_long_stall_the_schedule_restarts_instead_of_bursting():
    clock = FrameClock(0.0, max_behind=0.1)
    assert clock.wait(0.1, now=1.0) == 0.0
    assert abs(clock.wait(0.1, now=1.0) - 0.1) < 1e-12  # one frame later, not nine frames at once
