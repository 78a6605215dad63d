"""Serial ports a board may be on: USB ids, which ones look like MicroPython boards, opening them safely."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import serial
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from ..errors import NO_PORT, EdgectlError
from .sim_registry import running

# USB ids MicroPython itself reports when it runs on a chip with native USB.
MICROPYTHON_USB = {
    (0xF055, 0x9800): "MicroPython (pyboard-class)",
    (0x2E8A, 0x0005): "MicroPython on RP2040/RP2350",
    (0x303A, 0x4001): "MicroPython on ESP32-S2/S3",
}
# Vendors whose chips boards run MicroPython on, and USB-UART bridges boards sit behind.
USB_VENDORS = {
    0x303A: "Espressif native USB",
    0x2E8A: "Raspberry Pi RP2040/RP2350",
    0x10C4: "Silicon Labs CP210x USB-UART",
    0x1A86: "WCH CH340/CH9102 USB-UART",
    0x0403: "FTDI USB-UART",
    0x067B: "Prolific PL2303 USB-UART",
}


@dataclass(frozen=True)
class PortInfo:
    """One serial port as a technician needs to see it."""

    device: str
    vid: int | None
    pid: int | None
    description: str
    serial_number: str | None
    kind: str  # what the USB ids say it is, "" if nothing known
    micropython: str  # "yes": MicroPython's own USB ids; "maybe": a chip or bridge boards use; "sim": a
    # simulated board (`edgectl board sim`); "" no

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else "-"


def classify(info: ListPortInfo) -> PortInfo:
    vid, pid = info.vid, info.pid
    kind, micropython = "", ""
    if vid is not None and pid is not None and (vid, pid) in MICROPYTHON_USB:
        kind, micropython = MICROPYTHON_USB[(vid, pid)], "yes"
    elif vid is not None and vid in USB_VENDORS:
        kind, micropython = USB_VENDORS[vid], "maybe"
    description = info.description if info.description and info.description != "n/a" else ""
    return PortInfo(info.device, vid, pid, description, info.serial_number, kind, micropython)


def list_serial_ports(extra: list[str] | None = None, simulated: bool = False) -> list[PortInfo]:
    """USB and other serial ports of this machine, plus ``extra`` paths and, with ``simulated``, the
    boards `edgectl board sim` runs."""
    found = [classify(p) for p in sorted(list_ports.comports(), key=lambda p: p.device)]
    if simulated:
        found += [
            PortInfo(s.port, None, None, s.detail, None, f"simulated board ({s.kind})", "sim")
            for s in running()
        ]
    known = {p.device for p in found}
    for path in extra or []:
        if path not in known:
            if not Path(path).exists():
                raise EdgectlError(
                    f"{path}: no such serial port; `edgectl board list` shows the ports", NO_PORT
                )
            found.append(classify(ListPortInfo(path, skip_link_detection=True)))
    return found


def open_port(path: str, baud: int = 115200, timeout: float = 0.2) -> serial.Serial:
    """Open a serial port exclusively, turning the usual failures into sentences with the fix.

    DTR and RTS are set low before opening: on many ESP32 boards they drive EN and GPIO0 through the
    USB-UART bridge, and the default high level at open resets the board or holds it in its bootloader.
    """
    port = serial.Serial(timeout=timeout, write_timeout=5.0, exclusive=True)
    port.port = path
    port.baudrate = baud
    port.dtr = False
    port.rts = False
    try:
        port.open()
    except serial.SerialException as exc:
        raise port_error(path, exc) from None
    return port


def port_error(path: str, exc: BaseException) -> EdgectlError:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or (code is None and "No such file" in text):
        return EdgectlError(
            f"{path}: no such serial port; is the cable plugged in? `edgectl board list` shows the ports",
            NO_PORT,
        )
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return EdgectlError(
            f"{path}: permission denied; add your user to the port's group (usually `dialout`: "
            "sudo usermod -aG dialout $USER, then log out and in again)",
            NO_PORT,
        )
    if code == errno.EBUSY or "lock" in text.lower() or "busy" in text.lower():
        return EdgectlError(
            f"{path}: the port is in use by another program (the edge-agent, mpremote, a terminal?); "
            "close it or stop the agent (systemctl stop edge-agent) and try again",
            NO_PORT,
        )
    return EdgectlError(f"{path}: cannot open the serial port: {text}", NO_PORT)


def the_only_board() -> str:
    """The port of the one board plugged in, for commands given no --port; refuses to guess among several."""
    boards = [p for p in list_serial_ports() if p.micropython]
    if len(boards) == 1:
        return boards[0].device
    if not boards:
        sims = [s.port for s in running()]
        hint = f" (a simulated board runs on {', '.join(sims)})" if sims else ""
        raise EdgectlError(
            f"no board found on USB; plug it in with a data cable, or name its port with --port{hint}",
            NO_PORT,
        )
    names = ", ".join(p.device for p in boards)
    raise EdgectlError(f"several boards are plugged in ({names}); choose one with --port", NO_PORT)
