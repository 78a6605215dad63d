"""Running code on the simulated stock board: in a thread of its own, as a board's interpreter runs
while its UART keeps receiving, so that Ctrl-C interrupts a loop, output streams out as it is printed,
and code reads the bytes a tool sends (mpremote's ``mount`` serves files that way). Also the board's
filesystem: its flash (a host folder), filesystems mounted with ``os.mount``, and ``import`` from both.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import errno
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .stock_modules import Reboot, board_modules, help_text

POLLIN = 1
KEYBOARD_INTERRUPT = (
    'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\nKeyboardInterrupt: \n'
)

Done = Callable[[str, Reboot | None], None]  # error output ("" if none), a reboot the code asked for


class BoardRuntime:
    """The interpreter state of one boot, and the code running now (at most one)."""

    def __init__(
        self, flash: Path, capacity: int, mpy: int, write: Callable[[bytes], None], lock: threading.RLock
    ) -> None:
        self.flash = flash
        self.capacity = capacity
        self.mpy = mpy
        self._write = write
        self._lock = lock  # the board's: the REPL state and the end of a run change under it
        self.running = False
        self.kbd_intr_char = 3
        self._stdin = bytearray()
        self._stdin_ready = threading.Condition()
        self._worker: threading.Thread | None = None
        self._interruptible = False
        self.reset()

    def reset(self) -> None:
        """A boot: fresh globals and modules, the flash alone mounted, at /."""
        self.cwd = "/"
        self.sys_path: list[str] = ["", "/lib"]
        self.mounts: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.modules: dict[str, Any] = {}
        self.kbd_intr_char = 3

    # -- running ---------------------------------------------------------------------------------------
    def start(self, code: bytes, echo: bool, done: Done) -> None:
        """Run ``code`` in its own thread; ``done`` is called under the board's lock when it ends.
        ``echo``: the friendly REPL's single-input mode (each expression statement's value printed)."""
        if not self.globals:
            self.modules = board_modules(self, self.emit, self.sys_path)
            self.globals = {"__name__": "__main__", "__builtins__": self._builtins()}
        with self._stdin_ready:
            self._stdin.clear()
        self.running = True
        self._worker = threading.Thread(
            target=self._run, args=(code, echo, done), name="stock-board-code", daemon=True
        )
        self._worker.start()

    def _run(self, code: bytes, echo: bool, done: Done) -> None:
        err, reboot = "", None
        try:
            try:
                tree = ast.parse(code.decode("utf-8"), "<stdin>", "exec")
            except SyntaxError as exc:
                err = (
                    f'Traceback (most recent call last):\n  File "<stdin>", line {exc.lineno or 1}\n'
                    "SyntaxError: invalid syntax\n"
                )
            else:
                if echo:
                    tree = ast.fix_missing_locations(_Echo().visit(tree))
                compiled = compile(tree, "<stdin>", "exec", dont_inherit=True)
                self._interruptible = True
                try:
                    exec(compiled, self.globals)
                finally:
                    self._interruptible = False
        except Reboot as exc:
            reboot = exc
        except SystemExit:
            reboot = Reboot(hard=False)  # sys.exit() at the REPL: a soft reset, as on a board
        except KeyboardInterrupt:
            err = KEYBOARD_INTERRUPT
        except Exception as exc:
            err = _traceback(exc)
        while True:
            try:
                with self._lock:
                    # An interrupt that arrived just as the code ended is dropped, not raised here.
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
                    self.running = False
                    done(err, reboot)
                return
            except KeyboardInterrupt:
                continue

    def feed(self, byte: int) -> None:
        """A byte received while code runs: the interrupt character, or input for the code."""
        if byte == self.kbd_intr_char and self._interruptible:
            self.interrupt()
            return
        with self._stdin_ready:
            self._stdin.append(byte)
            self._stdin_ready.notify_all()

    def interrupt(self) -> None:
        """KeyboardInterrupt in the running code, as Ctrl-C raises it on a board."""
        with self._lock:
            worker = self._worker
            if self._interruptible and worker is not None and worker.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(worker.ident), ctypes.py_object(KeyboardInterrupt)
                )

    def emit(self, text: str) -> None:
        """Output of the running code, sent at once with MicroPython's line ends."""
        self._write(text.replace("\n", "\r\n").encode())

    # -- the code's stdin and stdout --------------------------------------------------------------------
    def wait_input(self, timeout_s: float | None) -> bool:
        """Wait until input is there (sliced, so that Ctrl-C is delivered while waiting)."""
        deadline = None if timeout_s is None or timeout_s < 0 else time.monotonic() + timeout_s
        with self._stdin_ready:
            while not self._stdin:
                left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._stdin_ready.wait(left)
            return True

    def read_input(self, n: int) -> bytes:
        """Up to ``n`` bytes, at least one (blocking)."""
        self.wait_input(None)
        with self._stdin_ready:
            data = bytes(self._stdin[:n])
            del self._stdin[:n]
        return data

    def stdin(self) -> Any:
        runtime = self

        class Buffer:
            def read(self, n: int = 1) -> bytes:
                out = b""
                while len(out) < n:
                    out += runtime.read_input(n - len(out))
                return out

            def readinto(self, buf: Any, n: int | None = None) -> int:
                n = len(buf) if n is None else n
                data = self.read(n)
                buf[: len(data)] = data
                return len(data)

        class Stdin:
            buffer = Buffer()

            def read(self, n: int = 1) -> str:
                return self.buffer.read(n).decode("utf-8", "replace")

            def readline(self) -> str:
                return runtime.read_line(echo=False)

        return Stdin()

    def stdout(self) -> Any:
        runtime = self

        class Buffer:
            def write(self, data: Any, n: int | None = None) -> int:
                data = bytes(data if n is None else memoryview(data)[:n])
                runtime._write(data)
                return len(data)

        class Stdout:
            buffer = Buffer()

            def write(self, text: str) -> int:
                runtime.emit(text)
                return len(text)

        return Stdout()

    def read_line(self, echo: bool) -> str:
        line = bytearray()
        while True:
            byte = self.read_input(1)[0]
            if byte == 0x0D:
                if echo:
                    self._write(b"\r\n")
                return line.decode("utf-8", "replace")
            if byte in (0x08, 0x7F) and line:
                line.pop()
                if echo:
                    self._write(b"\x08 \x08")
            elif byte >= 0x20:
                line.append(byte)
                if echo:
                    self._write(bytes([byte]))

    def poll(self) -> Any:
        """select.poll() over the code's stdin, what mpremote's mount waits on."""
        runtime = self

        class Poll:
            def __init__(self) -> None:
                self.objects: list[Any] = []

            def register(self, obj: Any, mask: int = POLLIN) -> None:
                self.objects.append(obj)

            def unregister(self, obj: Any) -> None:
                self.objects.remove(obj)

            def modify(self, obj: Any, mask: int) -> None:
                return None

            def poll(self, timeout_ms: int = -1) -> list[tuple[Any, int]]:
                ready = runtime.wait_input(None if timeout_ms < 0 else timeout_ms / 1000)
                return [(obj, POLLIN) for obj in self.objects] if ready else []

            def ipoll(self, timeout_ms: int = -1, flags: int = 0) -> Any:
                return iter(self.poll(timeout_ms))

        return Poll()

    # -- builtins ------------------------------------------------------------------------------------------
    def _builtins(self) -> dict[str, Any]:
        names = dict(vars(builtins))
        for gone in ("exit", "quit", "copyright", "credits", "license"):
            names.pop(gone, None)
        names.update(
            __import__=self._import,
            open=self.open,
            print=self._print,
            help=self._help,
            input=self._input,
            __repl_echo__=self._echo,
        )
        return names

    def _print(self, *args: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
        text = sep.join(str(a) for a in args) + end
        if file is not None and hasattr(file, "write"):
            file.write(text)
        else:
            self.emit(text)

    def _echo(self, value: Any) -> None:
        if value is not None:
            self.emit(repr(value) + "\n")
            self.globals["_"] = value

    def _help(self, obj: Any = None) -> None:
        # Never CPython's help(): it would start its pager on the simulator's own terminal.
        self.emit(help_text(obj, self.modules))

    def _input(self, prompt: str = "") -> str:
        self.emit(str(prompt))
        return self.read_line(echo=True)

    # -- the filesystem: the flash and what is mounted on it -------------------------------------------
    def resolve(self, path: str) -> str:
        """An absolute, normalized board path."""
        full = path if path.startswith("/") else self.cwd.rstrip("/") + "/" + path
        parts: list[str] = []
        for part in full.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def route(self, path: str) -> tuple[Any, str] | None:
        """(mounted filesystem, path inside it) when ``path`` lies on a mounted one."""
        full = self.resolve(path)
        for point in sorted(self.mounts, key=len, reverse=True):
            if full == point or full.startswith(point + "/"):
                return self.mounts[point], "/" + full[len(point) :].lstrip("/")
        return None

    def host_path(self, path: str) -> Path:
        rel = self.resolve(path).strip("/")
        return self.flash.joinpath(*rel.split("/")) if rel else self.flash

    def open(self, path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        hit = self.route(path)
        if hit is not None:
            return hit[0].open(hit[1], mode)
        try:
            return open(self.host_path(path), mode)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, "ENOENT") from None
        except IsADirectoryError:
            raise OSError(errno.EISDIR, "EISDIR") from None

    def mount(self, vfs: Any, point: str) -> None:
        point = self.resolve(point)
        if point == "/" or point in self.mounts:
            raise OSError(errno.EPERM, "EPERM")
        if hasattr(vfs, "mount"):
            vfs.mount(False, False)
        self.mounts[point] = vfs

    def umount(self, point: str) -> None:
        vfs = self.mounts.pop(self.resolve(point), None)
        if vfs is None:
            raise OSError(errno.EINVAL, "EINVAL")
        if hasattr(vfs, "umount"):
            vfs.umount()

    def _mode_of(self, path: str) -> int | None:
        """The stat mode of a board path, None if there is nothing."""
        try:
            return int(self.modules["os"].stat(path)[0])
        except OSError:
            return None

    # -- importing: built-in modules, then .py files along sys.path --------------------------------------
    def _import(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level:
            package = (globals or {}).get("__package__") or ""
            parts = package.split(".") if package else []
            if level - 1 > len(parts):
                raise ImportError("can't perform relative import")
            base = ".".join(parts[: len(parts) - (level - 1)])
            name = f"{base}.{name}" if name and base else (name or base)
        module = None
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            module = self._load(".".join(parts[:i]))
        for item in fromlist or ():
            if item != "*" and not hasattr(module, item) and hasattr(module, "__path__"):
                with contextlib.suppress(ImportError):
                    self._load(f"{name}.{item}")
        return module if fromlist else self._load(parts[0])

    def _load(self, name: str) -> Any:
        loaded = self.modules["sys"].modules
        if name in loaded:
            return loaded[name]
        if "." not in name and name in self.modules:
            return self.modules[name]
        parent, _, last = name.rpartition(".")
        folders = (
            list(getattr(self._load(parent), "__path__", []))
            if parent
            else [self.resolve(entry or self.cwd) for entry in self.sys_path if isinstance(entry, str)]
        )
        source, package = self._find(last, folders)
        if source is None and package is None:
            raise ImportError(f"no module named '{name}'")
        module = ModuleType(name)
        module.__file__ = source or f"{package}/__init__.py"
        module.__builtins__ = self.globals["__builtins__"]  # type: ignore[attr-defined]
        module.__package__ = name if package is not None else parent
        if package is not None:
            module.__path__ = [package]  # type: ignore[attr-defined]
        loaded[name] = module
        try:
            if source is not None:
                with self.open(source, "r") as f:
                    text = f.read()
                exec(compile(text, source, "exec", dont_inherit=True), vars(module))
        except BaseException:
            del loaded[name]
            raise
        if parent:
            setattr(self._load(parent), last, module)
        return module

    def _find(self, last: str, folders: list[str]) -> tuple[str | None, str | None]:
        """(source file, package folder) as board paths, from the first folder that has the module; a
        folder without __init__.py is a package too, as in MicroPython."""
        for folder in folders:
            base = folder.rstrip("/") + "/" + last
            mode = self._mode_of(base)
            if mode is not None and mode & 0x4000:
                init = base + "/__init__.py"
                return (init if self._mode_of(init) is not None else None), base
            if self._mode_of(base + ".py") is not None:
                return base + ".py", None
            if self._mode_of(base + ".mpy") is not None:
                raise ImportError(f"{last}.mpy: compiled bytecode cannot run on the simulated board")
        return None, None


def _traceback(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        line = f"OSError: [Errno {exc.errno}] {errno.errorcode.get(exc.errno, str(exc.errno))}"
    else:
        line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n{line}\n'


class _Echo(ast.NodeTransformer):
    """Expression statements print their value (MicroPython's single-input mode), except inside
    function and class bodies."""

    def visit_FunctionDef(self, node: ast.AST) -> ast.AST:
        return node

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        call = ast.Call(ast.Name("__repl_echo__", ast.Load()), [node.value], [])
        return ast.copy_location(ast.Expr(call), node)
