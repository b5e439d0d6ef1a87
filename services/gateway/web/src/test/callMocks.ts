// Stand-ins for the browser pieces a simulator call uses (microphone, AudioContext + worklet, WebSocket), for tests.

export class FakeWebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static instances: FakeWebSocket[] = [];

  readyState = FakeWebSocket.CONNECTING;
  binaryType = 'blob';
  sent: unknown[] = [];
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: MessageEvent) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  onclose: ((e: CloseEvent) => void) | null = null;

  constructor(public url: string) {
    FakeWebSocket.instances.push(this);
  }

  send(data: unknown): void {
    this.sent.push(data);
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason } as CloseEvent);
  }

  /** The server side: accept the handshake, send a JSON message, close. */
  open(): void {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.(new Event('open'));
  }

  serverSends(msg: unknown): void {
    this.onmessage?.({ data: JSON.stringify(msg) } as MessageEvent);
  }

  serverCloses(code: number, reason = ''): void {
    this.close(code, reason);
  }

  /** The JSON messages the page sent. */
  json(): Record<string, unknown>[] {
    return this.sent.filter((d): d is string => typeof d === 'string').map((d) => JSON.parse(d) as Record<string, unknown>);
  }
}

class FakeAudioContext {
  currentTime = 0;
  destination = {};
  audioWorklet = { addModule: vi.fn(async () => undefined) };
  resume = vi.fn(async () => undefined);
  close = vi.fn(async () => undefined);
  createMediaStreamSource() {
    return { connect: vi.fn() };
  }
}

class FakeAudioWorkletNode {
  port = { onmessage: null as unknown, close: vi.fn() };
}

export interface CallMocks {
  fetch: ReturnType<typeof vi.fn>;
  stopTrack: ReturnType<typeof vi.fn>;
  getUserMedia: ReturnType<typeof vi.fn>;
}

/** Stubs fetch with `route(url, init)` (a Response, or undefined for `[]`), the microphone, the audio graph and
 * WebSocket. Undo with `restoreCallMocks()`. */
export function installCallMocks(route: (url: string, init?: RequestInit) => Response | undefined): CallMocks {
  FakeWebSocket.instances = [];
  const fetchMock = vi.fn(async (url: string, init?: RequestInit) => route(url, init) ?? new Response('[]', { status: 200 }));
  vi.stubGlobal('fetch', fetchMock);
  vi.stubGlobal('WebSocket', FakeWebSocket);
  vi.stubGlobal('AudioContext', FakeAudioContext);
  vi.stubGlobal('AudioWorkletNode', FakeAudioWorkletNode);
  const stopTrack = vi.fn();
  const getUserMedia = vi.fn(async () => ({ getTracks: () => [{ stop: stopTrack }] }));
  Object.defineProperty(navigator, 'mediaDevices', { value: { getUserMedia }, configurable: true });
  return { fetch: fetchMock, stopTrack, getUserMedia };
}

export function restoreCallMocks(): void {
  vi.unstubAllGlobals();
  Reflect.deleteProperty(navigator, 'mediaDevices');
  FakeWebSocket.instances = [];
  localStorage.clear();
}

export const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

export const tokenAnswer = (token = 'tok-1', required = true): Response =>
  json({ token, expires_at: Date.now() / 1000 + 120, ttl_s: 120, required }, 201);
