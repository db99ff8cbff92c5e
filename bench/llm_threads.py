"""Four conversations straight on the in-process LLM, to see what its thread count costs.

Each of `--sessions` threads holds a conversation of 4 questions (staggered by 0.7 s, 2.5 s of
listening between turns), as the realtime benchmark's `four` case does, but with nothing but
llama.cpp running: time to the first token and to the 7th (about a first clause). `--busy`
adds a process spinning on one core, as the `four_busy` case does. `--together` decodes every
request at once, as llama.cpp alone does, instead of one at a time in deadline order (`Floor`).

    python bench/llm_threads.py --threads 1 --batch-threads 1 --poll 50          # the budget's split
    python bench/llm_threads.py --threads 2 --batch-threads 2 --poll 0 --busy    # both cores, under load
    python bench/llm_threads.py --together                                       # without the floor
"""

import argparse
import statistics
import subprocess
import sys
import threading
import time

import xllamacpp

from voxgate import model_files
from voxgate.catalog import Role
from voxgate.config import Settings
from voxgate.engines.base import ChatMessage, ChatRequest
from voxgate.engines.llamacpp import LlamaCppLLM
from voxgate.scheduler import Floor

QUESTIONS = [
    "What is the capital of France?", "How many legs does a spider have?", "What color is the sky?",
    "How many days are in a week?", "What is the largest planet?", "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?", "How many continents are there?", "What is the capital of Japan?",
    "What do bees make?", "How many hours are in a day?", "What is the opposite of hot?", "What animal says moo?",
    "What is the tallest mountain?", "How many wheels does a bicycle have?", "What is frozen water called?",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="decode threads")
    parser.add_argument("--batch-threads", type=int, default=1, help="prompt evaluation threads")
    parser.add_argument("--poll", type=int, default=50, help="llama.cpp's busy-wait before a thread sleeps (0: none)")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--busy", action="store_true", help="a process spinning on one core beside it")
    parser.add_argument("--together", action="store_true", help="decode all requests at once (no floor)")
    args = parser.parse_args()

    settings = Settings()
    path = model_files.resolve(settings.llm.model, Role.LLM, settings.models_dir)[1]
    server = xllamacpp.Server

    def configured(params: xllamacpp.CommonParams) -> xllamacpp.Server:  # the engine's params, these threads
        params.cpuparams.n_threads, params.cpuparams_batch.n_threads = args.threads, args.batch_threads
        params.cpuparams.poll = params.cpuparams_batch.poll = args.poll
        return server(params)

    xllamacpp.Server = configured
    if args.together:  # every claim has the floor at once and is never asked to step aside
        Floor._wait_turn = lambda self, key: True
        Floor._outranked = lambda self, key: False
    llm = LlamaCppLLM(settings.llm.model, path, threads=args.threads, context=settings.llm.context, slots=4)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    first, seventh = [], []

    def conversation(i: int) -> None:
        time.sleep(i * 0.7)
        history = [ChatMessage("system", settings.system_prompt)]
        for j in range(4):
            messages = [*history, ChatMessage("user", QUESTIONS[(i * 4 + j) % len(QUESTIONS)])]
            stamps: list[float] = []
            start = time.perf_counter()
            reply = llm.generate(
                ChatRequest(tuple(messages), max_tokens=60, temperature=0.0),
                on_delta=lambda _, stamps=stamps: stamps.append(time.perf_counter()) and None,
            )
            first.append(1000 * (stamps[0] - start))
            seventh.append(1000 * (stamps[min(6, len(stamps) - 1)] - start))
            history = [*messages, ChatMessage("assistant", reply.text)]
            time.sleep(2.5)

    try:
        threads = [threading.Thread(target=conversation, args=(i,)) for i in range(args.sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        if spinner:
            spinner.kill()
    print(
        f"threads {args.threads} / prompt {args.batch_threads}, poll {args.poll}, {args.sessions} conversations"
        f"{', busy core' if args.busy else ''}{', together' if args.together else ''}"
        f": first token median {statistics.median(first):.0f} ms "
        f"(max {max(first):.0f}), 7th token median {statistics.median(seventh):.0f} ms (max {max(seventh):.0f})"
    )


if __name__ == "__main__":
    main()
