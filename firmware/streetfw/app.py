# The board's main loop: samples the configured sensors, raises and clears alarms, and speaks the
# wire protocol with the gateway. MicroPython code (runs under CPython too, for the simulated board).
#
# One loop, no threads: each pass reads what the link received, answers it, samples the sensors that
# are due, retransmits unacknowledged alarms, and feeds the watchdog. Everything is timed with
# ticks_ms/ticks_diff, which survive the tick counter wrapping.
#
# Contents (one file on the board: a MicroPython import costs RAM), in Board's "# --" sections:
#   _Slot                one sensor's schedule and alarm states
#   sending              frames out: HELLO, READING, LOG, timestamps
#   alarms               raise, clear and retransmit until acknowledged
#   sampling             read due sensors, count faults
#   receiving            frames in: ACK, PING, TIME, HELLO, CMD; the _op_* commands (lamp, config, ...)
#   files                fs_* commands for `edgectl board flash` over the protocol
#   file transfer        FILE_OPEN/DATA/CLOSE for firmware updates (PATH.part, sha256, rename)
#   the loop             step() and run()
#   module functions     file helpers, config loading, main()
import json

from . import VERSION, wire

CONFIG_PATH = "/config.json"
ALARM_RETRY_MS = 1000  # first retransmission of an unacknowledged alarm; doubles up to ALARM_RETRY_MAX_MS
ALARM_RETRY_MAX_MS = 8000
MAX_PENDING_ALARMS = 32  # unacknowledged alarms held for the gateway (a gateway away for hours)
FAULT_AFTER = 3  # consecutive failed reads before a sensor_fault alarm
HYSTERESIS = 0.05  # an alarm clears when the value falls 5 % below its threshold
WATCHDOG_MS = 8000
CAPS = ("lamp", "time", "file", "config", "repl")


class _Slot:
    """One configured sensor and its schedule, alarm states and last values."""

    def __init__(self, sensor, entry, now):
        self.sensor = sensor
        self.name = sensor.name
        self.interval_ms = int(float(entry.get("interval_s", 10)) * 1000)
        self.thresholds = dict(entry.get("thresholds") or {})
        self.due = now
        self.reported = None  # ticks of the last READING sent
        self.values = None
        self.read_at = now
        self.active = {}  # threshold key -> alarm id while the alarm is open
        self.failures = 0
        self.fault = None  # alarm id of an open sensor_fault alarm


