import { ApiError, apiFetch, fieldErrorsFrom, API_KEY_STORAGE } from './api';

describe('fieldErrorsFrom', () => {
  it('maps FastAPI validation details to field paths', () => {
    expect(
      fieldErrorsFrom([
        { loc: ['body', 'turn', 'vad_start_ms'], msg: 'Input should be greater than or equal to 20' },
        { loc: ['body'], msg: 'Value error, voice.provider: unknown tts provider "nope"; known: fake' },
        { loc: ['body', 'name'], msg: 'Value error, must not be blank' },
      ]),
    ).toEqual({
      'turn.vad_start_ms': 'Input should be greater than or equal to 20',
      'voice.provider': 'unknown tts provider "nope"; known: fake',
      name: 'must not be blank',
    });
  });

  it('ignores anything that is not a list', () => {
    expect(fieldErrorsFrom('nope')).toEqual({});
  });
});

describe('apiFetch', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it('sends the stored key and raises ApiError with field errors on 422', async () => {
    localStorage.setItem(API_KEY_STORAGE, 'k1');
    const fetchMock = vi.fn().mockResolvedValue(
      new Response(JSON.stringify({ detail: [{ loc: ['body', 'language'], msg: 'bad pattern' }] }), { status: 422 }),
    );
    vi.stubGlobal('fetch', fetchMock);
    const err = await apiFetch('/api/v1/agents/default', { method: 'PUT', body: {} }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(422);
    expect(err.fieldErrors).toEqual({ language: 'bad pattern' });
    expect(fetchMock.mock.calls[0][1].headers['X-API-Key']).toBe('k1');
  });

  it('reports 429 with Retry-After and network failures', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn().mockResolvedValue(new Response('{"detail":"rate limit exceeded"}', { status: 429, headers: { 'Retry-After': '3' } })),
    );
    const limited = await apiFetch('/api/v1/calls').catch((e) => e);
    expect(limited.retryAfter).toBe(3);
    expect(limited.message).toBe('rate limit exceeded');
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')));
    const down = await apiFetch('/api/v1/calls').catch((e) => e);
    expect(down.status).toBe(0);
    expect(down.message).toContain('Network error');
  });
});
