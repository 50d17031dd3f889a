"""`conversations export --format jsonl-sft`: chat-format JSONL that fine-tuning tools read.

The output is checked by real consumers: Hugging Face `datasets` loads it, and SmolLM2's own chat
template (the tokenizer built by `transformers` from the embedded GGUF) renders every row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app import exporting
from app.chat import ChatSettings
from app.core import App
from app.doc_chat import run_to_end
from app.documents import Document
from backends.llamacpp import embedded_model_path
from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from tests.ui.test_cli import cli

SHORT = ChatSettings(max_tokens=12, temperature=0.0, seed=1)
BIG_NODE = ScriptedBackend("node", handler=replying("An answer from the big model."))
DOCUMENT_PAGES = [
    "The lighthouse at Kap Hoorn was built in 1891. Its lamp burned whale oil until 1923.",
    "In 1923 the keeper, Ada Lund, installed an electric lamp that could be seen for 30 miles.",
]


def reply(app: App, text: str, cid: str | None = None, backend: str | None = None) -> str:
    settings = ChatSettings(max_tokens=SHORT.max_tokens, temperature=0.0, seed=1, backend=backend)
    updates = list(app.chat.send(app.local_user_id(), cid, text, settings))
    assert updates[-1].status == "complete" or updates[-1].title, updates[-1]
    return updates[-1].conversation_id


def interrupted(app: App, cid: str, text: str) -> None:
    """A reply stopped after its first token, as the Stop button leaves it."""
    stream = app.chat.send(app.local_user_id(), cid, text, ChatSettings(max_tokens=64))
    for update in stream:
        if update.reply:
            break
    stream.close()
    assert app.repo.messages(app.local_user_id(), cid)[-1].status == "interrupted"


@pytest.fixture
def history(db_url: str) -> Iterator[dict[str, Any]]:
    """Conversations of every kind the filters must tell apart, from two backends. Which model wrote a
    reply does not matter to the export, which reads storage; the real model's consumer is the template."""
    local = ScriptedBackend(
        "local", handler=replying("A reply from the laptop model, word by word.", delay_s=0.01)
    )
    app = make_app(db_url, local, BIG_NODE)
    user = app.local_user_id()
    old = reply(app, "Say hello.")
    since = datetime.now(UTC)
    marked = reply(app, "What is the capital of France?")
    reply(app, "And of Italy?", marked)
    interrupted(app, marked, "Tell me a very long story about Rome.")
    reply(app, "Are you still there?", marked)  # said after a cut-off reply: must not be exported
    on_node = reply(app, "Hello big model.", backend="node")
    doc = Document(
        sha256=hashlib.sha256("\f".join(DOCUMENT_PAGES).encode()).hexdigest(),
        filename="lighthouse.pdf",
        pages=DOCUMENT_PAGES,
        language="en",
        warnings=[],
    )
    summary = run_to_end(app.documents.summary_events(user, doc, backend_name="node"))
    for cid in (marked, on_node, summary.conversation_id):
        app.repo.set_marked(user, cid, True)
    yield {
        "app": app,
        "old": old,
        "marked": marked,
        "on_node": on_node,
        "since": since,
        "summary": summary.result.summary,
    }
    app.close()


def export(db_url: str, tmp_path: Path, *flags: str) -> list[dict[str, Any]]:
    """`llamadesk conversations export --format jsonl-sft`, run as users run it."""
    out = tmp_path / f"export{len(list(tmp_path.glob('export*')))}.jsonl"
    result = cli("conversations", "export", "--format", "jsonl-sft", "--out", str(out), *flags, db=db_url)
    assert result.returncode == 0, result.stderr
    assert "exported" in result.stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def rows(app: App, **only: Any) -> list[dict[str, Any]]:
    """The same rows in process: each CLI run costs seconds of start-up on a loaded machine."""
    return list(exporting.sft_rows(app.repo, app.local_user_id(), exporting.SftFilter(**only)))


def texts(found: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for row in found for m in row["messages"]]


def conversations(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in found if row["messages"][0]["role"] == "user"]


