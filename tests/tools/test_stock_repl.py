"""The simulated stock MicroPython board as a technician and mpremote meet it: an interactive REPL
that echoes values and continues compound statements, help(), imports from the flash, the modules
tools call, and bytes paced at the chosen baud. Real pseudo-terminals, pyserial and the real mpremote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware.sim.stock_board import StockBoard

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """A person at a serial terminal: types, waits for the prompt, reads what came back."""

    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, 115200, timeout=0.2)

    def type(self, text: str, until: bytes = b">>> ", timeout: float = 5.0) -> str:
        self.port.write(text.encode())
        got = b""
        deadline = time.monotonic() + timeout
        while not got.endswith(until) and time.monotonic() < deadline:
            got += self.port.read(256)
        assert got.endswith(until), f"no {until!r} after {text!r}; got {got!r}"
        return got.decode().replace("\r\n", "\n")

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    flash = tmp_path / "flash"
    (flash / "lib").mkdir(parents=True)
    (flash / "lib" / "greet.py").write_text("def hello(name):\n    return 'hello ' + name\n")
    (flash / "street").mkdir()
    (flash / "street" / "__init__.py").write_text("from .lamp import LEVEL\n")
    (flash / "street" / "lamp.py").write_text("LEVEL = 0.8\n")
    with StockBoard(flash) as board:
        assert board.booted.wait(5)
        term = Terminal(board.port)
        term.type("\r")
        yield term
        term.close()


def test_the_repl_echoes_values_and_continues_compound_statements(terminal: Terminal) -> None:
    assert terminal.type("1+2\r") == "1+2\n3\n>>> "
    assert terminal.type("None\r") == "None\n>>> ", "None is not echoed"
    # Auto-indent, as MicroPython's readline: the body is indented for you, blank lines end the block.
    assert terminal.type("for i in range(3):\r", until=b"...     ").endswith("...     ")
    terminal.type("print(i * 10)\r", until=b"...     ")
    terminal.type("\r", until=b"...     ")
    terminal.type("\r", until=b"... ")
    assert terminal.type("\r").endswith("\n0\n10\n20\n>>> ")
    terminal.type("def double(x):\r", until=b"...     ")
    terminal.type("return 2 * x\r\r\r", until=b"... ")
    terminal.type("\r")
    assert terminal.type("double(21)\r").endswith("\n42\n>>> ")
    assert terminal.type("_ + 1\r").endswith("\n43\n>>> "), "_ holds the last value"
    assert terminal.type("xs = [1,\r", until=b"... ").endswith("... ")
    assert terminal.type("2]\r") == "2]\n>>> "
    assert terminal.type("xs\r").endswith("[1, 2]\n>>> ")
    out = terminal.type("1/0\r")
    assert "ZeroDivisionError" in out and out.endswith(">>> ")
    out = terminal.type("x = = 1\r")
    assert "SyntaxError: invalid syntax" in out and out.endswith(">>> ")


def test_help_prints_and_the_board_keeps_answering(terminal: Terminal) -> None:
    out = terminal.type("help()\r")
    assert "Welcome to MicroPython" in out and "CTRL-D" in out and "help>" not in out
    assert "machine" in terminal.type("help('modules')\r")
    assert terminal.type("6*7\r").endswith("42\n>>> ")


def test_modules_on_the_flash_and_the_board_modules(terminal: Terminal) -> None:
    assert terminal.type("import greet; greet.hello('pole')\r").endswith("'hello pole'\n>>> ")
    assert terminal.type("import street; street.LEVEL\r").endswith("0.8\n>>> ")
    assert terminal.type("from street.lamp import LEVEL; LEVEL\r").endswith("0.8\n>>> ")
    out = terminal.type("import nothing_here\r")
    assert "ImportError: no module named 'nothing_here'" in out
    out = terminal.type(
        "import time; t = time.ticks_ms(); time.sleep_ms(30); time.ticks_diff(time.ticks_ms(), t) >= 30\r"
    )
    assert out.endswith("True\n>>> ")
    assert terminal.type("import machine; p = machine.Pin(2, machine.Pin.OUT); p.on(); p.value()\r").endswith(
        "1\n>>> "
    )
    out = terminal.type("import micropython; micropython.mem_info()\r")
    assert "GC: total:" in out and "free:" in out
    out = terminal.type("import gc; gc.mem_free() > 0\r")
    assert out.endswith("True\n>>> ")


def test_ctrl_c_interrupts_running_code_and_output_streams_as_printed(terminal: Terminal) -> None:
    terminal.port.write(b"import time\r")
    terminal.type("", until=b">>> ")
    terminal.port.write(b"while True: print('tick'); time.sleep(0.2)\r")
    first = terminal.type("", until=b"... ")
    assert first.endswith("... ")
    started = time.monotonic()
    terminal.port.write(b"\r")
    assert "tick" in terminal.type("", until=b"tick\r\n"), "output arrives while the loop runs"
    assert time.monotonic() - started < 1.5
    out = terminal.type("\x03")
    assert "KeyboardInterrupt" in out and out.endswith(">>> ")
    assert terminal.type("x = 5\r") == "x = 5\n>>> "
    assert terminal.type("x\r").endswith("5\n>>> "), "the board's state survives the interrupt"


def test_input_reads_what_is_typed(terminal: Terminal) -> None:
    terminal.type("name = input('who? ')\r", until=b"who? ")
    assert terminal.type("pole\r") == "pole\n>>> "
    assert terminal.type("name\r").endswith("'pole'\n>>> ")


def test_paste_mode_runs_what_was_pasted(terminal: Terminal) -> None:
    terminal.port.write(b"\x05")
    terminal.type("", until=b"=== ")
    terminal.type("def f():\r    return 5\r", until=b"=== ")
    assert terminal.type("\x04").endswith(">>> ")
    assert terminal.type("f()\r").endswith("5\n>>> ")


def _mpremote(port: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_mpremote_df_rtc_and_a_module_copied_to_lib(tmp_path: Path) -> None:
    """`edgectl board sim --stock --port` as documented, and the real mpremote against it."""
    port = tmp_path / "ttySTOCK"
    options = ["--flash", str(tmp_path / "f"), "--port", str(port)]
    sim = subprocess.Popen(
        [sys.executable, "-m", "tools.edgectl", "board", "sim", "--stock", *options],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert sim.stdout is not None
        assert f"on {port} (115200 baud" in sim.stdout.readline()
        df = _mpremote(str(port), "df")
        assert df.returncode == 0, df.stderr
        lines = df.stdout.splitlines()
        assert lines[0].split() == ["filesystem", "size", "used", "avail", "use%", "mounted", "on"]
        assert lines[1].split()[1] == str(2 * 1024 * 1024) and lines[1].split()[-1] == "/"
        assert _mpremote(str(port), "rtc", "--set").returncode == 0
        rtc = _mpremote(str(port), "rtc")
        assert rtc.returncode == 0 and rtc.stdout.startswith(f"({time.localtime().tm_year}, "), rtc.stdout
        module = tmp_path / "counter.py"
        module.write_text("def count(n):\n    return list(range(n))\n")
        assert _mpremote(str(port), "mkdir", ":lib").returncode == 0
        assert _mpremote(str(port), "cp", str(module), ":lib/counter.py").returncode == 0
        run = _mpremote(str(port), "exec", "import counter; print(counter.count(3))")
        assert run.stdout.strip() == "[0, 1, 2]", run.stderr
        assert (tmp_path / "f" / "lib" / "counter.py").read_text() == module.read_text()
    finally:
        sim.send_signal(signal.SIGINT)
        assert sim.wait(10) == 0
    assert not port.exists(), "the stable port path goes with the board"


def test_mpremote_mount_serves_a_host_folder_to_the_board(tmp_path: Path) -> None:
    """`mpremote mount`: the board imports and writes files of a folder on this machine."""
    local = tmp_path / "project"
    (local / "street").mkdir(parents=True)
    (local / "settings.py").write_text("LEVEL = 41\n")
    (local / "street" / "__init__.py").write_text("def name():\n    return 'mounted'\n")
    with StockBoard(tmp_path / "flash") as board:
        assert board.booted.wait(5)
        code = (
            "import os, settings, street\n"
            "print(os.getcwd(), sorted(os.listdir()), settings.LEVEL + 1, street.name())\n"
            "with open('from_board.txt', 'w') as f:\n    f.write('written on the board')\n"
        )
        run = _mpremote(board.port, "mount", str(local), "exec", code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "/remote ['settings.py', 'street'] 42 mounted"
    assert (local / "from_board.txt").read_text() == "written on the board"
    assert not (tmp_path / "flash" / "from_board.txt").exists(), "written to the host folder, not the flash"


def test_bytes_are_paced_at_the_chosen_baud(tmp_path: Path) -> None:
    payload = "a" * 2400  # through raw paste: 2.4 kB at 9600 baud take 2.5 s on a real line
    with StockBoard(tmp_path / "flash", baud=9600) as board:
        assert board.booted.wait(5)
        started = time.monotonic()
        run = _mpremote(board.port, "exec", f"x = {payload!r}\nprint(len(x))")
        took = time.monotonic() - started
    assert run.stdout.strip() == "2400", run.stderr
    assert took >= len(payload) * 10 / 9600, f"{took:.2f} s: faster than the line"
    assert took < 20


def test_an_interactive_mpremote_repl_session(tmp_path: Path) -> None:
    """`mpremote connect PORT repl` in a terminal (a pseudo-terminal here), typed at as a person does."""
    import pty
    import select

    def read_until(fd: int, ending: bytes, timeout: float = 10.0) -> bytes:
        out = b""
        deadline = time.monotonic() + timeout
        while not out.endswith(ending) and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        assert out.endswith(ending), f"no {ending!r}; got {out!r}"
        return out

    with StockBoard(tmp_path / "flash") as board:
        assert board.booted.wait(5)
        pid, fd = pty.fork()
        if pid == 0:  # the child: mpremote on the terminal
            os.execv(sys.executable, [sys.executable, "-m", "mpremote", "connect", board.port, "repl"])
        try:
            read_until(fd, b"Use Ctrl-] or Ctrl-x to exit this shell\r\n")
            # Enter until the prompt shows: before mpremote puts the terminal in raw mode, the
            # terminal turns Enter into a line feed, which MicroPython's REPL ignores.
            seen = b""
            for _ in range(20):
                os.write(fd, b"\r")
                deadline = time.monotonic() + 0.5
                while b">>> " not in seen and time.monotonic() < deadline:
                    if select.select([fd], [], [], 0.1)[0]:
                        seen += os.read(fd, 4096)
                if b">>> " in seen:
                    break
            else:
                raise AssertionError(f"no >>> prompt through mpremote: {seen!r}")
            while select.select([fd], [], [], 0.3)[0]:  # the prompts of any extra Enter
                os.read(fd, 4096)
            os.write(fd, b"1+2\r")
            assert read_until(fd, b">>> ").endswith(b"1+2\r\n3\r\n>>> ")
            os.write(fd, b"for i in range(2):\rprint(i * 7)\r\r\r\r")
            assert read_until(fd, b"\r\n0\r\n7\r\n>>> ")
            os.write(fd, b"help()\r")
            assert b"Welcome to MicroPython" in read_until(fd, b">>> ")
            os.write(fd, b"\x1d")  # Ctrl-]: mpremote leaves
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        finally:
            os.close(fd)
