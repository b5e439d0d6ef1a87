import i18n from '../../i18n';
import reducer, {
  callRequested,
  connectionClosed,
  hangUpRequested,
  initialSimulatorState,
  messageReceived,
  type SimulatorState,
} from './simulatorSlice';

const run = (state: SimulatorState, ...actions: Parameters<typeof reducer>[1][]) => actions.reduce(reducer, state);

describe('simulatorSlice', () => {
  it('follows a call from request to end', () => {
    const s = run(
      initialSimulatorState,
      callRequested(),
      messageReceived({ type: 'started', call_id: 'c1', sample_rate: 16000, agent_id: 'default' }),
      messageReceived({ type: 'transcript', role: 'assistant', text: 'Hello there', turn_id: 0 }),
      messageReceived({ type: 'transcript', role: 'user', text: 'Book a table', turn_id: 1 }),
      messageReceived({
        type: 'turn_metrics',
        turn_id: 1,
        stt_done_ms: 120,
        llm_first_token_ms: 300,
        tts_first_audio_ms: 420,
        first_audio_sent_ms: 450,
      }),
      messageReceived({ type: 'clear' }),
      messageReceived({ type: 'ended', reason: 'caller_hangup' }),
    );
    expect(s.status).toBe('ended');
    expect(s.callId).toBe('c1');
    expect(s.transcript.map((t) => [t.role, t.text])).toEqual([
      ['assistant', 'Hello there'],
      ['user', 'Book a table'],
    ]);
    expect(s.metrics).toEqual([
      { turn_id: 1, stt_done_ms: 120, llm_first_token_ms: 300, tts_first_audio_ms: 420, first_audio_sent_ms: 450, tools_ms: null },
    ]);
    expect(s.bargeIns).toBe(1);
    expect(s.endReason).toBe('caller_hangup');
  });

  it("follows the agent's state from the gateway's state messages, and forgets it when the call ends", () => {
    let s = run(
      initialSimulatorState,
      callRequested(),
      messageReceived({ type: 'started', call_id: 'c3', sample_rate: 16000, agent_id: 'default' }),
    );
    expect(s.live).toBeNull();
    s = reducer(s, messageReceived({ type: 'state', caller: 'listening', agent: 'thinking', event: 'caller_turn_ended' }));
    expect(s.live).toEqual({ caller: 'listening', agent: 'thinking' });
    s = reducer(s, messageReceived({ type: 'state', caller: 'speaking', agent: 'speaking', event: 'caller_started' }));
    expect(s.live).toEqual({ caller: 'speaking', agent: 'speaking' });
    expect(run(s, messageReceived({ type: 'ended', reason: 'caller_hangup' })).live).toBeNull();
    expect(run(s, connectionClosed({ code: 1006, reason: '' })).live).toBeNull();
    expect(run(s, callRequested()).live).toBeNull();
  });

  it('replaces metrics of the same turn and tolerates missing values', () => {
    const s = run(
      initialSimulatorState,
      messageReceived({ type: 'turn_metrics', turn_id: 2, stt_done_ms: 10 }),
      messageReceived({ type: 'turn_metrics', turn_id: 2, stt_done_ms: 20, first_audio_sent_ms: 99 }),
    );
    expect(s.metrics).toHaveLength(1);
    expect(s.metrics[0]).toMatchObject({ stt_done_ms: 20, llm_first_token_ms: null, first_audio_sent_ms: 99 });
  });

  it('shows server errors in the transcript and a refused start as failed', () => {
    const s = run(
      initialSimulatorState,
      callRequested(),
      messageReceived({ type: 'error', code: 'global_stop', message: 'new calls are paused' }),
      connectionClosed({ code: 1013, reason: 'global_stop' }),
    );
    expect(s.status).toBe('failed');
    expect(s.error).toBe('global_stop: new calls are paused');
    expect(s.transcript.at(-1)).toMatchObject({ role: 'system' });
    expect(s.endReason).toBe('global_stop');
  });

  it('a hang-up that closes the socket ends the call cleanly, and a new call starts empty', () => {
    let s = run(
      initialSimulatorState,
      callRequested(),
      messageReceived({ type: 'started', call_id: 'c2', sample_rate: 16000, agent_id: 'x' }),
      messageReceived({ type: 'transcript', role: 'assistant', text: 'hi', turn_id: 0 }),
      hangUpRequested(),
      connectionClosed({ code: 1006, reason: '' }),
    );
    expect(s.status).toBe('ended');
    s = reducer(s, callRequested());
    expect(s).toMatchObject({ status: 'connecting', callId: null, transcript: [], metrics: [], endReason: null });
  });

  it('explains a refused call token and a busy gateway in plain words', () => {
    let s = run(
      initialSimulatorState,
      callRequested(),
      messageReceived({ type: 'error', code: 'unauthorized', message: 'invalid or expired call token' }),
      connectionClosed({ code: 1008, reason: 'unauthorized' }),
    );
    expect(s.status).toBe('failed');
    expect(s.error).toMatch(/did not accept this call.*API key field at the top/);
    expect(s.transcript.at(-1)?.text).toBe('error unauthorized: invalid or expired call token');
    s = run(
      s,
      callRequested(),
      messageReceived({ type: 'error', code: 'busy', message: 'the gateway is at capacity' }),
      connectionClosed({ code: 1013, reason: '' }),
    );
    expect(s.status).toBe('failed');
    expect(s.error).toBe('The gateway is busy (too many calls right now): try again in a moment.');
    expect(s.endReason).toBe('connection closed (1013)');
  });

  it('says it in Spanish when the dashboard is in Spanish; the server message stays as it came', async () => {
    await i18n.changeLanguage('es');
    const s = run(
      initialSimulatorState,
      callRequested(),
      messageReceived({ type: 'error', code: 'busy', message: 'the gateway is at capacity' }),
      messageReceived({ type: 'error', code: 'agent_unknown', message: 'no agent "x"' }),
      connectionClosed({ code: 1013, reason: '' }),
    );
    expect(s.transcript.map((t) => t.text)).toEqual(['error busy: the gateway is at capacity', 'error agent_unknown: no agent "x"']);
    expect(s.error).toBe('agent_unknown: no agent "x"');
    expect(run(initialSimulatorState, callRequested(), messageReceived({ type: 'error', code: 'busy', message: '' })).error).toBe(
      'La pasarela está ocupada (demasiadas llamadas ahora mismo): inténtalo de nuevo dentro de un momento.',
    );
    expect(s.endReason).toBe('conexión cerrada (1013)');
  });
});
