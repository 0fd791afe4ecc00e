"""A CPU run's thread count: timed at its start, timed again while one thread wins, followed after."""

from __future__ import annotations

import torch

from engine.training.accel.threads import RETIME_FIRST_S, RETIME_MAX_S, ThreadPlan, ThreadTrial


def run_trial(step_ms: dict[int, float]) -> tuple[ThreadTrial, list[int]]:
    """Feed a trial steps that take `step_ms[threads]`; the thread counts it used, step by step."""
    trial, used = ThreadTrial((1, 2)), []
    threads = trial.current
    while trial.chosen is None:
        used.append(threads)
        switched = trial.record(step_ms[threads] / 1e3 + (0.05 if len(used) == 1 else 0.0))  # a slow first step
        threads = switched or threads
    return trial, used


def test_the_thread_trial_alternates_blocks_and_keeps_the_faster_count():
    trial, used = run_trial({1: 1.2, 2: 0.9})
    assert trial.chosen == 2 and "1 thread 1.20 ms, 2 threads 0.90 ms" == trial.describe()
    w, b = ThreadTrial.WARMUP, ThreadTrial.BLOCK
    assert used[:w] == [1] * w and used[w : w + b] == [1] * b and used[w + b : w + 2 * b] == [2] * b
    assert len(used) == w + 2 * b * ThreadTrial.ROUNDS


def test_the_thread_trial_keeps_one_thread_unless_more_are_clearly_faster():
    assert run_trial({1: 1.0, 2: 0.99})[0].chosen == 1  # 1 % faster is not worth a core another process may take
    assert run_trial({1: 0.14, 2: 5.8})[0].chosen == 1  # a tiny model: waking a second thread costs more than it does


def test_a_trial_on_threads_that_wait_for_a_busy_core_ends_early():
    trial, used = run_trial({1: 1.1, 2: 11.0})  # beside a busy process: each 2-thread step waits for its core
    w, b = ThreadTrial.WARMUP, ThreadTrial.BLOCK
    assert trial.chosen == 1 and used == [1] * (w + b) + [2] * 3  # the block's uncounted first step, then two
    assert run_trial({1: 1.1, 2: 1.9})[0].chosen == 1 and len(run_trial({1: 1.1, 2: 1.9})[1]) == w + 6 * b


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def finish_trial(plan: ThreadPlan, step_ms: dict[int, float], epoch: int = 1):
    """Steps fed to the plan's trial until it decides; what it reported."""
    threads = plan.trial.current
    while True:
        before = plan.trial
        event = plan.after_step(epoch, step_ms[threads] / 1e3)
        if before.chosen is not None:
            return event
        threads = before.current


def test_a_plan_times_again_later_and_less_often_each_time():
    clock, previous = Clock(), torch.get_num_threads()
    try:
        plan = ThreadPlan((1, 2), follow=False, clock=clock)
        first = finish_trial(plan, {1: 1.2, 2: 1.9})  # two threads slow at the start
        assert (first.threads, first.previous) == (1, 1) and first.reason.startswith("timed the first steps: ")
        assert plan.trial is None and plan.retime_at == 100.0 + RETIME_FIRST_S
        clock.now += RETIME_FIRST_S / 2
        assert plan.on_tick(1) is None and plan.trial is None  # not yet
        clock.now += RETIME_FIRST_S
        assert plan.on_tick(1) is None and plan.trial is not None and plan.trial.choices == (1, 2)
        assert plan.on_tick(1) is None  # a trial under way is left to finish
        assert finish_trial(plan, {1: 1.2, 2: 1.9}) is None  # still one thread: no line to report
        assert plan.retime_at == clock.now + 2 * RETIME_FIRST_S  # twice as long before the next
        clock.now = plan.retime_at
        plan.on_tick(2)
        again = finish_trial(plan, {1: 1.2, 2: 0.85}, epoch=2)  # fast again
        assert (again.epoch, again.threads, again.previous) == (2, 2, 1) and again.reason.startswith("timed again: ")
        assert plan.threads == 2 and torch.get_num_threads() == 2
        assert plan.retime_at == clock.now + 4 * RETIME_FIRST_S  # more threads won: they are timed again too
        clock.now = plan.retime_at
        plan.on_tick(3)
        slow = finish_trial(plan, {1: 1.2, 2: 1.9}, epoch=3)  # slow again: back to one thread
        assert (slow.threads, slow.previous) == (1, 2) and torch.get_num_threads() == 1
        for _ in range(12):
            clock.now = plan.retime_at
            plan.on_tick(4)
            finish_trial(plan, {1: 1.2, 2: 1.9}, epoch=4)
        assert plan.retime_at - clock.now == RETIME_MAX_S  # never longer apart than this
    finally:
        torch.set_num_threads(previous)


def test_a_plan_with_one_choice_never_times():
    plan = ThreadPlan((3,), follow=False)
    assert plan.trial is None and plan.threads == 3 and plan.on_tick(1) is None
