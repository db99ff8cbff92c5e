"""How short speech over a reply is heard and judged: acknowledgement or interruption.

Each phrase is spoken `--times` times by Piper (joe, as in bench/realtime.py; Piper varies
each synthesis) and five times by the Hibari voice (at speeds 0.85 to 1.15), with 300 ms of
silence before and 200 ms after, and heard the way the realtime session hears speech over a
reply: the default Whisper's close readings under the back-channel prompt
(`Pipeline.readings`), and when it doubts words, the second opinion's. Printed per phrase
and voice: how often it was judged an acknowledgement (any reading `is_backchannel`) by
the default Whisper alone and with the second opinion, how often that was asked and how
long it took, and the default's best readings with their counts.

    python bench/backchannels.py
"""

import argparse
import time
from collections import Counter

import numpy as np
from realtime import RATE, VOICE  # bench/ is the script's directory

from voxgate import audio, model_files
from voxgate.catalog import Role
from voxgate.config import Settings
from voxgate.engines.base import TextToSpeech
from voxgate.engines.hibari import HibariTTS
from voxgate.engines.piper import PiperTTS
from voxgate.engines.whisper import WhisperSTT
from voxgate.realtime import _BACKCHANNEL_PROMPT, acknowledges, in_doubt

ACKNOWLEDGEMENTS = ("Mm-hmm.", "Uh-huh.", "Okay.", "Yeah.", "Right.", "Wow.", "I see.")
INTERRUPTIONS = (
    "Stop.",
    "Wait.",
    "Hold on.",
    "No, no.",
    "No.",
    "What?",
    "Why?",
    "Hey.",
    "Excuse me.",
    "Oh, wait.",
    "Not that.",
    "Enough.",
    "Okay, stop.",
)
HIBARI_SPEEDS = (0.85, 0.95, 1.0, 1.05, 1.15)  # Hibari says a text the same way each time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=10, help="Piper syntheses of each phrase")
    args = parser.parse_args()
    settings = Settings()
    piper = PiperTTS("piper-en_US-joe-medium", VOICE)
    hibari_name = "hibari-en_US-heart"
    hibari = HibariTTS(hibari_name, model_files.resolve(hibari_name, Role.TTS, settings.models_dir)[1])
    whisper, second = (
        WhisperSTT(name, model_files.resolve(name, Role.STT, settings.models_dir)[1], workers=1)
        for name in (settings.stt.model, settings.stt.second_opinion)
    )
    totals: Counter = Counter()
    second_ms: list[float] = []
    for phrase in ACKNOWLEDGEMENTS + INTERRUPTIONS:
        kind = "acknowledgement" if phrase in ACKNOWLEDGEMENTS else "interruption"
        voices: list[tuple[str, TextToSpeech, tuple[float, ...]]] = [
            ("joe", piper, (1.0,) * args.times),
            ("heart", hibari, HIBARI_SPEEDS),
        ]
        for voice, tts, speeds in voices:
            heard: Counter = Counter()
            judged: Counter = Counter()
            for speed in speeds:
                chunks = tts.synthesize(phrase, speed=speed)
                pcm = np.concatenate([c.pcm for c in chunks]).astype(np.float32) / 32768
                speech = audio.resample(pcm, tts.sample_rate, RATE)
                clip = np.concatenate([np.zeros(RATE * 3 // 10, np.float32), speech, np.zeros(RATE // 5, np.float32)])
                readings = whisper.alternatives(clip, language="en", prompt=_BACKCHANNEL_PROMPT)
                heard[readings.texts[0] if readings.texts else ""] += 1
                judged["alone"] += acknowledges(readings)
                if in_doubt(readings):
                    judged["asked"] += 1
                    began = time.perf_counter()
                    readings = second.alternatives(clip, language="en", prompt=_BACKCHANNEL_PROMPT)
                    second_ms.append((time.perf_counter() - began) * 1000)
                judged["with second"] += acknowledges(readings)
            for key in judged:
                totals[kind, voice, key] += judged[key]
            totals[kind, voice, "all"] += len(speeds)
            print(
                f"{phrase:11} {voice:5} ({kind}): acknowledgement {judged['alone']}/{len(speeds)} alone, "
                f"{judged['with second']} with the second opinion (asked {judged['asked']}); heard {dict(heard)}"
            )
    for kind in ("acknowledgement", "interruption"):
        for voice in ("joe", "heart"):
            n, alone, both = (totals[kind, voice, key] for key in ("all", "alone", "with second"))
            asked = totals[kind, voice, "asked"]
            print(f"{kind}s by {voice}: acknowledgements {alone}/{n} alone, {both}/{n} with a second opinion ({asked})")
    if second_ms:
        print(f"second opinion ({second.name}): median {np.median(second_ms):.0f} ms, max {max(second_ms):.0f} ms")


if __name__ == "__main__":
    main()