class Board:
    """The firmware. ``hal`` is the hardware (real or simulated), ``link`` the serial link to the gateway."""

    def __init__(self, hal, link, config, make_sensor=None, root="", version=VERSION):
        self.version = version
        self.hal = hal
        self.link = link
        self.config = config
        self.root = root  # the filesystem's root: "" on a board, a folder for the simulated one
        self.config_path = root + CONFIG_PATH
        self.board_id = config.get("board_id", "unprovisioned")
        self.report_ms = int(float(config.get("report_interval_s", 60)) * 1000)
        self.deframer = wire.Deframer()
        self.rx = bytearray(128)
        self.seq = 0
        self.boot = _boot_nonce(hal)
        self.alarm_ids = 0
        self.pending = {}  # alarm seq -> [alarm body, next retry ticks, retry delay]
        self.dropped_alarms = 0
        self.retransmits = 0
        self.synced_epoch = None  # epoch ms at the last TIME
        self.synced_ticks = 0
        self.last_result = None  # (id, frame): a repeated CMD gets the same answer, not a second run
        self.files = {}
        self.stop = False
        self.to_repl = False
        self.lamp = None
        self.slots = []
        self.errors = []  # sensors that could not be set up: (name, reason)
        now = hal.ticks_ms()
        if make_sensor is None:
            from . import sensor as _sensor

            def make_sensor(entry):
                return _sensor.create(hal, entry)

        for entry in config.get("sensors") or []:
            try:
                self.slots.append(_Slot(make_sensor(entry), entry, now))
            except Exception as exc:  # a missing or broken sensor must not stop the others
                self.errors.append((entry.get("id") or entry.get("type"), repr(exc)))
        lamp = config.get("lamp")
        if lamp:
            from .lamp import Lamp

            try:
                self.lamp = Lamp(hal, lamp["pin"], lamp.get("frequency_hz", 1000), lamp.get("level", 1.0))
            except Exception as exc:
                self.errors.append(("lamp", repr(exc)))

    # -- sending --------------------------------------------------------------------------------------
    def _send(self, ftype, body, seq=None):
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        self.link.write(wire.encode_frame(ftype, seq, body))
        return seq

    def _stamp(self, body, at):
        """Age of a sample at the time of sending, and its wall-clock time once the clock is set."""
        now = self.hal.ticks_ms()
        body["age"] = max(0, self.hal.ticks_diff(now, at))
        if self.synced_epoch is not None:
            body["t"] = self.synced_epoch + self.hal.ticks_diff(at, self.synced_ticks)
        return body

    def log(self, level, message):
        self._send(wire.LOG, {"l": level, "m": message})

    def _describe(self, slot):
        s = slot.sensor
        return {"n": slot.name, "t": s.TYPE, "u": s.UNITS, "i": slot.interval_ms, "th": slot.thresholds}

    def hello(self, brief=False):
        # A brief HELLO names the sensors only (a few dozen bytes instead of about 500): on a noisy
        # line a long frame rarely arrives whole, so the gateway asks for it and then fetches each
        # sensor's details with the small, retried "describe" command.
        if brief:
            sensors = [{"n": slot.name} for slot in self.slots]
        else:
            sensors = [self._describe(slot) for slot in self.slots]
        body = {
            "id": self.board_id,
            "fw": self.version,
            "proto": wire.PROTOCOL,
            "boot": self.boot,
            "sensors": sensors,
            "caps": list(CAPS),
            "synced": self.synced_epoch is not None,
        }
        if self.lamp is not None:
            body["lamp"] = self.lamp.level
        mpy = _mpy()
        if mpy is not None:
            body["mpy"] = mpy
        if self.errors:
            body["errors"] = ["%s: %s" % e for e in self.errors]
        self._send(wire.HELLO, body)

    # -- alarms ---------------------------------------------------------------------------------------
    def _alarm(self, slot, key, phase, severity, value, threshold, at, alarm_id=None):
        if alarm_id is None:
            self.alarm_ids += 1
            alarm_id = self.alarm_ids
        body = {"a": alarm_id, "s": slot.name, "k": key, "ph": phase, "sev": severity, "v": value, "at": at}
        if threshold is not None:
            body["th"] = threshold
        if len(self.pending) >= MAX_PENDING_ALARMS:
            oldest = min(self.pending, key=lambda q: self.pending[q][0]["a"])
            del self.pending[oldest]
            self.dropped_alarms += 1
        seq = self._send(wire.ALARM, self._stamp(_public(body), at))
        self.pending[seq] = [body, self.hal.ticks_ms(), ALARM_RETRY_MS]
        return alarm_id

    def _retransmit(self, now):
        for seq in list(self.pending):
            entry = self.pending[seq]
            if self.hal.ticks_diff(now, entry[1]) >= entry[2]:
                body = entry[0]
                self._send(wire.ALARM, self._stamp(_public(body), body["at"]), seq)
                entry[1] = now
                entry[2] = min(entry[2] * 2, ALARM_RETRY_MAX_MS)
                self.retransmits += 1

    def _check(self, slot, values, now):
        severity_of = getattr(slot.sensor, "SEVERITY", {}) or {}
        for key in slot.thresholds:
            if key not in values:
                continue
            th = slot.thresholds[key]
            v = values[key]
            open_id = slot.active.get(key)
            if open_id is None and v >= th:
                sev = severity_of.get(key, "warning")
                slot.active[key] = self._alarm(slot, key, "start", sev, v, th, now)
                slot.reported = None  # a reading goes with the alarm
            elif open_id is not None and v < th - abs(th) * HYSTERESIS:
                sev = severity_of.get(key, "warning")
                self._alarm(slot, key, "end", sev, v, th, now, open_id)
                del slot.active[key]
                slot.reported = None

    # -- sampling -------------------------------------------------------------------------------------
    def _sample(self, slot, now):
        slot.due = now + slot.interval_ms
        try:
            values = slot.sensor.read()
        except Exception as exc:
            slot.failures += 1
            if slot.failures == 1:
                self.log("warning", "%s: %s" % (slot.name, exc))
            if slot.failures == FAULT_AFTER and slot.fault is None:
                slot.fault = self._alarm(slot, "sensor_fault", "start", "warning", slot.failures, None, now)
            return
        if slot.fault is not None:
            self._alarm(slot, "sensor_fault", "end", "warning", 0, None, now, slot.fault)
            slot.fault = None
        slot.failures = 0
        slot.values = values
        slot.read_at = now
        self._check(slot, values, now)
        if slot.reported is None or self.hal.ticks_diff(now, slot.reported) >= self.report_ms:
            slot.reported = now
            self._send(wire.READING, self._stamp({"s": slot.name, "v": values}, now))

    # -- receiving ------------------------------------------------------------------------------------
    def _receive(self):
        n = self.link.readinto(self.rx)
        while n:
            for frame in self.deframer.feed(memoryview(self.rx)[:n]):
                self._handle(frame[0], frame[1], frame[2])
            n = self.link.readinto(self.rx)

    def _handle(self, ftype, seq, body):
        if ftype == wire.ACK:
            if isinstance(body, int):
                self.pending.pop(body, None)
        elif ftype == wire.PING:
            self._send(wire.PONG, body)
        elif ftype == wire.TIME:
            if isinstance(body, dict) and isinstance(body.get("t"), int):
                self.synced_ticks = self.hal.ticks_ms()
                self.synced_epoch = body["t"]
                self._send(wire.ACK, seq)
        elif ftype == wire.HELLO:
            self.hello(isinstance(body, dict) and body.get("brief") is True)
        elif ftype == wire.CMD:
            self._command(body)
        elif ftype in (wire.FILE_OPEN, wire.FILE_DATA, wire.FILE_CLOSE):
            self._file(ftype, body)

    def _reply(self, req_id, ok, value):
        body = {"id": req_id, "ok": ok}
        body["r" if ok else "e"] = value
        frame = wire.encode_frame(wire.RESULT, (self.seq + 1) & 0xFFFF, body)
        self.seq = (self.seq + 1) & 0xFFFF
        self.last_result = (req_id, frame)
        self.link.write(frame)

    def _command(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            self.log("warning", "CMD without an id ignored")
            return
        req_id = body["id"]
        if self.last_result is not None and self.last_result[0] == req_id:
            self.link.write(self.last_result[1])  # the gateway missed our answer: the same again
            return
        op = body.get("op")
        args = body.get("a") or {}
        handler = getattr(self, "_op_" + str(op), None)
        if handler is None or not isinstance(args, dict):
            self._reply(req_id, False, "unknown command %r" % (op,))
            return
        try:
            self._reply(req_id, True, handler(args))
        except Exception as exc:
            self._reply(req_id, False, "%s: %s" % (op, exc))
            return
        if op == "reboot":
            self.hal.sleep_ms(50)
            self.hal.reset()
        elif op == "repl":
            self.to_repl = True

    def _slot(self, args):
        name = args.get("sensor")
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise ValueError("no sensor named %r" % (name,))

    def _op_describe(self, args):
        return self._describe(self._slot(args))

    def _op_lamp(self, args):
        if self.lamp is None:
            raise ValueError("this board has no lamp configured")
        level = args.get("level")
        if not isinstance(level, (int, float)) or not 0 <= level <= 1:
            raise ValueError("level must be a number from 0 to 1")
        self.lamp.set(level)
        return {"level": self.lamp.level}

    def _op_interval(self, args):
        slot = self._slot(args)
        seconds = args.get("interval_s")
        if not isinstance(seconds, (int, float)) or not 0 < seconds <= 86400:
            raise ValueError("interval_s must be a number of seconds from 0 to 86400")
        slot.interval_ms = int(seconds * 1000)
        slot.due = self.hal.ticks_ms()
        return {"sensor": slot.name, "interval_s": seconds}

    def _op_threshold(self, args):
        slot = self._slot(args)
        key = args.get("key")
        value = args.get("value")
        if key not in slot.sensor.UNITS:
            raise ValueError("%s has no value %r" % (slot.name, key))
        if value is None:
            slot.thresholds.pop(key, None)
        elif isinstance(value, (int, float)):
            slot.thresholds[key] = value
        else:
            raise ValueError("value must be a number, or nil to remove the threshold")
        return {"sensor": slot.name, "thresholds": slot.thresholds}

    def _op_status(self, args):
        out = {
            "fw": self.version,
            "uptime_ms": self.hal.ticks_ms(),
            "pending_alarms": len(self.pending),
            "dropped_alarms": self.dropped_alarms,
            "retransmits": self.retransmits,
            "frames_good": self.deframer.good,
            "frames_corrupt": self.deframer.corrupt,
        }
        try:
            import gc

            out["mem_free"] = gc.mem_free()
        except (ImportError, AttributeError):
            pass
        return out

    def _op_read_config(self, args):
        return self.config

    def _op_write_config(self, args):
        config = args.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("board_id"), str):
            raise ValueError("config must be a map with a board_id")
        data = json.dumps(config)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        _replace(self.config_path, self.config_path.replace(".json", ".prev.json"))
        _rename(tmp, self.config_path)
        return {"written": len(data), "reboot": "needed"}

    def _op_reboot(self, args):
        return {"rebooting": True}

    def _op_repl(self, args):
        return {"repl": True}

    def _op_ping(self, args):
        return {"pong": True}

    # -- files, for `edgectl board flash` over the protocol (small files; data goes by FILE_* frames) ------
    def _fs_path(self, args, key="path"):
        path = args.get(key)
        if not isinstance(path, str) or not path.startswith("/") or ".." in path:
            raise ValueError("%s must be an absolute path without '..'" % key)
        return self.root + path

    def _op_fs_read(self, args):
        # With an offset, one chunk of up to FS_READ_MAX bytes (a short one ends the file), so that a
        # file larger than one frame (a config with its board profile) can be read piece by piece.
        offset = args.get("offset")
        try:
            with open(self._fs_path(args), "rb") as f:
                if offset is None:
                    data = f.read(FS_READ_MAX + 1)
                elif isinstance(offset, int) and offset >= 0:
                    f.seek(offset)
                    return f.read(FS_READ_MAX)
                else:
                    raise ValueError("offset must be a byte count from 0")
        except OSError:
            return None
        if len(data) > FS_READ_MAX:
            raise ValueError("file larger than %d bytes; read it by offset" % FS_READ_MAX)
        return data

    def _op_fs_sha256(self, args):
        try:
            digest = _sha256_file(self._fs_path(args))
        except OSError:
            return None
        import binascii

        return binascii.hexlify(digest).decode()

    def _op_fs_rename(self, args):
        _rename(self._fs_path(args, "old"), self._fs_path(args, "new"))
        return True

    def _op_fs_rmtree(self, args):
        _rmtree(self._fs_path(args))
        return True

    def _op_fs_mkdir(self, args):
        _makedirs(self._fs_path(args))
        return True

    def _op_fs_listdir(self, args):
        import os

        try:
            return sorted(os.listdir(self._fs_path(args)))
        except OSError:
            return []

    def _op_fs_free(self, args):
        import os

        st = os.statvfs(self.root or "/")
        return st[0] * st[4]  # block size x free blocks

    # -- file transfer (firmware updates): written to PATH.part, checked by sha256, then renamed ------
    def _file(self, ftype, body):
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            return
        req_id = body["id"]
        if self.last_result is not None and self.last_result[0] == req_id:
            # A retransmission (our answer was lost on the line): answer again, do not redo it; a
            # second FILE_CLOSE would find no file open, a second FILE_OPEN would truncate the file.
            self.link.write(self.last_result[1])
            return
        try:
            if ftype == wire.FILE_OPEN:
                path = body["p"]
                if not isinstance(path, str) or not path.startswith("/") or ".." in path:
                    raise ValueError("path must be absolute without '..'")
                path = self.root + path
                _makedirs(path[: path.rfind("/")])
                self.files = {"path": path, "size": body["n"], "sha": body["h"], "got": 0}
                with open(path + ".part", "wb"):
                    pass
                self._reply(req_id, True, 0)
            elif ftype == wire.FILE_DATA:
                state = self.files
                if not state:
                    raise ValueError("no file open")
                offset = body["o"]
                data = body["d"]
                if offset == state["got"]:
                    with open(state["path"] + ".part", "ab") as f:
                        f.write(data)
                    state["got"] += len(data)
                elif offset > state["got"]:
                    raise ValueError("chunk at %d, expected %d" % (offset, state["got"]))
                self._reply(req_id, True, state["got"])  # an old offset is a repeat: acknowledged again
            else:
                state = self.files
                if not state:
                    raise ValueError("no file open")
                self.files = {}
                part = state["path"] + ".part"
                digest = _sha256_file(part)
                if state["got"] != state["size"] or digest != state["sha"]:
                    raise ValueError("file does not match its size and sha256; not installed")
                _rename(part, state["path"])
                self._reply(req_id, True, state["got"])
        except Exception as exc:
            self._reply(req_id, False, "file: %s" % (exc,))

    # -- the loop -------------------------------------------------------------------------------------
    def step(self):
        """One pass of the loop; returns how long the board may sleep before the next one (ms)."""
        self._receive()
        now = self.hal.ticks_ms()
        wait = 50
        for slot in self.slots:
            left = self.hal.ticks_diff(slot.due, now)
            if left <= 0:
                self._sample(slot, now)
                left = slot.interval_ms
            wait = min(wait, left)
        if self.pending:
            self._retransmit(now)
        return max(wait, 1)

    def run(self):
        self.hal.kbd_intr(-1)  # the link may be the REPL's: a 0x03 byte in a frame must not stop us
        wdt = self.hal.watchdog(WATCHDOG_MS)
        try:
            self.hello()
            for name, reason in self.errors:
                self.log("error", "%s: %s" % (name, reason))
            while not self.stop and not self.to_repl:
                wait = self.step()
                wdt.feed()
                self.hal.sleep_ms(min(wait, 10))
        finally:
            self.hal.kbd_intr(3)


