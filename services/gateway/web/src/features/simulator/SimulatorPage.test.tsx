import { render, screen } from '@testing-library/react';
import { Provider } from 'react-redux';

import { makeStore } from '../../app/store';
import { LevelMeter, SimulatorPage } from './SimulatorPage';
import { callRequested, messageReceived } from './simulatorSlice';

describe('SimulatorPage', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('renders the live transcript and per-turn latency from the store', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('[]', { status: 200 })));
    const store = makeStore();
    store.dispatch(callRequested());
    store.dispatch(messageReceived({ type: 'started', call_id: 'call-1', sample_rate: 16000, agent_id: 'default' }));
    store.dispatch(messageReceived({ type: 'transcript', role: 'assistant', text: 'Hello, how can I help?' }));
    store.dispatch(messageReceived({ type: 'transcript', role: 'user', text: 'A table for two' }));
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
  });

  it('meter maps RMS to a 60 dB scale', () => {
    const { rerender } = render(<LevelMeter level={0} />);
    expect(screen.getByRole('meter')).toHaveAttribute('aria-valuenow', '0');
    rerender(<LevelMeter level={1} />);
    expect(screen.getByRole('meter')).toHaveAttribute('aria-valuenow', '100');
    rerender(<LevelMeter level={0.031623} />); // -30 dBFS
    expect(screen.getByRole('meter')).toHaveAttribute('aria-valuenow', '50');
  });
});
