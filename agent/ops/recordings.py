"""Optional per-session transcripts (KYUTAI_RECORDINGS_DIR): JSON lines, text only.

No user audio is ever stored; a participant who opts out (attribute `kyutai.recording` set to
`off`) has the file deleted at once and nothing more written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent.log import logger

OPT_OUT_ATTRIBUTE = "kyutai.recording"
OPT_OUT_VALUES = frozenset({"off", "false", "0", "no", "opt-out"})


def opted_out(attributes: dict[str, str]) -> bool:
    return attributes.get(OPT_OUT_ATTRIBUTE, "").strip().lower() in OPT_OUT_VALUES


class Recording:
    def __init__(self, directory: Path, session_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c for c in session_id if c.isalnum() or c in "-_") or "session"
        self.path = directory / f"{safe}.jsonl"
        self._file: Any = self.path.open("a", encoding="utf-8")
        self.deleted = False

    def write(self, kind: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"t": round(time.time(), 3), "kind": kind, **fields}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def delete(self) -> None:
        """The participant opted out: remove what was written and stop recording."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.deleted = True
        logger.info("recording deleted at the participant's request")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
