"""`serve --auth` in a process of its own, with scripted backends, for the security tests.

Run as ``python -m tests.reliability.security_server CONFIG.json``. The config names the
database, the port, the replies, and any ServeOptions to change (quota, cache lifetime). A
second backend, "failing", answers every request with an error whose text is ``error_text``:
errors are a render site too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from backends.base import BackendError, ChatMessage, Delta, GenerationOptions
from backends.scripted import ScriptedBackend


class FailingBackend(ScriptedBackend):
    def __init__(self, message: str) -> None:
        super().__init__("failing")
        self.message = message

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[Delta]:
        raise BackendError(self.message)


def main(config_file: str) -> None:
    from tests.conftest import make_app
    from ui.server import ServeOptions, launch

    config: dict[str, Any] = json.loads(Path(config_file).read_text(encoding="utf-8"))
    backends = [
        ScriptedBackend(reply=config.get("reply", "A plain reply."), delay_s=config.get("delay_s", 0.0)),
        FailingBackend(config.get("error_text", "the backend failed")),
    ]
    app = make_app(config["db_url"], *backends)
    options = ServeOptions(port=int(config["port"]), auth=True, **config.get("options", {}))
    launch(app, options, block=True)


if __name__ == "__main__":
    main(sys.argv[1])
