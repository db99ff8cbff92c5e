"""How short speech over a reply is heard and judged: acknowledgement or interruption.

Each phrase is spoken `--times` times by Piper (joe, as in bench/realtime.py; Piper varies
each synthesis), with 300 ms of silence before and 200 ms after, and heard the way the
realtime session hears speech over a reply: the default Whisper, under the back-channel
prompt. Printed per phrase: how often `is_backchannel` judged it an acknowledgement, and the
transcripts with their counts.

    python bench/backchannels.py
"""

import argparse
from collections import Counter

import numpy as np
from realtime import RATE, VOICE  # bench/ is the script's directory

from voxgate import audio, model_files
from voxgate.catalog import Role
from voxgate.config import Settings
from voxgate.engines.piper import PiperTTS
from voxgate.engines.whisper import WhisperSTT
from voxgate.realtime import _BACKCHANNEL_PROMPT, is_backchannel

ACKNOWLEDGEMENTS = ("Mm-hmm.", "Uh-huh.", "Okay.", "Yeah.")
INTERRUPTIONS = ("Stop.", "Wait.", "Hold on.", "No, no.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=10, help="syntheses of each phrase")
    args = parser.parse_args()
    settings = Settings()
    tts = PiperTTS("piper-en_US-joe-medium", VOICE)
    name = settings.stt.model
    whisper = WhisperSTT(name, model_files.resolve(name, Role.STT, settings.models_dir)[1], workers=1)
    for phrase in ACKNOWLEDGEMENTS + INTERRUPTIONS:
        heard: Counter = Counter()
        judged = 0
        for _ in range(args.times):
            pcm = np.concatenate([c.pcm for c in tts.synthesize(phrase)]).astype(np.float32) / 32768
            speech = audio.resample(pcm, tts.sample_rate, RATE)
            clip = np.concatenate([np.zeros(RATE * 3 // 10, np.float32), speech, np.zeros(RATE // 5, np.float32)])
            said = whisper.transcribe(clip, language="en", prompt=_BACKCHANNEL_PROMPT)
            judged += not said.text or is_backchannel(said.text)
            heard[said.text] += 1
        kind = "acknowledgement" if phrase in ACKNOWLEDGEMENTS else "interruption"
        print(f"{phrase:10} ({kind}): judged an acknowledgement {judged}/{args.times}; heard {dict(heard)}")


if __name__ == "__main__":
    main()
