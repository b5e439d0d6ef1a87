import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import type { AgentSpec, AgentSpecWrite } from '../../lib/types';
import { AgentForm } from './AgentForm';
import { draftsToTools, newTool, nextKind, toolToDraft } from './toolDrafts';
import { defaultTurn } from '../../test/agentTurn';

const spec: AgentSpec = {
  name: 'Victoria',
  language: 'en-US',
  system_prompt: 'Be brief.',
  first_message: 'Hello!',
  apology_message: 'Sorry.',
  reprompt_message: 'Still there?',
  silence_goodbye_message: 'Bye.',
  max_duration_message: 'Time is up.',
  tool_filler_message: 'One moment, please.',
  end_call_message: 'Goodbye!',
  transfer_message: 'Transferring you now.',
  voice: { provider: null, name: null, style: null, rate: 1, pitch: 0 },
  llm: { provider: null, model: null, temperature: 0.3, max_tokens: 80 },
  stt: { provider: null, model: null, language: null },
  turn: defaultTurn,
  extraction_fields: {},
  overlays: {},
  tools: [
    { kind: 'end_call', name: null, description: null, parameters: null, url: null, method: 'POST', timeout_s: 5, cancellable: true, targets: {} },
    {
      kind: 'transfer_call',
      name: null,
      description: null,
      parameters: null,
      url: null,
      method: 'POST',
      timeout_s: 5,
      cancellable: true,
      targets: { sales: '+34910000001' },
    },
  ],
  tool_filler_after_ms: 1000,
  dtmf: { mode: 'collect', terminator: '#', timeout_s: 3, max_digits: 32, sensitive: false },
  webhook: { url: null },
};

const tool = (n: number) => screen.getByRole('region', { name: new RegExp(`^Tool ${n}:`) });
const saved = (onSave: ReturnType<typeof vi.fn>) => onSave.mock.calls.at(-1)?.[0] as AgentSpecWrite;

