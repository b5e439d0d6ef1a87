import { act, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';
import { MemoryRouter } from 'react-router-dom';

import { App } from '../../App';

import { makeStore } from '../../app/store';
import { FakeWebSocket, installCallMocks, json, restoreCallMocks, tokenAnswer } from '../../test/callMocks';
import { TOKEN_PATH, apiKeyNeeded } from './callEngine';
import { LevelMeter, LiveStateBadge, SimulatorPage } from './SimulatorPage';
import { callRequested, messageReceived } from './simulatorSlice';

describe('SimulatorPage', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('renders the live transcript and per-turn latency from the store', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('[]', { status: 200 })));
    const store = makeStore();
    store.dispatch(callRequested());
    store.dispatch(messageReceived({ type: 'started', call_id: 'call-1', sample_rate: 16000, agent_id: 'default' }));
    store.dispatch(messageReceived({ type: 'transcript', role: 'assistant', text: 'Hello, how can I help?', turn_id: 0 }));
    store.dispatch(messageReceived({ type: 'transcript', role: 'user', text: 'A table for two', turn_id: 1 }));
    store.dispatch(messageReceived({ type: 'state', caller: 'listening', agent: 'thinking', event: 'caller_turn_ended' }));
    store.dispatch(messageReceived({ type: 'turn_metrics', turn_id: 1, stt_done_ms: 51, first_audio_sent_ms: 233.4 }));
    render(
      <Provider store={store}>
        <SimulatorPage />
      </Provider>,
    );
    expect(screen.getByTestId('call-status')).toHaveTextContent('In call');
    expect(screen.getByRole('button', { name: 'Hang up' })).toBeEnabled();
    const transcript = screen.getByRole('list', { name: 'Live transcript' });
    expect(transcript).toHaveTextContent('Agent: Hello, how can I help?');
    expect(transcript).toHaveTextContent('You: A table for two');
    expect(screen.getByRole('table', { name: 'Turn latency' })).toHaveTextContent('233 ms');
    expect(screen.getByTestId('agent-state')).toHaveTextContent('Agent thinking…');
  });

  it("shows what the agent is doing, and nothing before the gateway's first state message", () => {
    const { rerender } = render(<LiveStateBadge live={null} />);
    expect(screen.queryByTestId('agent-state')).toBeNull();
    rerender(<LiveStateBadge live={{ caller: 'speaking', agent: 'idle' }} />);
    expect(screen.getByTestId('agent-state')).toHaveTextContent('Agent listening to you');
    rerender(<LiveStateBadge live={{ caller: 'listening', agent: 'speaking' }} />);
    expect(screen.getByTestId('agent-state')).toHaveTextContent('Agent speaking');
  });

  it("the old single-file simulator's address opens this page", async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('[]', { status: 200 })));
    render(
      <Provider store={makeStore()}>
        <MemoryRouter initialEntries={['/simulator.html']}>
          <App />
        </MemoryRouter>
      </Provider>,
    );
    expect(await screen.findByRole('heading', { name: 'Call simulator' })).toBeInTheDocument();
    expect(screen.queryByText('Page not found.')).toBeNull();
  });

  it('meter maps RMS to a 60 dB scale', () => {
    const { rerender } = render(<LevelMeter level={0} />);
    expect(screen.getByRole('meter')).toHaveAttribute('aria-valuenow', '0');
    rerender(<LevelMeter level={1} />);
    expect(screen.getByRole('meter')).toHaveAttribute('aria-valuenow', '100');
    rerender(<LevelMeter level={0.031623} />); // -30 dBFS
    expect(screen.getByRole('meter')).toHaveAttribute('aria-valuenow', '50');
  });

  describe('starting a call', () => {
    afterEach(() => restoreCallMocks());

    const renderPage = () =>
      render(
        <Provider store={makeStore()}>
          <SimulatorPage />
        </Provider>,
      );

    it('a 401 on the call token shows the API-key message and opens no WebSocket', async () => {
      const mocks = installCallMocks((url) =>
        url === TOKEN_PATH ? json({ detail: 'Missing or invalid API key' }, 401) : undefined,
      );
      renderPage();
      await userEvent.click(screen.getByRole('button', { name: 'Call' }));
      expect(await screen.findByRole('alert')).toHaveTextContent(apiKeyNeeded());
      expect(screen.getByTestId('call-status')).toHaveTextContent('Call failed');
      expect(FakeWebSocket.instances).toHaveLength(0);
      expect(mocks.stopTrack).toHaveBeenCalled(); // the microphone is released
      expect(screen.getByRole('button', { name: 'Call' })).toBeEnabled(); // and the user can try again
    });

    it('sends the token and shows a refused token and a busy gateway in plain words', async () => {
      installCallMocks((url) => (url === TOKEN_PATH ? tokenAnswer('tok-9') : undefined));
      renderPage();
      await userEvent.click(screen.getByRole('button', { name: 'Call' }));
      await vi.waitFor(() => expect(FakeWebSocket.instances).toHaveLength(1));
      let ws = FakeWebSocket.instances[0];
      act(() => ws.open());
      expect(ws.json()[0]).toMatchObject({ type: 'start', agent_id: 'default', token: 'tok-9' });
      act(() => {
        ws.serverSends({ type: 'error', code: 'unauthorized', message: 'invalid or expired call token' });
        ws.serverCloses(1008, 'unauthorized');
      });
      expect(screen.getByRole('alert')).toHaveTextContent(/did not accept this call.*API key field/);
      expect(screen.getByTestId('call-status')).toHaveTextContent('Call failed');

      await userEvent.click(screen.getByRole('button', { name: 'Call' }));
      await vi.waitFor(() => expect(FakeWebSocket.instances).toHaveLength(2));
      ws = FakeWebSocket.instances[1];
      act(() => {
        ws.open();
        ws.serverSends({ type: 'error', code: 'busy', message: 'too many calls' });
        ws.serverCloses(1013, 'busy');
      });
      expect(screen.getByRole('alert')).toHaveTextContent('The gateway is busy (too many calls right now): try again in a moment.');
    });

    it('starts without a token when the gateway has no token endpoint (404)', async () => {
      installCallMocks((url) => (url === TOKEN_PATH ? json({ detail: 'Not Found' }, 404) : undefined));
      renderPage();
      await userEvent.click(screen.getByRole('button', { name: 'Call' }));
      await vi.waitFor(() => expect(FakeWebSocket.instances).toHaveLength(1));
      const ws = FakeWebSocket.instances[0];
      act(() => {
        ws.open();
        ws.serverSends({ type: 'started', call_id: 'call-7', sample_rate: 16000, agent_id: 'default' });
      });
      expect(ws.json()[0]).toEqual({ type: 'start', sample_rate: 16000, agent_id: 'default' });
      expect(screen.getByTestId('call-status')).toHaveTextContent('In call');
      expect(screen.queryByRole('alert')).toBeNull();
    });
  });
});
