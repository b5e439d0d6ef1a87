import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';

import { makeStore } from '../../app/store';
import type { Agent, AgentSpec } from '../../lib/types';
import { AgentForm } from './AgentForm';
import { AgentsPage } from './AgentsPage';
import reducer, { fetchAgents, initialAgentsState, saveAgent } from './agentsSlice';

const spec: AgentSpec = {
  name: 'Victoria',
  language: 'en-US',
  system_prompt: 'Be brief.',
  first_message: 'Hello!',
  apology_message: 'Sorry.',
  reprompt_message: 'Still there?',
  silence_goodbye_message: 'Bye.',
  max_duration_message: 'Time is up.',
  voice: { provider: null, name: null, style: null, rate: 1, pitch: 0 },
  llm: { provider: null, model: null, temperature: 0.3, max_tokens: 80 },
  stt: { provider: null, model: null, language: null },
  turn: { vad_start_ms: 120, vad_stop_ms: 500, vad_preroll_ms: 200, silence_timeout_s: 10, max_call_s: 1800 },
  extraction_fields: {},
  overlays: {},
};
const agent = (id: string, version = 1): Agent => ({
  agent_id: id,
  version,
  created_at: '2031-01-01T00:00:00Z',
  updated_at: '2031-01-01T00:00:00Z',
  spec,
});
const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });

describe('agentsSlice', () => {
  it('selects the default agent after loading and keeps 422 field errors', () => {
    let s = reducer(initialAgentsState, fetchAgents.fulfilled([agent('zeta'), agent('default')], 'r'));
    expect(s.items.map((a) => a.agent_id)).toEqual(['default', 'zeta']);
    expect(s.selectedId).toBe('default');
    const args = { agentId: 'default', version: 1, spec };
    s = reducer(s, saveAgent.pending('r2', args));
    expect(s.save.status).toBe('loading');
    s = reducer(
      s,
      saveAgent.rejected(null, 'r2', args, { status: 422, message: 'Some fields are invalid', fieldErrors: { 'turn.vad_stop_ms': 'too small' } }),
    );
    expect(s.save).toMatchObject({ status: 'failed', fieldErrors: { 'turn.vad_stop_ms': 'too small' } });
    s = reducer(s, saveAgent.fulfilled(agent('default', 2), 'r3', args));
    expect(s.items[0].version).toBe(2);
    expect(s.save).toMatchObject({ status: 'succeeded', savedVersion: 2, fieldErrors: {} });
  });
});

describe('AgentForm', () => {
  it('shows field errors next to the fields and sends the edited spec', async () => {
    const onSave = vi.fn();
    const { rerender } = render(<AgentForm spec={spec} fieldErrors={{}} saving={false} onSave={onSave} />);
    const first = screen.getByLabelText('First message');
    await userEvent.clear(first);
    await userEvent.type(first, 'Hi, Victoria here.');
    await userEvent.clear(screen.getByLabelText('Silence to end a turn (ms)'));
    await userEvent.type(screen.getByLabelText('Silence to end a turn (ms)'), '700');
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave).toHaveBeenCalledTimes(1);
    expect(onSave.mock.calls[0][0]).toMatchObject({ first_message: 'Hi, Victoria here.', turn: { vad_stop_ms: 700 } });

    rerender(<AgentForm spec={spec} fieldErrors={{ 'turn.vad_stop_ms': 'Input should be less than or equal to 5000' }} saving={false} onSave={onSave} />);
    const field = screen.getByLabelText('Silence to end a turn (ms)');
    expect(field).toHaveAttribute('aria-invalid', 'true');
    expect(field).toHaveAccessibleDescription(/less than or equal to 5000/);
    expect(within(screen.getByRole('alert')).getByText('turn.vad_stop_ms')).toBeInTheDocument();
  });

  it('refuses invalid JSON in the overlays without calling the API', async () => {
    const onSave = vi.fn();
    render(<AgentForm spec={spec} fieldErrors={{}} saving={false} onSave={onSave} />);
    const overlays = screen.getByLabelText('Overlays per client type');
    await userEvent.clear(overlays);
    await userEvent.type(overlays, 'not json');
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave).not.toHaveBeenCalled();
    expect(overlays).toHaveAccessibleDescription(/invalid JSON/);
  });
});

describe('AgentsPage', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('loads the agents, saves with If-Match and shows the API field errors', async () => {
    const calls: { url: string; init?: RequestInit }[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        calls.push({ url, init });
        if (init?.method === 'PUT')
          return json({ detail: [{ loc: ['body', 'language'], msg: "String should match pattern '^[a-z]{2,3}(-[A-Z]{2})?$'" }] }, 422);
        return json([agent('default', 3)]);
      }),
    );
    render(
      <Provider store={makeStore()}>
        <AgentsPage />
      </Provider>,
    );
    expect(await screen.findByRole('heading', { name: /Agent “default”/ })).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(await screen.findByText(/String should match pattern/, { selector: 'p' })).toBeInTheDocument();
    const put = calls.find((c) => c.init?.method === 'PUT')!;
    expect(put.url).toBe('/api/v1/agents/default');
    expect((put.init!.headers as Record<string, string>)['If-Match']).toBe('"3"');
    expect(screen.getByLabelText('Language')).toHaveAttribute('aria-invalid', 'true');
  });

  it('shows an error with a retry when the API refuses the key', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json({ detail: 'invalid API key' }, 401)));
    render(
      <Provider store={makeStore()}>
        <AgentsPage />
      </Provider>,
    );
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('invalid API key');
    expect(within(alert).getByRole('button', { name: 'Retry' })).toBeInTheDocument();
  });
});
