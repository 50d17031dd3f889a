"""Which chat format a GGUF gets: its own template, its architecture's, or ChatML with a warning.

The architecture cases run llama-cpp-python's real formatters; the end-to-end case (a GGUF whose
template was removed, through the CLI and the web app) is in tests/ui/test_chat_template.py.
"""

from __future__ import annotations

import pytest

from backends.llamacpp import FALLBACK_CHAT_FORMAT, choose_chat_format

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


class _TemplatelessModel:
    """The parts of a loaded llama_cpp.Llama that choose_chat_format reads and sets."""

    def __init__(self, architecture: str) -> None:
        self.metadata = {"general.architecture": architecture}
        self.chat_format = "llama-2"  # what llama-cpp-python falls back to without a template
        self.chat_handler = None


@pytest.mark.parametrize(
    ("architecture", "expected", "turn_marker"),
    [("gemma3", "gemma", "<start_of_turn>user"), ("qwen2", "chatml", "<|im_start|>user")],
)
def test_a_known_architecture_gets_its_format(architecture: str, expected: str, turn_marker: str) -> None:
    model = _TemplatelessModel(architecture)
    chosen = choose_chat_format(model, "model.gguf")
    assert model.chat_format == expected and chosen.warning == ""
    assert chosen.source.startswith(expected) and architecture in chosen.source
    prompt = chosen.formatter(messages=MESSAGES).prompt
    assert turn_marker in prompt and "Hi there" in prompt and "[INST]" not in prompt


def test_an_unknown_architecture_gets_chatml_and_a_warning() -> None:
    model = _TemplatelessModel("llama")
    chosen = choose_chat_format(model, "mystery.gguf")
    assert model.chat_format == FALLBACK_CHAT_FORMAT
    assert "mystery.gguf has no chat template" in chosen.warning and "(llama)" in chosen.warning
    assert "<|im_start|>system\nBe brief." in chosen.formatter(messages=MESSAGES).prompt