describe('the agent tools editor', () => {
  it('adds an HTTP tool, checks its schema is JSON and sends every action setting', async () => {
    const onSave = vi.fn();
    render(<AgentForm spec={spec} catalogueTexts={['end_call_message']} fieldErrors={{}} saving={false} onSave={onSave} />);
    expect(within(tool(2)).getByLabelText('Target 1 name')).toHaveValue('sales');
    expect(within(tool(2)).getByLabelText('Target 1 number')).toHaveValue('+34910000001');

    // a new tool starts as the first built-in the agent lacks; its kind can be changed
    await userEvent.click(screen.getByRole('button', { name: 'Add tool' }));
    expect(within(tool(3)).getByLabelText('Kind')).toHaveValue('send_dtmf');
    await userEvent.selectOptions(within(tool(3)).getByLabelText('Kind'), 'http');
    await userEvent.type(within(tool(3)).getByLabelText('Tool name'), 'order_status');
    await userEvent.type(within(tool(3)).getByLabelText('Request address'), 'https://shop.example/api/order');
    await userEvent.selectOptions(within(tool(3)).getByLabelText('Method'), 'GET');
    await userEvent.click(within(tool(3)).getByLabelText('A barge-in cancels it'));
    const params = within(tool(3)).getByLabelText('Parameters (JSON schema)');
    await userEvent.clear(params);
    await userEvent.type(params, '{{"type": "object"');
    // a second transfer target
    await userEvent.click(within(tool(2)).getByRole('button', { name: 'Add target' }));
    await userEvent.type(within(tool(2)).getByLabelText('Target 2 name'), 'support');
    await userEvent.type(within(tool(2)).getByLabelText('Target 2 number'), '+34 910 000 002');
    // DTMF, webhook, filler
    await userEvent.selectOptions(screen.getByLabelText('Keypad digits'), 'each');
    await userEvent.click(screen.getByLabelText('Sensitive digits'));
    await userEvent.type(screen.getByLabelText('Webhook address'), 'https://crm.example/hooks/victoria');
    await userEvent.clear(screen.getByLabelText('Say the filler after a tool runs for (ms)'));
    await userEvent.type(screen.getByLabelText('Say the filler after a tool runs for (ms)'), '800');

    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave).not.toHaveBeenCalled(); // the schema is not JSON
    expect(params).toHaveAttribute('aria-invalid', 'true');
    expect(params).toHaveAccessibleDescription(/invalid JSON/);

    await userEvent.type(params, '}');
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave).toHaveBeenCalledTimes(1);
    const sent = saved(onSave);
    expect(sent.tools).toEqual([
      { kind: 'end_call', name: null, description: null, method: 'POST', cancellable: true, timeout_s: 5 },
      {
        kind: 'transfer_call',
        name: null,
        description: null,
        method: 'POST',
        cancellable: true,
        timeout_s: 5,
        targets: { sales: '+34910000001', support: '+34910000002' },
      },
      {
        kind: 'http',
        name: 'order_status',
        description: null,
        url: 'https://shop.example/api/order',
        method: 'GET',
        cancellable: false,
        timeout_s: 5,
        parameters: { type: 'object' },
      },
    ]);
    expect(sent).toMatchObject({
      dtmf: { mode: 'each', terminator: '#', timeout_s: 3, max_digits: 32, sensitive: true },
      webhook: { url: 'https://crm.example/hooks/victoria' },
      tool_filler_after_ms: 800,
      // the catalogue's goodbye keeps following the language; the agent's own texts are kept
      end_call_message: null,
      transfer_message: 'Transferring you now.',
      tool_filler_message: 'One moment, please.',
    });
  });

  it("shows the API's 422 errors on the tool and field they name", () => {
    render(
      <AgentForm
        spec={{
          ...spec,
          tools: [...(spec.tools ?? []), { kind: 'http', name: 'crm', url: 'not a url', parameters: { type: 'object' } }],
        }}
        fieldErrors={{
          tools: "two tools are named 'crm'",
          'tools.1': "transfer target name 'Sales': lowercase letters, digits, _ or -",
          'tools.2.url': 'Input should be a valid URL, relative URL without a base',
          'webhook.url': 'Input should be a valid URL',
        }}
        saving={false}
        onSave={vi.fn()}
      />,
    );
    expect(screen.getByTestId('tools-error')).toHaveTextContent("two tools are named 'crm'");
    expect(within(tool(2)).getByRole('alert')).toHaveTextContent(/transfer target name 'Sales'/);
    expect(within(tool(1)).queryByRole('alert')).toBeNull();
    const url = within(tool(3)).getByLabelText('Request address');
    expect(url).toHaveAttribute('aria-invalid', 'true');
    expect(url).toHaveAccessibleDescription(/valid URL, relative URL/);
    expect(within(tool(3)).getByLabelText('Tool name')).toHaveAttribute('aria-invalid', 'false');
    expect(screen.getByLabelText('Webhook address')).toHaveAttribute('aria-invalid', 'true');
  });

  it('removes a tool and the changes can be discarded', async () => {
    const onSave = vi.fn();
    render(<AgentForm spec={spec} fieldErrors={{}} saving={false} onSave={onSave} />);
    await userEvent.click(screen.getByRole('button', { name: /^Remove Tool 1:/ }));
    expect(screen.queryByRole('region', { name: /^Tool 2:/ })).toBeNull();
    expect(within(tool(1)).getByLabelText('Kind')).toHaveValue('transfer_call');
    await userEvent.click(screen.getByRole('button', { name: 'Discard changes' }));
    expect(within(tool(1)).getByLabelText('Kind')).toHaveValue('end_call');
    await userEvent.click(screen.getByRole('button', { name: /^Remove Tool 2:/ }));
    await userEvent.click(screen.getByRole('button', { name: /^Remove Tool 1:/ }));
    expect(screen.getByText('No tools: the agent only talks.')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(saved(onSave).tools).toEqual([]);
  });
});

describe('tool drafts', () => {
  it('send only the fields a kind allows and refuse repeated target names', () => {
    const http = { ...toolToDraft({ kind: 'http', name: 'x', url: 'https://a.example', parameters: null }), parameters: '' };
    const transfer = { ...newTool('transfer_call'), url: 'https://ignored.example', targets: [{ name: 'a', number: '+1555' }, { name: 'a', number: '+1556' }, { name: '', number: ' ' }] };
    const { tools, errors } = draftsToTools([http, transfer]);
    expect(tools[0]).toMatchObject({ kind: 'http', url: 'https://a.example', parameters: null });
    expect(tools[1]).not.toHaveProperty('url');
    expect(tools[1]).not.toHaveProperty('parameters');
    expect(errors).toEqual({ 'tools.1.targets': 'the target name "a" appears twice' });
    expect(draftsToTools([{ ...newTool('http'), parameters: '[1]' }]).errors['tools.0.parameters']).toMatch(/JSON object/);
    expect(nextKind([newTool('end_call'), newTool('transfer_call')])).toBe('send_dtmf');
    expect(nextKind([newTool('end_call'), newTool('transfer_call'), newTool('send_dtmf')])).toBe('http');
  });
});
