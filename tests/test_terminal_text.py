import json

from harness.terminal_text import json_line, visible


def test_control_and_direction_characters_are_shown_not_run():
    assert visible("C1\x1b]0;pwned\x07") == "C1\\x1b]0;pwned\\x07"
    assert visible("a\x9b2Jb\x7f") == "a\\x9b2Jb\\x7f"
    assert visible("safe\u202eexe.txt") == "safe\\u202eexe.txt"
    assert visible("张三 ^~\\& |") == "张三 ^~\\& |"
    assert visible("one\ntwo\r") == "one\\x0atwo\\x0d"
    assert visible("one\n\ttwo\x1b", lines=True) == "one\n\ttwo\\x1b"
    assert visible(None) == ""


def test_json_lines_escape_what_json_leaves_raw_and_read_back_the_same():
    value = {"control_id": "C\x1b\x9b\u202e\x7f中"}
    line = json_line(value)
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F and c != "\u202e" for c in line)
    assert json.loads(line) == value
