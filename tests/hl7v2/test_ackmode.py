"""The acknowledgement model: what each MSH-15/MSH-16 combination expects, and what replies add up to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.hl7v2.ackmode import AckMode, reply_kind

VALUES = ("", "AL", "NE", "ER", "SU")

# MSH-15, MSH-16 -> what is awaited before any reply; after a CA; the verdict of silence at the start
TABLE = {
    ("", ""): ("required", None, None),
    ("", "AL"): ("required", "required", None),
    ("", "NE"): ("required", "none", None),
    ("", "ER"): ("required", "conditional", None),
    ("", "SU"): ("required", "conditional", None),
    ("AL", ""): ("required", "required", None),
    ("AL", "AL"): ("required", "required", None),
    ("AL", "NE"): ("required", "none", None),
    ("AL", "ER"): ("required", "conditional", None),
    ("AL", "SU"): ("required", "conditional", None),
    ("NE", ""): ("required", "required", None),
    ("NE", "AL"): ("required", "required", None),
    ("NE", "NE"): ("none", None, None),
    ("NE", "ER"): ("conditional", "conditional", "ok"),
    ("NE", "SU"): ("conditional", "conditional", "timeout"),
    ("ER", ""): ("required", "required", None),
    ("ER", "AL"): ("required", "required", None),
    ("ER", "NE"): ("conditional", "none", "ok"),
    ("ER", "ER"): ("conditional", "conditional", "ok"),
    ("ER", "SU"): ("conditional", "conditional", "timeout"),
    ("SU", ""): ("required", "required", None),
    ("SU", "AL"): ("required", "required", None),
    ("SU", "NE"): ("conditional", "none", "timeout"),
    ("SU", "ER"): ("conditional", "conditional", "timeout"),
    ("SU", "SU"): ("conditional", "conditional", "timeout"),
}


def test_the_table_covers_every_combination():
    assert set(TABLE) == {(a, b) for a in VALUES for b in VALUES}


@pytest.mark.parametrize(("msh15", "msh16"), sorted(TABLE))
def test_what_each_combination_awaits(msh15, msh16):
    first, after_ca, silence = TABLE[msh15, msh16]
    mode = AckMode.of(msh15, msh16)
    assert mode.enhanced == bool(msh15 or msh16)
    state = mode.start()
    assert state.waiting() == first
    if first == "none":
        assert state.done and state.verdict() == "no_ack_expected"
        return
    if silence is not None:
        assert state.silence() == silence and state.verdict() == silence
    if after_ca is None:  # original mode: the one ACK ends it
        assert mode.start().take("AA") is True
        return
    state = mode.start()
    completes = state.take("CA")
    assert completes == (after_ca == "none")
    assert state.waiting() == ("none" if completes else after_ca)
    if not completes:
        assert state.take("AE") is True
        assert (state.accept_code, state.application_code, state.verdict()) == ("CA", "AE", "nak")


@pytest.mark.parametrize(
    ("msh15", "msh16", "replies", "verdict"),
    [
        ("", "", ["AA"], "ok"),
        ("", "", ["AE"], "nak"),
        ("", "", ["AR"], "nak"),
        ("", "", ["CA"], "ok"),  # an accept ACK to an original-mode message ends it (noted)
        ("AL", "AL", ["CA", "AA"], "ok"),
        ("AL", "AL", ["CA", "AE"], "nak"),
        ("AL", "AL", ["CA", "AR"], "nak"),
        ("AL", "AL", ["CE"], "nak"),
        ("AL", "AL", ["CR"], "nak"),
        ("AL", "NE", ["CA"], "ok"),
        ("NE", "AL", ["AA"], "ok"),
        ("AL", "AL", ["XX"], "bad_ack"),
        ("AL", "AL", ["CA", None], "bad_ack"),
        ("", "", [""], "bad_ack"),
        ("ER", "ER", ["AE"], "nak"),
        ("SU", "SU", ["CA", "AA"], "ok"),
    ],
)
def test_replies_add_up_to_a_verdict(msh15, msh16, replies, verdict):
    state = AckMode.of(msh15, msh16).start()
    ends = [state.take(code) for code in replies]
    assert ends[-1] is True and not any(ends[:-1])
    assert state.verdict() == verdict


def test_an_application_ack_after_ca_with_su_silence_is_a_timeout():
    state = AckMode.of("AL", "SU").start()
    assert state.take("CA") is False
    assert state.silence() == "timeout" and state.verdict() == "timeout"


def test_a_second_accept_ack_is_noted_and_does_not_end_the_exchange():
    state = AckMode.of("AL", "AL").start()
    state.take("CA")
    assert state.take("CA") is False
    assert "second accept ACK" in state.notes[-1]


def test_an_unknown_condition_counts_as_al_with_a_problem():
    mode = AckMode.of("XX", "")
    assert (mode.accept, mode.application) == ("AL", "AL")
    assert "MSH-15 'XX'" in mode.problems[0]


def test_correlation_accepts_an_accept_ack_only_before_any_reply():
    state = AckMode.of("AL", "AL").start()
    assert state.accepts("CA") and state.accepts("AA")
    state.take("CA")
    assert not state.accepts("CA") and state.accepts("AE") and state.accepts(None)
    state.take("AA")
    assert not state.accepts("AA")


@pytest.mark.parametrize(
    ("msh15", "msh16", "outcome", "owed"),
    [
        ("", "", "ok", (None, "AA")),
        ("", "", "commit_error", (None, "AE")),
        ("", "", "commit_reject", (None, "AR")),
        ("AL", "AL", "ok", ("CA", "AA")),
        ("AL", "AL", "error", ("CA", "AE")),
        ("AL", "AL", "commit_reject", ("CR", None)),
        ("NE", "NE", "ok", (None, None)),
        ("ER", "ER", "ok", (None, None)),
        ("ER", "ER", "error", (None, "AE")),
        ("SU", "SU", "ok", ("CA", "AA")),
        ("SU", "SU", "reject", ("CA", None)),
        ("NE", "AL", "ok", (None, "AA")),
    ],
)
def test_what_a_receiver_owes(msh15, msh16, outcome, owed):
    assert AckMode.of(msh15, msh16).owed(outcome) == owed


@given(st.sampled_from(VALUES), st.sampled_from(VALUES), st.sampled_from(["ok", "error", "reject",
       "commit_error", "commit_reject"]))
def test_what_a_receiver_owes_is_read_the_same_by_the_sender(msh15, msh16, outcome):
    """The two sides of the model agree: an error the receiver reports is a nak at the sender, a
    success is never read as a failure, and a sender waits in vain only where the standard leaves it
    uninformed (MSH-15 NE/SU and a message that could not be committed)."""
    mode = AckMode.of(msh15, msh16)
    state = mode.start()
    codes = [code for code in mode.owed(outcome) if code is not None]
    for code in codes:
        state.take(code)
    if state.waiting() == "required":
        assert not codes and outcome.startswith("commit_") and mode.accept in ("NE", "SU")
        return
    if not state.done:
        state.silence()
    verdict = state.verdict()
    if any(code not in ("AA", "CA") for code in codes):
        assert verdict == "nak"
    elif outcome == "ok":
        assert verdict in ("ok", "no_ack_expected")
    else:  # an error the sender asked not to hear about (NE), or success-only replies (SU) left out
        assert verdict in ("ok", "timeout", "no_ack_expected")
        assert mode.enhanced


def test_reply_kinds():
    assert [reply_kind(c) for c in ("CA", "CE", "AA", "AR", "", None, "XX")] == [
        "accept", "accept", "application", "application", "bad", "bad", "bad",
    ]
