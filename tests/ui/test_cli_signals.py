"""Ctrl-C and SIGTERM reach real `llamadesk chat` and `summarize` processes at each stage of their work.

Every stage must end with exit code 130, "cancelled" on stderr, no traceback, and what was done
so far stored: before the fix, a signal while llama.cpp computed freed the model under its compute
thread and the process died of SIGSEGV (exit -11). Each signal is sent on an event the test sees
(a line on stderr, a row in the database), never after a fixed delay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.cli_process import ROOT, CliProcess, messages, query

pytestmark = pytest.mark.slow

STORY = "Write a long, detailed story about a lighthouse keeper and a storm. Use many chapters."
# About 3,000 tokens: seconds of prefill for the demo model, so the signal lands inside it.
LONG_MESSAGE = "Summarize the following notes in one line. " + " ".join(
    f"Note {i}: the delivery of crate {i} arrived on time at dock {i % 7}." for i in range(220)
)


def assert_cancelled(process: CliProcess, code: int) -> None:
    stderr = process.stderr.text()
    assert code == 130, f"exit {code}:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr
    assert stderr.rstrip().endswith("cancelled"), stderr  # after any progress line


def test_sigint_while_modules_load_exits_130(db_url: str) -> None:
    # -X importtime reports each import on stderr as it completes: the signal lands mid start-up.
    process = CliProcess("chat", "hello", db_url=db_url, python_flags=("-X", "importtime"))
    process.wait_for_stderr(r"\|\s+sqlalchemy\n")
    code = process.signal_and_wait()
    said = [line for line in process.stderr.text().splitlines() if not line.startswith("import time:")]
    assert (code, said) == (130, ["cancelled"])
    assert messages(db_url) == []


def test_a_ctrl_c_inside_exec_of_a_string_still_exits_130(tmp_path: Path) -> None:
    # Modules that load build code with exec() (dataclasses): about one Ctrl-C in fifteen landed there
    # in the test above, and CPython then killed the caught-and-reported process with SIGINT. Run as
    # `-m`, like the CLI: `-c` exits through another path that never looks at the mark.
    source = (
        "import sys\n"
        "import ui.cli as cli\n"
        "cli._run = lambda argv: exec('raise KeyboardInterrupt')\n"
        "sys.exit(cli.main(['chat', 'hello']))\n"
    )
    assert run_as_module(tmp_path, source) == (130, "cancelled\n")


def run_as_module(folder: Path, source: str, *args: str) -> tuple[int, str]:
    """Exit code and stderr of `python -m` on a script that patches the CLI before it runs."""
    (folder / "patched_cli.py").write_text(source)
    done = subprocess.run(
        [sys.executable, "-m", "patched_cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stderr


SWALLOWED_INTERRUPT = """\
import os, signal, sys, weakref
import ui.cli as cli

class Thing:
    pass

def interrupt_inside_the_callback(_ref):
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10_000):  # the handler runs on one of these steps, inside the callback
        pass

def build_parser():
    thing = Thing()
    ref = weakref.ref(thing, interrupt_inside_the_callback)
    del thing  # runs the callback now, as the import machinery runs its own
    return real_build_parser()

real_build_parser, cli.build_parser = cli.build_parser, build_parser
sys.exit(cli.main(["chat", "hello", "--db", sys.argv[1]]))
"""


def test_a_ctrl_c_that_a_weakref_callback_swallows_still_cancels(tmp_path: Path, db_url: str) -> None:
    # CI saw it: a Ctrl-C landed in importlib's module-lock callback, CPython printed and dropped it,
    # and `chat` went on to answer and exit 0.
    assert run_as_module(tmp_path, SWALLOWED_INTERRUPT, db_url) == (130, "cancelled\n")
    assert messages(db_url) == []


def test_sigint_while_the_model_loads_exits_130_and_stores_nothing(db_url: str) -> None:
    process = CliProcess("chat", "hello", db_url=db_url)
    # The command creates the local user, then loads the model before it stores anything.
    process.wait_until(lambda: query(db_url, "SELECT count(*) FROM users") == [(1,)], "the local user")
    assert_cancelled(process, process.signal_and_wait())
    assert messages(db_url) == []


def test_sigint_during_prefill_keeps_the_message_and_an_interrupted_reply(db_url: str) -> None:
    process = CliProcess("chat", LONG_MESSAGE, "--max-tokens", "64", db_url=db_url)
    # The reply's heartbeat starts as its prompt goes to the model: a beat on a still empty reply
    # means the model is reading the prompt.
    process.wait_until(
        lambda: bool(
            query(
                db_url,
                "SELECT 1 FROM messages WHERE role = 'assistant' AND status = 'streaming'"
                " AND content = '' AND updated_at > created_at",
            )
        ),
        "the first heartbeat of the empty reply",
    )
    assert_cancelled(process, process.signal_and_wait())
    assert messages(db_url) == [("user", LONG_MESSAGE, "complete"), ("assistant", "", "interrupted")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_generation_keeps_the_partial_reply(db_url: str, signum: int) -> None:
    process = CliProcess("chat", STORY, "--max-tokens", "2000", "--temperature", "0", db_url=db_url)
    process.wait_until(lambda: any(m[0] == "assistant" and m[1] for m in messages(db_url)), "a checkpoint")
    assert_cancelled(process, process.signal_and_wait(signum))
    (user, reply) = messages(db_url)
    assert user == ("user", STORY, "complete")
    assert reply[0] == "assistant" and reply[2] == "interrupted" and reply[1]
    printed = process.stdout.text()
    # The stored reply is what was printed, give or take the piece that arrived with the signal.
    assert printed.startswith(reply[1]) or reply[1].startswith(printed)


def test_sigint_while_reading_the_pdf_exits_130_and_stores_nothing(db_url: str, tmp_path: Path) -> None:
    from tests.pdfs import long_pdf

    pdf = long_pdf(tmp_path / "long.pdf", 400)
    process = CliProcess("summarize", str(pdf), db_url=db_url)
    process.wait_for_stderr(r"\[0/400\] pages read")
    assert_cancelled(process, process.signal_and_wait())
    assert query(db_url, "SELECT count(*) FROM conversations") in ([], [(0,)])


def test_sigint_in_a_map_step_exits_130_and_writes_no_summary(db_url: str, tmp_path: Path) -> None:
    from tests.pdfs import long_pdf

    pdf = long_pdf(tmp_path / "report.pdf", 6)
    # A small window makes the report a map-reduce of several chunks.
    process = CliProcess("--ctx", "1024", "summarize", str(pdf), db_url=db_url)
    process.wait_for_stderr(r"plan: .* \d chunks, ")
    process.wait_for_stderr(r" 0 of [\d,]+ tokens \(0%\)")  # the progress of the first map step
    assert_cancelled(process, process.signal_and_wait())
    assert query(db_url, "SELECT count(*) FROM summaries") == [(0,)]
