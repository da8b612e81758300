# SPDX-License-Identifier: Apache-2.0
# A llama-cpp-python program, as users write them: load a model, tokenize a prompt and generate
# tokens greedily. It is a profiling target (its llama.cpp libraries are loaded by ctypes at run
# time), so it stays small and prints one JSON line that tests compare with what the tracer saw.
# Run it with the interpreter of set-up's llama-cpp-python environment.
import argparse
import json
import time

from llama_cpp import Llama, __version__

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog")
parser.add_argument("--tokens", type=int, default=16)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--context", type=int, default=256)
args = parser.parse_args()

started = time.perf_counter()
llm = Llama(
    model_path=args.model,
    n_ctx=args.context,
    n_threads=args.threads,
    n_threads_batch=args.threads,
    verbose=False,
)
prompt_tokens = llm.tokenize(args.prompt.encode())
generated = []
generation_started = time.perf_counter()
for token in llm.generate(prompt_tokens, top_k=1, temp=0.0, reset=True):
    generated.append(token)
    if len(generated) >= args.tokens:
        break
finished = time.perf_counter()
print(
    json.dumps(
        {
            "llamaCppPython": __version__,
            "model": args.model,
            "promptTokens": len(prompt_tokens),
            "generatedTokens": len(generated),
            # the tokens llama.cpp evaluated into the context: the prompt and every generated
            # token it was asked for the next one after (all but the last)
            "contextTokens": llm.n_tokens,
            "loadMs": round((generation_started - started) * 1000),
            "generateMs": round((finished - generation_started) * 1000),
        }
    ),
    flush=True,
)
