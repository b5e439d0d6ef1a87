// AudioWorklet: microphone (the context's rate, usually 48 kHz float) -> 16 kHz PCM16 frames of 20 ms, posted to
// the page with the frame's RMS level. Linear interpolation with a one-pole low-pass before decimating.
const TARGET = 16000;
const FRAME = 320; // 20 ms at 16 kHz

class MicCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET;
    this.pos = 0; // position of the next output sample, in input samples relative to `prev`
    this.prev = 0;
    this.lp = 0;
    this.alpha = Math.min(1, (2 * Math.PI * 7000) / sampleRate);
    this.out = new Int16Array(FRAME);
    this.n = 0;
    this.sumSq = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      this.lp += this.alpha * (ch[i] - this.lp);
      const cur = this.step > 1.0001 ? this.lp : ch[i];
      while (this.pos <= 1) {
        const v = this.prev + (cur - this.prev) * this.pos;
        const s = Math.max(-1, Math.min(1, v));
        this.out[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        this.sumSq += s * s;
        this.pos += this.step;
        if (this.n === FRAME) {
          const frame = this.out.slice(0);
          this.port.postMessage({ pcm: frame.buffer, rms: Math.sqrt(this.sumSq / FRAME) }, [frame.buffer]);
          this.n = 0;
          this.sumSq = 0;
        }
      }
      this.pos -= 1;
      this.prev = cur;
    }
    return true;
  }
}

registerProcessor('mic-capture', MicCapture);
