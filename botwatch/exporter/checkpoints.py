"""Per-bot checkpoints of the trade-file check, so a restarted exporter does not re-read every file.

In `--state-dir`, one folder per bot: `checkpoint.json` (offsets, fingerprint, problem counts, the P&L
book, the id window's newest hashes; with a checksum over all of it) and one `ids-*.u64` file per sealed
generation of the id window, named by its digest. A sealed generation never changes, so it is written
once; the JSON is replaced atomically (write a temp file, rename), at most every `every` seconds and only
when the check moved on. Nothing is fsynced: a checkpoint lost or torn by a power cut fails its
checksum and costs one re-read, never a wrong figure. A checkpoint is used only when every part of it checks out (format, bot, file, config, checksum,
each generation's digest) and the file is provably the one it describes, extended; otherwise it is
ignored, with the reason logged, and the file is read from its first byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from botwatch.core.config import Bot
from botwatch.core.idwindow import IdWindow

log = logging.getLogger(__name__)

FORMAT = "botwatch-exporter-checkpoint/1"
EVERY = 5.0           # seconds between two checkpoints of one bot, at most one per check round
_GENERATION_FILE = re.compile(r"ids-[0-9a-f]{32}\.u64")


class Checkpoints:
    def __init__(self, state_dir: Path | str, every: float = EVERY, monotonic: Callable[[], float] = time.monotonic):
        self.dir = Path(state_dir)
        self.every = every
        self.monotonic = monotonic
        self._saved: dict[str, tuple[float, object]] = {}     # bot -> (when, what moved) of the last save

    def _bot_dir(self, bot: Bot) -> Path:
        return self.dir / bot.name

    @staticmethod
    def _identity(bot: Bot) -> dict:
        """What must match for a checkpoint to be this bot's: its file and every setting the figures depend on."""
        return {"bot": bot.name, "data_file": str(Path(bot.data_file).resolve()),
                "data_format": bot.data_format.model_dump(mode="json"), "starting_balance": bot.starting_balance}

    # -- saving ---------------------------------------------------------------------------------------

    def save(self, bot: Bot, store, force: bool = False) -> bool:
        """Write the store's checkpoint if it moved on and the last one is old enough; True when written."""
        state = store.checkpoint()
        if state is None:
            return False
        check = state["check"]
        moved = (check["file"], check["offset"], check["rows"], check["corrupt"], check["pending"])
        last = self._saved.get(bot.name)
        now = self.monotonic()
        if last and (last[1] == moved or (not force and now - last[0] < self.every)):
            return False
        window = store.check.window
        added, sealed, fresh = window.state()
        folder = self._bot_dir(bot)
        folder.mkdir(parents=True, exist_ok=True)
        generations = []
        for generation in sealed:
            data = generation.tobytes()
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            name = f"ids-{digest}.u64"            # named by content: written once, shared by every checkpoint
            if not (folder / name).exists():
                _write_atomically(folder / name, data)
            generations.append(name)
        body = {"format": FORMAT, **self._identity(bot), "store": state,
                "window": {"size": window.size, "added": added, "sealed": generations,
                           "fresh": base64.b64encode(fresh.tobytes()).decode()}}
        text = json.dumps(body, sort_keys=True, allow_nan=False)
        checksum = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        _write_atomically(folder / "checkpoint.json", json.dumps({"checksum": checksum, "body": text}).encode())
        for stale in folder.iterdir():            # generations no checkpoint refers to any more
            if _GENERATION_FILE.fullmatch(stale.name) and stale.name not in generations:
                stale.unlink(missing_ok=True)
        self._saved[bot.name] = (now, moved)
        return True

    # -- loading --------------------------------------------------------------------------------------

    def load(self, bot: Bot, store) -> bool:
        """Resume `store` from the bot's checkpoint if there is one that checks out; True when resumed."""
        path = self._bot_dir(bot) / "checkpoint.json"
        for leftover in self._bot_dir(bot).glob(".*.tmp"):     # from a save cut short
            leftover.unlink(missing_ok=True)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as err:
            log.warning("%s: can't read the checkpoint %s (%s); reading the file from its first byte",
                        bot.name, path, err.strerror)
            return False
        try:
            body, window = self._parse(bot, raw)
        except (ValueError, TypeError, KeyError, OSError) as err:
            log.warning("%s: ignoring the checkpoint %s: %s; reading the file from its first byte", bot.name, path, err)
            return False
        if not store.resume(body["store"], window):
            return False
        log.info("%s: resumed from the checkpoint at byte %d (%d rows)", bot.name,
                 body["store"]["check"]["offset"], body["store"]["check"]["rows"])
        return True

    def _parse(self, bot: Bot, raw: bytes) -> tuple[dict, IdWindow]:
        outer = json.loads(raw, parse_constant=_refuse)
        text = outer["body"]
        if not isinstance(text, str) or hashlib.blake2b(text.encode(), digest_size=16).hexdigest() != outer["checksum"]:
            raise ValueError("its checksum does not match (damaged)")
        body = json.loads(text, parse_constant=_refuse)
        if body.get("format") != FORMAT:
            raise ValueError(f"its format is {body.get('format')!r}, not {FORMAT!r}")
        for key, value in self._identity(bot).items():
            if body.get(key) != value:
                raise ValueError(f"it was written for another {key} ({body.get(key)!r})")
        spec = body["window"]
        if spec["size"] != bot.data_format.dedup_window:
            raise ValueError("its id window has another size")
        sealed = []
        for name in spec["sealed"]:
            if not isinstance(name, str) or not _GENERATION_FILE.fullmatch(name):
                raise ValueError(f"{name!r} is not an id-generation file")
            data = (self._bot_dir(bot) / name).read_bytes()
            if f"ids-{hashlib.blake2b(data, digest_size=16).hexdigest()}.u64" != name:
                raise ValueError(f"{name} is damaged")
            sealed.append(np.frombuffer(data, dtype=np.uint64))
        fresh = np.frombuffer(base64.b64decode(spec["fresh"], validate=True), dtype=np.uint64)
        if type(spec["added"]) is not int:
            raise ValueError("its id count is not a number")
        return body, IdWindow.restored(spec["size"], spec["added"], sealed, fresh)


def _refuse(constant: str):
    raise ValueError(f"{constant} is not a number a checkpoint holds")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