# -- module functions: file helpers, config loading, main() -----------------------------------
def _public(body):
    """An alarm body as sent: the internal capture tick stays on the board."""
    out = dict(body)
    del out["at"]
    return out


FS_READ_MAX = 768


def _mpy():
    """The bytecode version this MicroPython loads (None under CPython)."""
    import sys

    mpy = getattr(sys.implementation, "_mpy", None)
    return mpy & 0xFF if isinstance(mpy, int) else None


def _rmtree(path):
    import os

    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:  # a folder
        for name in os.listdir(path):
            _rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _boot_nonce(hal):
    try:
        import os

        return int.from_bytes(os.urandom(4), "little")
    except (ImportError, AttributeError, NotImplementedError):
        return hal.ticks_ms() & 0xFFFFFFFF


def _sha256_file(path):
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(256)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    return h.digest()


def _rename(old, new):
    import os

    try:
        os.rename(old, new)
    except OSError:  # FAT will not rename over an existing file
        try:
            os.remove(new)
        except OSError:
            pass
        os.rename(old, new)


def _makedirs(folder):
    import os

    built = ""
    for part in folder.split("/"):
        if not part:
            built = built or ("/" if folder.startswith("/") else "")
            continue
        built = built + part if built.endswith("/") or not built else built + "/" + part
        try:
            os.mkdir(built)
        except OSError:
            pass  # exists already


def _replace(current, keep):
    try:
        _rename(current, keep)
    except OSError:
        pass  # nothing to keep


def load_config(path=CONFIG_PATH):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"board_id": "unprovisioned", "sensors": []}


def main(hal=None, link=None):
    """Entry point on a board: /fw/<version>/main.py calls this."""
    config = load_config()
    if hal is None:
        from .hal import MachineHAL

        hal = MachineHAL(config.get("profile"))  # the board family's pins, shipped by provisioning
    if link is None:
        link = hal.link()
    Board(hal, link, config).run()
