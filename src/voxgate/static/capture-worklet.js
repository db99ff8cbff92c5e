// Hands-free capture, on the audio thread: the microphone as little-endian 16-bit mono PCM
// at the AudioContext's rate (the server resamples), posted to the page in whole frames.

class Pcm16Capture extends AudioWorkletProcessor {
  constructor({ processorOptions }) {
    super();
    this.frameSamples = processorOptions.frameSamples;
    this.newFrame();
  }

  newFrame() {
    this.frame = new DataView(new ArrayBuffer(this.frameSamples * 2));
    this.filled = 0;
  }

  process([channels]) {
    // No channels while the source is disconnected; more than one: mix them down.
    const count = channels?.length ?? 0;
    if (!count) return true;
    for (let i = 0; i < channels[0].length; i += 1) {
      let sample = 0;
      for (const channel of channels) sample += channel[i];
      sample = Math.max(-1, Math.min(1, sample / count));
      this.frame.setInt16(this.filled * 2, sample < 0 ? sample * 0x8000 : sample * 0x7fff, true);
      this.filled += 1;
      if (this.filled === this.frameSamples) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // transferred, not copied
        this.newFrame();
      }
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
