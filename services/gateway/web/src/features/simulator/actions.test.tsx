import { act, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';

import { makeStore } from '../../app/store';
import { FakeWebSocket, installCallMocks, restoreCallMocks, tokenAnswer } from '../../test/callMocks';
import { TOKEN_PATH } from './callEngine';
import { SimulatorPage } from './SimulatorPage';
import reducer, { callRequested, initialSimulatorState, keyPressed, messageReceived } from './simulatorSlice';

describe('the simulator and agent actions', () => {
  afterEach(() => restoreCallMocks());

  it('sends keypad digits during a call and shows tool activity and a transfer in the live transcript', async () => {
    installCallMocks((url) => (url === TOKEN_PATH ? tokenAnswer('tok-3') : undefined));
    render(
      <Provider store={makeStore()}>
        <SimulatorPage />
      </Provider>,
    );
    const keypad = screen.getByRole('group', { name: 'Keypad' });
    expect(within(keypad).getAllByRole('button').map((b) => b.textContent)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#']);
    expect(within(keypad).getByRole('button', { name: '5' })).toBeDisabled(); // no call yet

    await userEvent.click(screen.getByRole('button', { name: 'Call' }));
    await vi.waitFor(() => expect(FakeWebSocket.instances).toHaveLength(1));
    const ws = FakeWebSocket.instances[0];
    act(() => {
      ws.open();
      ws.serverSends({ type: 'started', call_id: 'call-k', sample_rate: 16000, agent_id: 'default' });
    });
    for (const key of ['1', '2', '#']) await userEvent.click(within(keypad).getByRole('button', { name: key }));
    expect(ws.json().filter((m) => m.type === 'dtmf')).toEqual([
      { type: 'dtmf', digit: '1' },
      { type: 'dtmf', digit: '2' },
      { type: 'dtmf', digit: '#' },
    ]);
    expect(screen.getByTestId('keys-sent')).toHaveTextContent('Keys pressed: 12#');

    act(() => {
      ws.serverSends({ type: 'transcript', role: 'user', text: 'DTMF: 12', turn_id: 1 });
      ws.serverSends({ type: 'tool', turn_id: 1, name: 'order_status', status: 'ok', text: 'order_status(order_id=12) → shipped', duration_ms: 87 });
      ws.serverSends({ type: 'turn_metrics', turn_id: 1, stt_done_ms: 5, first_audio_sent_ms: 300, tools_ms: 90 });
      ws.serverSends({ type: 'transferred', target: '+34910000001' });
    });
    const transcript = screen.getByRole('list', { name: 'Live transcript' });
    const tool = transcript.querySelector('li[data-role="tool"]') as HTMLElement;
    expect(tool).toHaveTextContent('order_status(order_id=12) → shipped');
    expect(tool).toHaveTextContent('ok');
    expect(tool).toHaveTextContent('87 ms');
    expect(transcript.querySelector('li[data-role="notice"]')).toHaveTextContent('The agent transferred the call to +34910000001.');
    const latency = screen.getByRole('table', { name: 'Turn latency' });
    expect(within(latency).getByRole('columnheader', { name: 'Tools' })).toBeInTheDocument();
    expect(latency).toHaveTextContent('90 ms');

    act(() => ws.serverCloses(1000, ''));
    expect(within(keypad).getByRole('button', { name: '5' })).toBeDisabled();
  });

  it('a new call forgets the keys and the transfer of the last one', () => {
    let s = reducer(initialSimulatorState, keyPressed('7'));
    s = reducer(s, messageReceived({ type: 'transferred', target: 'sip:desk@example.com' }));
    expect([s.keys, s.transferredTo]).toEqual(['7', 'sip:desk@example.com']);
    s = reducer(s, callRequested());
    expect([s.keys, s.transferredTo]).toEqual(['', null]);
  });
});
