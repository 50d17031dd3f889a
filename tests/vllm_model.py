"""Convert the embedded SmolLM2 GGUF into the Hugging Face folder that vLLM serves.

vLLM 0.32 no longer loads GGUF files, so the test engine gets the same weights as a
transformers checkpoint. Run with the vLLM venv's interpreter (it has transformers and gguf):

    .venv-vllm/bin/python tests/vllm_model.py PATH/TO/model.gguf OUT_DIR

The folder is written next to OUT_DIR and renamed into place, so a killed run leaves no
half-written model behind for the next one to trust.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Loading from GGUF dequantizes, yet leaves a quantizer and its config behind; saved as is,
    # vLLM would look for quantized weights that are not there.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: vllm_model.py MODEL.gguf OUT_DIR", file=sys.stderr)
        return 2
    convert(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
