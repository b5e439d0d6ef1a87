// One simulator call in the browser: microphone -> AudioWorklet (16 kHz PCM16) -> WebSocket /ws/simulator, and the
// binary reply audio played back gap-free; `clear` (barge-in) drops whatever has not been played yet.
// Right before the socket opens, a short-lived call token is fetched from POST /api/v1/simulator/tokens (with the
// X-API-Key of api.ts) and sent in the `start` message.

import i18n from '../../i18n';
import { API_KEY_STORAGE, ApiError, apiFetch, storedKey } from '../../lib/api';
import type { DtmfMessage, ServerMessage, StartMessage, StopMessage } from '../../lib/protocol';

export const SAMPLE_RATE = 16000;
export const TOKEN_PATH = '/api/v1/simulator/tokens';

/** The messages for a 401 on the token, in the chosen language. */
export const apiKeyNeeded = (): string => i18n.t('simulator.apiKeyNeeded');
export const apiKeyRefused = (): string => i18n.t('simulator.apiKeyRefused');

/** POST /api/v1/simulator/tokens's answer. */
export interface CallToken {
  token: string;
  expires_at: number;
  ttl_s: number;
  /** false when the gateway has no API keys (dev): the token is then optional. */
  required: boolean;
}

/** A call token for `agentId`, or null from an older gateway without the endpoint (404): the call then starts
 * without one. A 401 (no or a wrong API key) and any other failure throw an Error with a message for the user. */
export async function fetchCallToken(agentId: string | null): Promise<string | null> {
  try {
    const { data } = await apiFetch<CallToken>(TOKEN_PATH, { method: 'POST', body: { agent_id: agentId || null } });
    if (!data || typeof data.token !== 'string' || !data.token) throw new Error(i18n.t('simulator.noToken'));
    return data.token;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    if (err instanceof ApiError && err.status === 401) {
      throw new Error(storedKey(API_KEY_STORAGE) ? apiKeyRefused() : apiKeyNeeded());
    }
    throw new Error(i18n.t('simulator.tokenFailed', { message: (err as Error)?.message || String(err) }));
  }
}

export interface CallCallbacks {
  onMessage(msg: ServerMessage): void;
  onLevel(rms: number): void;
  onClose(code: number, reason: string): void;
  onFailure(message: string): void;
}

export function simulatorUrl(loc: Location = window.location): string {
  const proto = loc.protocol === 'https:' ? 'wss' : 'ws';
  return `${proto}://${loc.host}/ws/simulator`;
}

export class SimulatorCall {
  private ctx: AudioContext | null = null;
  private stream: MediaStream | null = null;
  private node: AudioWorkletNode | null = null;
  private ws: WebSocket | null = null;
  private playHead = 0;
  private sources = new Set<AudioBufferSourceNode>();
  private closed = false;
  private serverError = false;
  muted = false;

  constructor(private readonly cb: CallCallbacks) {}

  async start(agentId: string | null): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error(i18n.t('simulator.noMicAccess'));
    }
    this.ctx = new AudioContext();
    await this.ctx.resume();
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    if (this.hungUpEarly()) return;
    await this.ctx.audioWorklet.addModule('/mic-worklet.js');
    if (this.hungUpEarly()) return;
    const source = this.ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.ctx, 'mic-capture');
    source.connect(this.node);

    // the token lives ~2 minutes: fetched now, after the microphone prompt, not before it
    const token = await fetchCallToken(agentId);
    if (this.hungUpEarly()) return;
    const start: StartMessage = { type: 'start', sample_rate: SAMPLE_RATE, agent_id: agentId || null };
    if (token !== null) start.token = token;

    const ws = new WebSocket(simulatorUrl());
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(start));
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data !== 'string') {
        this.play(new Int16Array(e.data as ArrayBuffer));
        return;
      }
      let msg: ServerMessage;
      try {
        msg = JSON.parse(e.data) as ServerMessage;
      } catch {
        return;
      }
      if (msg.type === 'clear') this.stopPlayback();
      if (msg.type === 'error') this.serverError = true;
      this.cb.onMessage(msg);
    };
    ws.onerror = () => {
      if (!this.closed && !this.serverError) {
        this.cb.onFailure(i18n.t('simulator.wsError'));
      }
    };
    ws.onclose = (e: CloseEvent) => {
      this.cb.onClose(e.code, e.reason);
      this.cleanup();
    };
    this.node.port.onmessage = (e: MessageEvent<{ pcm: ArrayBuffer; rms: number }>) => {
      const { pcm, rms } = e.data;
      this.cb.onLevel(this.muted ? 0 : rms);
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(this.muted ? new ArrayBuffer(pcm.byteLength) : pcm);
    };
  }

  /** Hung up (or left the page) while start() awaited the microphone or the token: release the microphone, open no
   * socket and report the call closed. */
  private hungUpEarly(): boolean {
    if (!this.closed) return false;
    this.stream?.getTracks().forEach((t) => t.stop());
    this.cb.onClose(1000, 'hung up before connecting');
    return true;
  }

  /** Presses a keypad key on the call (the agent's `dtmf` setting says what it becomes); false when not connected. */
  sendDtmf(digit: string): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const msg: DtmfMessage = { type: 'dtmf', digit };
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  hangUp(): void {
    const stop: StopMessage = { type: 'stop' };
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(stop));
    else this.cleanup();
  }

  private play(pcm: Int16Array): void {
    const ctx = this.ctx;
    if (!ctx || pcm.length === 0) return;
    const buf = ctx.createBuffer(1, pcm.length, SAMPLE_RATE);
    const ch = buf.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(ctx.destination);
    this.playHead = Math.max(this.playHead, ctx.currentTime + 0.03);
    src.start(this.playHead);
    this.playHead += buf.duration;
    this.sources.add(src);
    src.onended = () => this.sources.delete(src);
  }

  private stopPlayback(): void {
    for (const s of this.sources) {
      try {
        s.stop();
      } catch {
        // already stopped
      }
    }
    this.sources.clear();
    this.playHead = 0;
  }

  cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopPlayback();
    this.node?.port.close();
    this.stream?.getTracks().forEach((t) => t.stop());
    void this.ctx?.close().catch(() => undefined);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    this.cb.onLevel(0);
  }
}
