"""One process per run directory: `RUN/.lock` names the process that holds it (pid, host, start
time), created atomically (O_CREAT | O_EXCL), so of two `aft-fast train` on the same `--out` the
second is refused, naming the first. A lock whose holder is gone (a crash, kill -9: same host,
no such pid) is taken over, said once; a holder on another host cannot be checked, so the error
says which file to delete once that process is known to be gone. Released when the run ends,
whatever way it ends (a signal's checkpoint, an error)."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from aft_fast.errors import OptionError

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RunLock:
    def __init__(self, run_dir, say=lambda s: None):
        self.path, self.say, self.held = Path(run_dir) / LOCK_NAME, say, False

    def holder(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # torn or foreign: no holder that can be checked
        return data if isinstance(data, dict) else {}

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # the second try: after a dead holder's lock is removed
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_dead(self.holder())
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise OptionError("out", f"{self.path.parent} could not be locked ({self.path} came "
                          "back at once): another run is starting there; pick another --out")

    def _take_over_if_dead(self, holder: dict | None) -> None:
        if holder is None:
            return  # released in between
        pid, host = holder.get("pid"), holder.get("host")
        here = host == socket.gethostname() and isinstance(pid, int)
        if here and pid != os.getpid() and not _alive(pid):
            self.say(f"{self.path}: its holder (pid {pid}, since {holder.get('since')}) is gone; "
                     "taking the run directory over")
            self.path.unlink(missing_ok=True)
            return
        who = (f"process {pid} on {host} (since {holder.get('since')})" if pid
               else f"an unreadable lock {self.path}")
        fix = (f"wait for it to end or stop it (if process {pid} is not a training run, its pid "
               f"was reused: delete {self.path})" if here else
               f"if that process is gone, delete {self.path}")
        raise OptionError("out", f"{self.path.parent} is in use by {who}: {fix}, or pick "
                          "another --out")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
