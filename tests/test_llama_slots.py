"""Which llama.cpp slot a chat request runs in (`SlotTable`): a conversation keeps its slot,
whose cache holds its history; a new one takes the slot used least recently, never one a
conversation still going would lose."""

from voxgate.engines.base import ChatMessage
from voxgate.engines.llamacpp import SlotTable

SYSTEM = ChatMessage("system", "You are voxgate.")


def conversation(*said: str) -> tuple[ChatMessage, ...]:
    roles = ("user", "assistant")
    return (SYSTEM, *(ChatMessage(roles[i % 2], text) for i, text in enumerate(said)))


def run(table: SlotTable, messages: tuple[ChatMessage, ...], reply: str = "ok") -> int:
    slot = table.take(messages)
    table.give_back(slot, (*messages, ChatMessage("assistant", reply)))
    return slot


def test_a_conversation_comes_back_to_its_slot_after_others_ran():
    table = SlotTable(3)
    first = run(table, conversation("Hi"), "Hello!")
    others = {run(table, conversation("What is the capital of France?")), run(table, conversation("Name a river."))}
    assert first not in others
    assert run(table, conversation("Hi", "Hello!", "How are you?")) == first


def test_a_new_conversation_takes_the_least_recently_used_slot_not_a_busy_or_recent_one():
    table = SlotTable(3)
    persona = (ChatMessage("system", "You are a pirate."), ChatMessage("user", "Old question"))
    old, recent = run(table, persona), run(table, conversation("Recent question"))
    going = table.take(conversation("Still answering"))
    # The recent slot shares the system prompt with it, but only the least recently used is free to lose.
    assert table.take(conversation("A new question")) == old
    assert len({old, recent, going}) == 3


def test_with_every_slot_busy_a_request_waits_for_one_instead_of_failing():
    table = SlotTable(2)
    taken = {table.take(conversation("One")), table.take(conversation("Two"))}
    assert taken == {0, 1}
    third = table.take(conversation("Three"))
    assert table.take(conversation("Four")) == ({0, 1} - {third}).pop()  # queued where fewest wait
    table.give_back(third, conversation("Three"))
    assert table.take(conversation("Five")) == third  # the one whose queue shrank


def test_a_conversation_is_prefilled_in_the_slot_it_would_take_and_only_while_no_request_runs():
    table = SlotTable(2)
    answered = conversation("Hi", "Hello!")
    slot = run(table, conversation("Hi"), "Hello!")
    assert table.resting(answered) == slot
    other = table.take(conversation("A question from someone else"))
    assert table.resting(answered) is None  # prefilling now would slow their answer
    table.give_back(other, conversation("A question from someone else", "ok"))
    assert table.resting(answered) == slot


def test_a_question_goes_to_the_slot_that_holds_its_opening():
    """Prefilled while it was spoken, in the slot used least recently; the whole question
    then runs there, though another slot was used less recently since."""
    table = SlotTable(3)
    for question in ("One", "Two", "Three"):
        run(table, conversation(question))
    opening = conversation("What is the capital")
    slot = table.resting(opening)
    table.hold(slot, opening)
    assert table.take(conversation("What is the capital of France?")) == slot
    # A finished conversation that began with the same words keeps its slot for its follow-up.
    assert table.take(conversation("What is the weather like?")) != slot