def test_filters_select_complete_marked_recent_replies_of_one_backend(
    db_url: str, tmp_path: Path, history: dict[str, Any]
) -> None:
    everything = export(db_url, tmp_path)
    assert everything == rows(history["app"])
    assert "Say hello." in texts(everything)
    assert "Hello big model." in texts(everything)
    capital = next(r for r in everything if r["messages"][0]["content"] == "What is the capital of France?")
    assert [m["role"] for m in capital["messages"]] == ["user", "assistant", "user", "assistant"]
    assert "Tell me a very long story about Rome." not in texts(everything), "interrupted replies end a row"
    assert "Are you still there?" not in texts(everything)
    pairs = [r for r in everything if r["messages"][0]["role"] == "system"]
    assert len(pairs) == 1
    document, summary = pairs[0]["messages"][1]["content"], pairs[0]["messages"][2]["content"]
    assert "[page 2]" in document and "Ada Lund" in document
    assert summary == history["summary"]
    assert not any("📄" in t for t in texts(everything)), "the summary request is exported as its pair"

    app = history["app"]
    marked = rows(app, marked_only=True)
    assert "Say hello." not in texts(marked) and "What is the capital of France?" in texts(marked)
    recent = rows(app, since=history["since"])
    assert "Say hello." not in texts(recent) and "Hello big model." in texts(recent)
    node_only = rows(app, backend="node")
    assert texts(conversations(node_only)) == ["Hello big model.", "An answer from the big model."]
    assert [r for r in node_only if r not in conversations(node_only)] == pairs, "the summary came from node"
    # Both backends here run a model called scripted-model: filtering by it keeps the replies of both.
    assert rows(app, backend="scripted-model") == everything, "a model name filters like a backend name"

    combined = export(
        db_url, tmp_path, "--backend", "local", "--since", history["since"].isoformat(), "--marked"
    )
    assert combined == [capital], "marked, recent, and every reply from local"
    bad = cli("conversations", "export", "--format", "jsonl-sft", "--since", "last tuesday", db=db_url)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_marking_from_the_cli(db_url: str, history: dict[str, Any]) -> None:
    app, cid = history["app"], history["old"]
    assert not app.repo.get_conversation(app.local_user_id(), cid).marked
    assert cli("conversations", "mark", cid, db=db_url).returncode == 0
    assert app.repo.get_conversation(app.local_user_id(), cid).marked
    app.repo.set_marked(app.local_user_id(), cid, False)
    assert not app.repo.get_conversation(app.local_user_id(), cid).marked
    assert cli("conversations", "mark", "0" * 32, db=db_url).returncode == 2


def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer and chat template, built offline from the embedded GGUF (transformers'
    own gguf_file= loader needs PyTorch, which nothing else here needs)."""
    from gguf import GGUFReader
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fields = GGUFReader(str(embedded_model_path())).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"].contents()]
    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    eos = tokens[int(fields["tokenizer.ggml.eos_token_id"].contents())]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, chat_template=fields["tokenizer.chat_template"].contents(), eos_token=eos
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tokenizer


def test_datasets_loads_it_and_smollm2s_chat_template_renders_every_row(
    db_url: str, tmp_path: Path, history: dict[str, Any]
) -> None:
    from datasets import load_dataset

    exported = export(db_url, tmp_path)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in exported), encoding="utf-8")
    dataset = load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == len(exported) >= 4
    tokenizer = smollm2_tokenizer()
    for row, original in zip(dataset, exported, strict=True):
        rendered = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        # SmolLM2's template adds its own system turn when a row has none.
        has_system = original["messages"][0]["role"] == "system"
        assert rendered.count("<|im_start|>") == len(original["messages"]) + (not has_system)
        for message in original["messages"]:
            assert f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>" in rendered
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
        assert tokenizer.decode(ids) == rendered


def test_marking_from_the_web_ui(history: dict[str, Any]) -> None:
    """The sidebar checkbox's handlers, as Gradio calls them (no --auth: the request names no one)."""
    from ui.handlers import Handlers

    app, cid = history["app"], history["old"]
    handlers = Handlers(app)
    assert handlers.marked(cid, None) is False  # type: ignore[arg-type]
    handlers.set_marked(cid, True, None)  # type: ignore[arg-type]
    assert handlers.marked(cid, None) is True  # type: ignore[arg-type]
    assert app.repo.get_conversation(app.local_user_id(), cid).marked
    assert handlers.marked("0" * 32, None) is False, "an unknown id reads as unmarked"  # type: ignore[arg-type]
