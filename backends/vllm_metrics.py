"""What a vLLM server's Prometheus /metrics says about its capacity and its progress."""

from __future__ import annotations

import re

# `name{labels} value`, or `name value`; comments (# HELP, # TYPE) never match.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
# Counters that move whenever the engine prefills or decodes anything.
PROGRESS_COUNTERS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")


def totals(text: str) -> dict[str, float]:
    """Each metric's samples summed over their labels (engines, models)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            try:
                value = float(match.group(3))
            except ValueError:
                continue
            out[match.group(1)] = out.get(match.group(1), 0.0) + value
    return out


def progress(text: str) -> tuple[float, ...] | None:
    """The engine's work counters; None when the text has none (not a vLLM server)."""
    found = totals(text)
    if not any(name in found for name in PROGRESS_COUNTERS):
        return None
    return tuple(found.get(name, 0.0) for name in PROGRESS_COUNTERS)


def kv_cache_tokens(text: str) -> int | None:
    """Tokens the KV cache holds (blocks × block size), from vllm:cache_config_info's labels."""
    for line in text.splitlines():
        if line.startswith("vllm:cache_config_info{"):
            labels = dict(_LABEL.findall(line))
            try:
                blocks = int(labels.get("num_gpu_blocks") or 0)
                size = int(labels.get("block_size") or 0)
            except ValueError:
                return None
            return blocks * size or None
    return None
