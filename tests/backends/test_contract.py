"""The backend contract, checked the same way against every backend: the in-process llama.cpp
model, the real vLLM server, llama_cpp.server, and the scripted double.

Each generation option must reach the engine: it is checked by what it does to the output
(greedy decoding is repeatable, a seed repeats a sample, a tiny top_p leaves only the likeliest
token, a repetition penalty changes a repetitive reply), never by looking at a request.
Closing a stream must free the engine for the next request.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from backends.base import ChatBackend, ChatMessage, GenerationOptions
from backends.llamacpp import LlamaCppBackend
from backends.scripted import ScriptedBackend, ScriptedRequest
from backends.vllm import OpenAICompatBackend
from backends.vllm_metrics import totals
from tests.vllm_server import VllmServer

PROMPT: list[ChatMessage] = [
    {"role": "user", "content": "Write the word apple ten times, separated by spaces."}
]
# llama.cpp penalizes only tokens it generated (vLLM the prompt's too): a reply that repeats itself.
REPETITIVE: list[ChatMessage] = [{"role": "user", "content": "Count from 1 to 20."}]
TOKENS = 12
SEEDS = (1, 2, 3)
# A stream asked for far more than the engine would ever produce in IDLE_WITHIN_S.
LONG_REPLY = GenerationOptions(max_tokens=4000, temperature=0.0)
STORY: list[ChatMessage] = [{"role": "user", "content": "Tell a very long story about the sea."}]
IDLE_WITHIN_S = 20.0


@dataclass
class Subject:
    backend: ChatBackend
    idle: Callable[[], bool]  # the engine runs no generation now
    instant_idle: bool = True  # idle() answers at once (else it waits for a request to get through)


@dataclass(frozen=True)
class Reply:
    text: str
    completion_tokens: int


def generate(backend: ChatBackend, prompt: list[ChatMessage] = PROMPT, **options: object) -> Reply:
    chosen = GenerationOptions(**{"max_tokens": TOKENS, "temperature": 0.0, "seed": 0, **options})  # type: ignore[arg-type]
    deltas = list(backend.stream_chat(prompt, chosen))
    return Reply("".join(d.text for d in deltas), deltas[-1].completion_tokens or 0)


def eventually(check: Callable[[], bool], within_s: float = IDLE_WITHIN_S) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)  # the engines give no signal to wait on
    return check()


# ---- the subjects --------------------------------------------------------------


def answers_at_once(backend: ChatBackend) -> Callable[[], bool]:
    """For an engine that runs one request at a time: a one-token request completes promptly."""

    def idle() -> bool:
        done = threading.Event()

        def ask() -> None:
            list(backend.stream_chat(PROMPT, GenerationOptions(max_tokens=1, temperature=0.0)))
            done.set()

        threading.Thread(target=ask, daemon=True).start()
        return done.wait(IDLE_WITHIN_S)

    return idle


def vllm_idle(server: VllmServer) -> Callable[[], bool]:
    def idle() -> bool:
        found = totals(httpx.get(f"{server.url}/metrics", timeout=10).text)
        return found.get("vllm:num_requests_running", 1) + found.get("vllm:num_requests_waiting", 1) == 0

    return idle


TOY_VOCAB = ("apple", "pear", "plum", "fig", "kiwi", "lime", "date", "lemon")


def toy_engine(finished: threading.Event) -> Callable[[ScriptedRequest], Iterator[str]]:
    """The scripted double's engine: a real (tiny) sampler over a fixed vocabulary, so that each
    option has the effect it has on a model; ``finished`` is set when a generation ends."""

    def handle(request: ScriptedRequest) -> Iterator[str]:
        finished.clear()
        o = request.options
        rng = random.Random(o.seed)
        seen: Counter[str] = Counter()
        text = ""
        try:
            for _ in range(o.max_tokens):
                # Like llama.cpp and vLLM: a seen token's (positive) logit is divided by the penalty.
                penalty = {w: o.repeat_penalty if seen[w] else 1.0 for w in TOY_VOCAB}
                logits = {w: (4.0 - 0.4 * i) / penalty[w] for i, w in enumerate(TOY_VOCAB)}
                word = _sample(logits, o.temperature, o.top_p, rng)
                token = (" " if text else "") + word
                if any(stop in text + token for stop in o.stop):
                    return
                text += token
                seen[word] += 1
                yield token
        finally:
            finished.set()

    return handle


def _sample(logits: dict[str, float], temperature: float, top_p: float, rng: random.Random) -> str:
    ranked = sorted(logits, key=logits.__getitem__, reverse=True)
    if temperature <= 0:
        return ranked[0]
    weights = [math.exp(logits[w] / temperature) for w in ranked]
    total = sum(weights)
    kept, mass = [], 0.0
    for word, weight in zip(ranked, weights, strict=True):
        kept.append((word, weight))
        mass += weight / total
        if mass >= top_p:
            break
    return rng.choices([w for w, _ in kept], [p for _, p in kept])[0]


@pytest.fixture(
    params=["llamacpp", pytest.param("vllm", marks=pytest.mark.vllm), "llama_cpp.server", "scripted"]
)
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    kind = request.param
    if kind == "llamacpp":
        local: LlamaCppBackend = request.getfixturevalue("local_backend")
        yield Subject(local, answers_at_once(local), instant_idle=False)
    elif kind == "scripted":
        finished = threading.Event()
        finished.set()
        yield Subject(ScriptedBackend(handler=toy_engine(finished)), finished.is_set)
    else:
        if kind == "vllm":
            server: VllmServer = request.getfixturevalue("vllm_server")
            remote = OpenAICompatBackend("contract", server.url, api_key=server.api_key)
            idle = vllm_idle(server)
        else:
            remote = OpenAICompatBackend("contract", request.getfixturevalue("llama_server"))
            idle = answers_at_once(remote)
        remote.connect()
        yield Subject(remote, idle, instant_idle=kind == "vllm")
        remote.close()


# ---- each option, by its effect ----------------------------------------------------


def check_max_tokens(backend: ChatBackend) -> None:
    short, longer = generate(backend, max_tokens=3), generate(backend, max_tokens=TOKENS)
    assert 0 < short.completion_tokens <= 3 < longer.completion_tokens
    assert longer.text.startswith(short.text)


def check_temperature(backend: ChatBackend) -> None:
    cold = {generate(backend, temperature=0.0, seed=s).text for s in SEEDS}
    hot = {generate(backend, temperature=1.5, seed=s).text for s in SEEDS}
    assert len(cold) == 1, f"temperature 0 must be greedy whatever the seed: {cold}"
    assert len(hot) > 1, f"temperature 1.5 must sample: {hot}"


def check_seed(backend: ChatBackend) -> None:
    # A llama.cpp server reuses the KV cache of a prompt it has just seen, which shifts the logits
    # a little: both runs compared come after the same prompt, so both reuse it alike.
    generate(backend, temperature=1.5, seed=10)
    first, again = (generate(backend, temperature=1.5, seed=11).text for _ in range(2))
    others = {generate(backend, temperature=1.5, seed=s).text for s in (12, 13, 14)}
    assert first == again, "the same seed must give the same sample"
    assert others - {first}, "other seeds must give other samples"


def check_top_p(backend: ChatBackend) -> None:
    greedy = generate(backend, temperature=0.0).text
    narrow = {generate(backend, temperature=1.5, top_p=1e-6, seed=s).text for s in SEEDS}
    assert narrow == {greedy}, "a tiny top_p leaves only the likeliest token"


def check_stop(backend: ChatBackend) -> None:
    greedy = generate(backend).text
    words = greedy.split()
    assert len(words) >= 2, f"the reply is too short to stop inside: {greedy!r}"
    stop = " " + words[1]
    stopped = generate(backend, stop=(stop,)).text
    assert stopped == greedy[: greedy.index(stop)]


def check_repeat_penalty(backend: ChatBackend) -> None:
    plain = generate(backend, REPETITIVE, repeat_penalty=1.0).text
    penalized = generate(backend, REPETITIVE, repeat_penalty=2.0).text
    assert plain != penalized, f"a repetition penalty of 2 changed nothing: {plain!r}"


CHECKS: dict[str, Callable[[ChatBackend], None]] = {
    "max_tokens": check_max_tokens,
    "temperature": check_temperature,
    "seed": check_seed,
    "top_p": check_top_p,
    "stop": check_stop,
    "repeat_penalty": check_repeat_penalty,
}


def test_every_generation_option_has_a_check() -> None:
    assert set(CHECKS) == {f.name for f in dataclasses.fields(GenerationOptions)}


@pytest.mark.parametrize("option", sorted(CHECKS))
def test_each_generation_option_reaches_the_engine(subject: Subject, option: str) -> None:
    CHECKS[option](subject.backend)


def test_closing_the_stream_frees_the_engine(subject: Subject) -> None:
    stream = subject.backend.stream_chat(STORY, LONG_REPLY)
    assert next(d for d in stream if d.text).text
    if subject.instant_idle:
        assert not subject.idle(), "the engine must be busy with the open stream"
    stream.close()
    assert eventually(subject.idle), "closing the stream left the engine generating"


def test_model_and_window_are_plain_values_after_connecting(subject: Subject) -> None:
    backend = subject.backend
    settled = backend.connect()
    assert (backend.model, backend.context_window, backend.parallel) == (
        settled.model,
        settled.context_window,
        settled.parallel,
    )
    assert settled.model and settled.context_window > 0 and settled.parallel >= 1
