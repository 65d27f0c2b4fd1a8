"""AWQ 4-bit quantization recipe (llm-compressor) for serving your own fine-tune on the GPU profile.

Needs an NVIDIA GPU with room for the bf16 model (a 7-8B model: one 24 GB GPU; layers are onloaded
sequentially) and its own virtualenv, because llm-compressor pins its own transformers:

    python3 -m venv .venv-quant && .venv-quant/bin/pip install llmcompressor==0.14.0.1 datasets
    HF_TOKEN=hf_... .venv-quant/bin/python model-serving/gpu/quantize_awq.py \
        meta-llama/Llama-3.1-8B-Instruct data/models/llama-3.1-8b-instruct-awq

The result is W4A16 (4-bit weights, group size 128, asymmetric, AWQ scales) saved in the
compressed-tensors format, which vLLM detects from config.json. Serve it with

    SERVE_MODEL=data/models/llama-3.1-8b-instruct-awq model-serving/serve.sh gpu \
        --quantization compressed-tensors

(the flag overrides ``quantization: awq`` of gpu/vllm.yaml, which is for AutoAWQ-format checkpoints such as
Qwen/Qwen2.5-7B-Instruct-AWQ). Calibration data should look like your traffic: chat-formatted samples.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="Hub repo id or local dir of the bf16/fp16 model")
    parser.add_argument("out", help="output dir for the quantized model")
    parser.add_argument("--dataset", default="HuggingFaceH4/ultrachat_200k", help="chat calibration set")
    parser.add_argument("--split", default="train_sft")
    parser.add_argument("--samples", type=int, default=256, help="calibration samples")
    parser.add_argument("--max-seq-len", type=int, default=2048)
    args = parser.parse_args(argv)

    from datasets import load_dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.awq import AWQModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    ds = load_dataset(args.dataset, split=f"{args.split}[:{args.samples}]").shuffle(seed=42)
    ds = ds.map(lambda ex: {"text": tokenizer.apply_chat_template(ex["messages"], tokenize=False)})
    ds = ds.map(
        lambda ex: tokenizer(
            ex["text"],
            padding=False,
            max_length=args.max_seq_len,
            truncation=True,
            add_special_tokens=False,
        ),
        remove_columns=ds.column_names,
    )

    # lm_head stays in 16 bit: quantizing it costs quality for little memory.
    recipe = [AWQModifier(targets=["Linear"], scheme="W4A16_ASYM", ignore=["lm_head"])]
    oneshot(
        model=model,
        dataset=ds,
        recipe=recipe,
        max_seq_length=args.max_seq_len,
        num_calibration_samples=args.samples,
    )
    model.save_pretrained(args.out, save_compressed=True)
    tokenizer.save_pretrained(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
