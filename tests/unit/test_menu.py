"""The console menu survives any input (the ancestor's exited on a non-integer)."""

from __future__ import annotations

from collections.abc import Iterator

from services.menu import Menu
from tests.unit.sim_ring import ideal_sim_ring


def scripted(answers: list[str]) -> tuple[Menu, list[str]]:
    net = ideal_sim_ring(4)
    replies: Iterator[str] = iter(answers)
    output: list[str] = []

    def read(prompt: str) -> str:
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None

    return Menu(net.members()[0], read=read, write=output.append), output


def test_bad_choices_are_explained_and_the_menu_goes_on() -> None:
    menu, output = scripted(["abc", "", "0", "9", "-1", "1", "5"])
    menu.run()
    assert sum("Please enter a number from 1 to 5" in line for line in output) == 5
    assert any("this peer" in line and "successor" in line for line in output)


def test_every_view_renders_a_table() -> None:
    menu, output = scripted(["1", "2", "3", "4", "report.pdf", "4", "", "5"])
    menu.run()
    text = "\n".join(output)
    assert "gRPC address" in text
    assert "fingers" in text
    assert "owner" in text and "hops" in text
    assert "Nothing to look up." in text


def test_end_of_input_leaves_the_menu() -> None:
    menu, _ = scripted([])
    menu.run()  # returns instead of raising or looping
