"""The `Floor`: one user at a time, the earliest deadline first; the user is urged to step
aside when more urgent work waits, deadlines may move while work runs, and work whose
deadline was abandoned never takes a turn."""

import threading
import time

from voxgate.scheduler import Deadline, Floor, caller_deadline, due_at


def _in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_waiting_claims_take_their_turns_earliest_deadline_first():
    floor, waiting, order = Floor(), [], []
    now = time.monotonic()

    def claimant(name: str, at: float) -> None:
        with floor.claim(Deadline(at)) as claim:
            waiting.append(name)
            claim.wait_turn()
            order.append(name)

    with floor.claim(Deadline(now - 1)) as holder:
        assert holder.wait_turn()
        threads = [
            _in_thread(lambda name=name, at=at: claimant(name, at))
            for name, at in (("later clause", now + 5), ("first audio", now), ("due in 1 s", now + 1))
        ]
        while len(waiting) < 3:
            time.sleep(0.01)
        assert not holder.urged()  # every one waiting is due after it
        time.sleep(0.1)
        assert order == []  # nobody goes while the holder has the floor
    for thread in threads:
        thread.join(5)
    assert order == ["first audio", "due in 1 s", "later clause"]


def test_a_more_urgent_claim_urges_the_holder_a_less_urgent_one_does_not():
    floor = Floor()
    now = time.monotonic()
    with floor.claim(Deadline(now)) as holder:
        with floor.claim(Deadline(now + 1)):
            assert not holder.urged()
        with floor.claim(Deadline(now - 1)):
            assert holder.urged()
        assert not holder.urged()  # it left


def test_the_holder_waits_for_its_turn_back_until_the_more_urgent_claim_ends():
    floor, events = Floor(), []
    now = time.monotonic()
    release = threading.Event()
    with floor.claim(Deadline(now + 5)) as holder:
        holder.wait_turn()

        def urgent() -> None:
            with floor.claim(Deadline(now)) as claim:
                claim.wait_turn()
                events.append("urgent runs")
                release.wait(5)
                events.append("urgent done")

        thread = _in_thread(urgent)
        while not holder.urged():
            time.sleep(0.01)
        back = _in_thread(lambda: holder.wait_turn() and events.append("holder back"))
        time.sleep(0.2)
        assert events == ["urgent runs"]  # stepped aside: not back while the urgent one runs
        release.set()
        for t in (thread, back):
            t.join(5)
    assert events == ["urgent runs", "urgent done", "holder back"]


def test_a_moved_deadline_changes_who_is_first():
    floor = Floor()
    now = time.monotonic()
    reply = Deadline(now)
    with floor.claim(reply) as writing, floor.claim(Deadline(now + 1)) as other:
        assert not writing.urged() and other.urged()
        reply.at = now + 3  # its first clause is written: the rest is due later
        assert writing.urged() and not other.urged()


def test_an_abandoned_claim_never_takes_a_turn_and_stops_waiting_at_once():
    floor = Floor()
    now = time.monotonic()
    left = Deadline(now)
    results = []
    with floor.claim(Deadline(now - 1)) as holder:
        holder.wait_turn()
        with floor.claim(left) as claim:
            thread = _in_thread(lambda: results.append(claim.wait_turn()))
            time.sleep(0.1)
            left.abandon()
            thread.join(5)
            assert results == [False]
            assert not holder.urged()  # an abandoned claim goes behind everything


def test_due_at_sets_the_callers_deadline_and_none_means_now():
    deadline = Deadline(123.0)
    with due_at(deadline):
        assert caller_deadline() is deadline
    with due_at(5.0):
        assert caller_deadline().at == 5.0
    before = time.monotonic()
    assert before <= caller_deadline().at <= time.monotonic()
