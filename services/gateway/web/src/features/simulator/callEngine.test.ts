import { API_KEY_STORAGE } from '../../lib/api';
import { FakeWebSocket, installCallMocks, json, restoreCallMocks, tokenAnswer } from '../../test/callMocks';
import { SimulatorCall, TOKEN_PATH, apiKeyNeeded, apiKeyRefused, type CallCallbacks } from './callEngine';

const callbacks = (): CallCallbacks & { [K in keyof CallCallbacks]: ReturnType<typeof vi.fn> } => ({
  onMessage: vi.fn(),
  onLevel: vi.fn(),
  onClose: vi.fn(),
  onFailure: vi.fn(),
});

describe('SimulatorCall and the call token', () => {
  afterEach(() => restoreCallMocks());

  it('fetches a token with the API key right before the socket and sends it in the start message', async () => {
    localStorage.setItem(API_KEY_STORAGE, 'k1');
    const mocks = installCallMocks((url) => (url === TOKEN_PATH ? tokenAnswer('tok-1') : undefined));
    const call = new SimulatorCall(callbacks());
    await call.start('sales');

    expect(mocks.fetch).toHaveBeenCalledTimes(1);
    const [url, init] = mocks.fetch.mock.calls[0] as [string, RequestInit & { headers: Record<string, string> }];
    expect(url).toBe('/api/v1/simulator/tokens');
    expect(init.method).toBe('POST');
    expect(JSON.parse(String(init.body))).toEqual({ agent_id: 'sales' });
    expect(init.headers['X-API-Key']).toBe('k1');

    expect(FakeWebSocket.instances).toHaveLength(1);
    const ws = FakeWebSocket.instances[0];
    expect(ws.url).toMatch(/\/ws\/simulator$/);
    ws.open();
    expect(ws.json()[0]).toEqual({ type: 'start', sample_rate: 16000, agent_id: 'sales', token: 'tok-1' });
    call.cleanup();
  });

  it('sends the token also when the gateway does not require one (no API keys)', async () => {
    installCallMocks((url) => (url === TOKEN_PATH ? tokenAnswer('dev-tok', false) : undefined));
    const call = new SimulatorCall(callbacks());
    await call.start('');
    const ws = FakeWebSocket.instances[0];
    ws.open();
    expect(ws.json()[0]).toEqual({ type: 'start', sample_rate: 16000, agent_id: null, token: 'dev-tok' });
    call.cleanup();
  });

  it('starts without a token on an older gateway that answers 404', async () => {
    installCallMocks((url) => (url === TOKEN_PATH ? json({ detail: 'Not Found' }, 404) : undefined));
    const call = new SimulatorCall(callbacks());
    await call.start('default');
    expect(FakeWebSocket.instances).toHaveLength(1);
    const ws = FakeWebSocket.instances[0];
    ws.open();
    const start = ws.json()[0];
    expect(start).toEqual({ type: 'start', sample_rate: 16000, agent_id: 'default' });
    expect(start).not.toHaveProperty('token');
    call.cleanup();
  });

  it('a 401 opens no socket and asks for an API key (or a correct one)', async () => {
    installCallMocks((url) => (url === TOKEN_PATH ? json({ detail: 'Missing or invalid API key' }, 401) : undefined));
    await expect(new SimulatorCall(callbacks()).start('default')).rejects.toThrow(apiKeyNeeded());
    localStorage.setItem(API_KEY_STORAGE, 'wrong');
    await expect(new SimulatorCall(callbacks()).start('default')).rejects.toThrow(apiKeyRefused());
    expect(FakeWebSocket.instances).toHaveLength(0);
  });

  it('other token failures stop the call with their reason', async () => {
    installCallMocks((url) => (url === TOKEN_PATH ? json({ detail: 'rate limit exceeded' }, 429) : undefined));
    await expect(new SimulatorCall(callbacks()).start('default')).rejects.toThrow(
      'Could not get a call token: rate limit exceeded',
    );
    expect(FakeWebSocket.instances).toHaveLength(0);
  });

  it('a hang-up while the token is on its way opens no socket and releases the microphone', async () => {
    let answer: (r: Response) => void = () => undefined;
    const mocks = installCallMocks(() => undefined);
    mocks.fetch.mockImplementation(() => new Promise<Response>((resolve) => (answer = resolve)));
    const cb = callbacks();
    const call = new SimulatorCall(cb);
    const started = call.start('default');
    await vi.waitFor(() => expect(mocks.fetch).toHaveBeenCalled());
    call.hangUp();
    answer(tokenAnswer());
    await started;
    expect(FakeWebSocket.instances).toHaveLength(0);
    expect(mocks.stopTrack).toHaveBeenCalled();
    expect(cb.onClose).toHaveBeenCalledWith(1000, 'hung up before connecting');
  });

  it('an error message from the gateway is not overwritten by a socket error', async () => {
    installCallMocks((url) => (url === TOKEN_PATH ? tokenAnswer() : undefined));
    const cb = callbacks();
    const call = new SimulatorCall(cb);
    await call.start('default');
    const ws = FakeWebSocket.instances[0];
    ws.open();
    ws.serverSends({ type: 'error', code: 'unauthorized', message: 'invalid or expired call token' });
    ws.onerror?.(new Event('error'));
    ws.serverCloses(1008, 'unauthorized');
    expect(cb.onMessage).toHaveBeenCalledWith({ type: 'error', code: 'unauthorized', message: 'invalid or expired call token' });
    expect(cb.onFailure).not.toHaveBeenCalled();
    expect(cb.onClose).toHaveBeenCalledWith(1008, 'unauthorized');
  });
});
