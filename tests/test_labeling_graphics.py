"""Which graphics protocol the labeling screen draws images with: asked of the terminal before the
TUI starts (textual-image's queries), half blocks where nothing answers or there is no terminal.

Each case runs in a subprocess on a pseudo-terminal whose answers are typed ahead, so the answer
is there however slow the machine is (the queries wait 0.1 s)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import tty

import pytest

ASK = "import sys; from mlbox.tui.widgets.label_graphics import detect; sys.stderr.write(detect('auto'))"


def detect_on_a_terminal(answers: bytes) -> str:
    """What `detect` finds on a terminal (100 x 30 cells of 10 x 20 pixels) that answers ``answers``."""
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 1000, 600))
        tty.setcbreak(slave)
        os.write(master, answers)
        proc = subprocess.run(
            [sys.executable, "-c", ASK], stdin=slave, stdout=slave, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return proc.stderr.decode()


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (b"\x1b[?62;22c\x1b_Gi=1;OK\x1b\\", "kitty"),  # no Sixel (4) in its attributes; Kitty's query OK
        (b"\x1b[?62;4;22c", "sixel"),
        (b"", "halfblock"),  # answers nothing: both queries time out
    ],
)
def test_the_terminal_is_asked(answers: bytes, expected: str) -> None:
    assert detect_on_a_terminal(answers) == expected


def test_without_a_terminal_nothing_is_asked_and_a_choice_is_kept() -> None:
    code = ASK.replace("detect('auto'))", "detect('auto') + ' ' + detect('sixel'))")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )
    assert out.stderr.split() == ["halfblock", "sixel"], out.stderr[-2000:]


def test_the_choice_is_read_from_the_environment_and_a_bad_one_refused_by_name() -> None:
    from mlbox.settings import Settings
    from mlbox.store.errors import InvalidInput

    assert Settings.from_env({}).labeling.images == "auto"
    assert Settings.from_env({"MLBOX_LABELING_IMAGES": "kitty"}).labeling.images == "kitty"
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env({"MLBOX_LABELING_IMAGES": "iterm"})
    assert refused.value.field == "MLBOX_LABELING_IMAGES" and "'iterm'" in refused.value.message
