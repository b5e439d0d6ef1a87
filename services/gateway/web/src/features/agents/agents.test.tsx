import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';

import { makeStore } from '../../app/store';
import i18n from '../../i18n';
import type { Agent, AgentSpec, AgentSpecWrite, ProviderCatalogue, ProviderInfo } from '../../lib/types';
import { AgentForm, parsePhoneNumbers } from './AgentForm';
import { AgentsPage } from './AgentsPage';
import reducer, { fetchAgents, fetchProviders, initialAgentsState, saveAgent } from './agentsSlice';
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
  voice: { provider: null, name: null, style: null, rate: 1, pitch: 0 },
  llm: { provider: null, model: null, temperature: 0.3, max_tokens: 80 },
  stt: { provider: null, model: null, language: null },
  turn: defaultTurn,
  extraction_fields: {},
  overlays: {},
};
const agent = (id: string, version = 1): Agent => ({
  agent_id: id,
  version,
  created_at: '2031-01-01T00:00:00Z',
  updated_at: '2031-01-01T00:00:00Z',
  spec,
  catalogue_texts: [],
});
const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });
const provider = (name: string, extra: Partial<ProviderInfo> = {}): ProviderInfo => ({
  name,
  usable: true,
  status: 'built in',
  default: false,
  default_model: null,
  default_voice: null,
  models: [],
  voices: [],
  languages: [],
  note: '',
  ...extra,
});
const catalogue: ProviderCatalogue = {
  stt: [
    provider('fake', { default: true }),
    provider('groq', {
      usable: false,
      status: 'set GROQ_API_KEY',
      default_model: 'whisper-large-v3-turbo',
      models: [
        { id: 'whisper-large-v3-turbo', description: 'fast' },
        { id: 'whisper-large-v3', description: 'accurate' },
      ],
      languages: ['en', 'es'],
    }),
  ],
  llm: [provider('fake', { default: true }), provider('groq', { models: [{ id: 'llama-3.3-70b-versatile', description: '' }] })],
  tts: [
    provider('local_piper', { default: true, voices: [{ name: 'en_US-joe-medium', language: 'en-US', gender: 'male', styles: [] }] }),
    provider('azure', {
      default_voice: 'en-US-JennyNeural',
      voices: [
        { name: 'es-ES-ElviraNeural', language: 'es-ES', gender: 'female', styles: [] },
        { name: 'en-US-JennyNeural', language: 'en-US', gender: 'female', styles: ['cheerful', 'chat'] },
      ],
    }),
  ],
};
const suggestions = (path: string) =>
  Array.from(screen.getByTestId(`${path}-suggestions`).querySelectorAll('option')).map((o) => o.getAttribute('value'));

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

  it('keeps the provider catalogue, and the last good one when a reload fails', () => {
    let s = reducer(initialAgentsState, fetchProviders.pending('p1'));
    expect(s.providers.status).toBe('loading');
    s = reducer(s, fetchProviders.fulfilled(catalogue, 'p1'));
    expect(s.providers).toMatchObject({ status: 'succeeded', error: null });
    expect(s.providers.catalogue?.tts.map((p) => p.name)).toEqual(['local_piper', 'azure']);
    s = reducer(s, fetchProviders.rejected(null, 'p2', undefined, { status: 401, message: 'invalid API key', fieldErrors: {} }));
    expect(s.providers).toMatchObject({ status: 'failed', error: 'invalid API key' });
    expect(s.providers.catalogue).toBe(catalogue);
  });
});

describe('parsePhoneNumbers', () => {
  it('splits on lines, commas and semicolons and drops spacing inside numbers', () => {
    expect(parsePhoneNumbers('+34 910 000 000,\n+1 (555) 010-0000; \n\n')).toEqual(['+34910000000', '+15550100000']);
    expect(parsePhoneNumbers('')).toEqual([]);
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

  it('edits the turn taking: the end-of-turn mode with what it does, the model and interruption settings', async () => {
    const onSave = vi.fn<(s: AgentSpecWrite) => void>();
    render(<AgentForm spec={spec} fieldErrors={{}} saving={false} onSave={onSave} />);
    const mode = screen.getByLabelText("End of the caller's turn") as HTMLSelectElement;
    expect(mode).toHaveValue('model');
    expect(Array.from(mode.options).map((o) => [o.value, o.textContent])).toEqual([
      ['model', 'end-of-turn model (Smart Turn)'],
      ['silence', 'fixed silence'],
    ]);
    expect(mode).toHaveAccessibleDescription(/at each pause the model judges .* whether the caller has finished/);
    expect(screen.getByLabelText('Silence to end a turn (ms)')).toHaveAccessibleDescription(/the fixed window of "fixed silence"/);
    await userEvent.selectOptions(mode, 'silence');
    expect(mode).toHaveAccessibleDescription(/the turn ends after a fixed silence \("Silence to end a turn"\)/);

    const edit = async (label: string, value: string) => {
      await userEvent.clear(screen.getByLabelText(label));
      await userEvent.type(screen.getByLabelText(label), value);
    };
    await edit('Model: judge a pause after (ms)', '300');
    await edit('Model: longest pause to wait out (ms)', '2500');
    expect(screen.getByLabelText('Model: threshold (0.01–0.99)')).toHaveAttribute('step', '0.05');
    await edit('Model: threshold (0.01–0.99)', '0.65');
    await edit('Start the reply after (ms)', '0');
    await edit('Speech that interrupts the agent (ms)', '800');
    const resume = screen.getByLabelText('Resume after a false interruption');
    expect(resume).toBeChecked();
    await userEvent.click(resume);
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave.mock.calls[0][0].turn).toEqual({
      ...spec.turn,
      end_of_turn: 'silence',
      pause_ms: 300,
      max_silence_ms: 2500,
      eot_threshold: 0.65,
      preempt_ms: 0,
      interrupt_min_ms: 800,
      resume_after_false_interruption: false,
    });
  });

  it("shows an older gateway's agent with the turn-taking defaults, and the API's errors on those fields", async () => {
    const onSave = vi.fn<(s: AgentSpecWrite) => void>();
    const { vad_start_ms, vad_stop_ms, vad_preroll_ms, silence_timeout_s, max_call_s } = spec.turn;
    const older: AgentSpec = { ...spec, turn: { vad_start_ms, vad_stop_ms, vad_preroll_ms, silence_timeout_s, max_call_s } };
    const errors = {
      'turn.pause_ms': 'Input should be greater than or equal to 60',
      'turn.eot_threshold': 'Input should be less than or equal to 0.99',
    };
    render(<AgentForm spec={older} fieldErrors={errors} saving={false} onSave={onSave} />);
    // shared/call_config.py's defaults
    expect(screen.getByLabelText("End of the caller's turn")).toHaveValue('model');
    expect(screen.getByLabelText('Model: longest pause to wait out (ms)')).toHaveValue(1500);
    expect(screen.getByLabelText('Resume after a false interruption')).toBeChecked();
    const pause = screen.getByLabelText('Model: judge a pause after (ms)');
    expect(pause).toHaveValue(200);
    expect(pause).toHaveAttribute('aria-invalid', 'true');
    expect(pause).toHaveAccessibleDescription(/greater than or equal to 60.*the silence after which the end-of-turn model decides/);
    expect(screen.getByLabelText('Model: threshold (0.01–0.99)')).toHaveAccessibleDescription(/less than or equal to 0.99/);
    expect(screen.getByLabelText('Speech that interrupts the agent (ms)')).toHaveAttribute('aria-invalid', 'false');
    const alert = within(screen.getByRole('alert'));
    expect(alert.getByText('turn.pause_ms')).toBeInTheDocument();
    expect(alert.getByText('turn.eot_threshold')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave.mock.calls[0][0].turn).toEqual(spec.turn);
  });

  it('offers the catalogue: providers in a select, voices, styles, models and languages as suggestions', async () => {
    const onSave = vi.fn();
    render(<AgentForm spec={spec} catalogue={catalogue} fieldErrors={{}} saving={false} onSave={onSave} />);
    const ttsSelect = screen.getByLabelText('Voice provider');
    expect(Array.from((ttsSelect as HTMLSelectElement).options).map((o) => o.textContent)).toEqual([
      'worker default (local_piper)',
      'local_piper',
      'azure',
    ]);
    // nothing chosen: the worker default's voice
    expect(suggestions('voice.name')).toEqual(['en_US-joe-medium']);
    await userEvent.selectOptions(ttsSelect, 'azure');
    expect(suggestions('voice.name')).toEqual(['es-ES-ElviraNeural', 'en-US-JennyNeural']);
    expect(screen.getByLabelText('Voice name')).toHaveAccessibleDescription('empty = en-US-JennyNeural');
    await userEvent.type(screen.getByLabelText('Voice name'), 'en-US-JennyNeural');
    expect(suggestions('voice.style')).toEqual(['cheerful', 'chat']);

    const sttSelect = screen.getByLabelText('STT provider');
    expect(within(sttSelect).getByRole('option', { name: 'groq (set GROQ_API_KEY)' })).toBeInTheDocument();
    await userEvent.selectOptions(sttSelect, 'groq');
    expect(sttSelect).toHaveAccessibleDescription(/not usable here: set GROQ_API_KEY/);
    expect(suggestions('stt.model')).toEqual(['whisper-large-v3-turbo', 'whisper-large-v3']);
    expect(suggestions('stt.language')).toEqual(['en', 'es']);
    // free text still goes through
    await userEvent.type(screen.getByLabelText('STT model'), 'my-own-whisper');
    await userEvent.selectOptions(screen.getByLabelText('LLM provider'), 'groq');
    expect(suggestions('llm.model')).toEqual(['llama-3.3-70b-versatile']);

    await userEvent.type(screen.getByLabelText('Phone numbers'), '+34 910 000 000, +15550100000');
    await userEvent.click(screen.getByRole('button', { name: 'Save agent' }));
    expect(onSave.mock.calls[0][0]).toMatchObject({
      voice: { provider: 'azure', name: 'en-US-JennyNeural' },
      stt: { provider: 'groq', model: 'my-own-whisper' },
      llm: { provider: 'groq' },
      phone_numbers: ['+34910000000', '+15550100000'],
    });
  });

  it('works without a catalogue, keeps an unknown provider and shows phone number errors', () => {
    const odd = { ...spec, voice: { ...spec.voice, provider: 'retired_tts' }, phone_numbers: ['+34910000000'] };
    render(
      <AgentForm spec={odd} fieldErrors={{ phone_numbers: "'123' is not an E.164 number such as +34910000000" }} saving={false} onSave={vi.fn()} />,
    );
    const ttsSelect = screen.getByLabelText('Voice provider') as HTMLSelectElement;
    expect(ttsSelect.value).toBe('retired_tts');
    expect(Array.from(ttsSelect.options).map((o) => o.value)).toEqual(['', 'retired_tts', 'local_piper', 'azure', 'fake']);
    const phones = screen.getByLabelText('Phone numbers');
    expect(phones).toHaveValue('+34910000000');
    expect(phones).toHaveAttribute('aria-invalid', 'true');
    expect(phones).toHaveAccessibleDescription(/not an E.164 number/);
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

describe('AgentForm and the catalogue texts', () => {
  // as the API reads it: the catalogue texts resolved in spec and named in catalogue_texts
  const resolved: AgentSpec = {
    ...spec,
    first_message: 'Hello, this is Victoria. How can I help you today?',
    reprompt_message: 'Are you still there?',
    shutdown_message: 'Sorry, I have to end the call now for maintenance. Please call again in a minute. Goodbye!',
  };
  const fromCatalogue = ['first_message', 'reprompt_message', 'shutdown_message'];
  const renderForm = () => {
    const onSave = vi.fn<(s: AgentSpecWrite) => void>();
    render(<AgentForm spec={resolved} catalogueTexts={fromCatalogue} fieldErrors={{}} saving={false} onSave={onSave} />);
    return onSave;
  };
  const save = async (name = 'Save agent') => userEvent.click(screen.getByRole('button', { name }));

  it('marks the catalogue texts and sends them back as null when untouched, the set ones as strings', async () => {
    const onSave = renderForm();
    expect(screen.getByLabelText('First message')).toHaveValue(resolved.first_message);
    expect(screen.getByLabelText('First message')).toHaveAccessibleDescription(/from the catalogue \(follows the agent's language\)/);
    expect(screen.getByLabelText('Re-prompt (after silence)')).toHaveAccessibleDescription("from the catalogue (follows the agent's language)");
    expect(screen.getByLabelText('Apology (on errors)')).not.toHaveAccessibleDescription(/catalogue/);
    // only the agent's own texts can be reset to the catalogue
    expect(screen.queryByRole('button', { name: 'Reset to catalogue: First message' })).not.toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Reset to catalogue: Apology (on errors)' })).toBeInTheDocument();
    await save();
    expect(onSave).toHaveBeenCalledTimes(1);
    expect(onSave.mock.calls[0][0]).toMatchObject({
      first_message: null,
      reprompt_message: null,
      shutdown_message: null,
      system_prompt: 'Be brief.',
      apology_message: 'Sorry.',
      silence_goodbye_message: 'Bye.',
      max_duration_message: 'Time is up.',
    });
  });

  it('sends an edited catalogue text as its string, and null again once reset to the catalogue', async () => {
    const onSave = renderForm();
    const reprompt = screen.getByLabelText('Re-prompt (after silence)');
    await userEvent.clear(reprompt);
    await userEvent.type(reprompt, 'Hello?');
    expect(reprompt).not.toHaveAccessibleDescription(/catalogue/);
    await save();
    expect(onSave.mock.calls[0][0]).toMatchObject({ reprompt_message: 'Hello?', first_message: null, shutdown_message: null });

    // reset: back to the catalogue's text as read, and null again
    await userEvent.click(screen.getByRole('button', { name: 'Reset to catalogue: Re-prompt (after silence)' }));
    expect(reprompt).toHaveValue('Are you still there?');
    expect(reprompt).toHaveAccessibleDescription("from the catalogue (follows the agent's language)");
    await save();
    expect(onSave.mock.calls[1][0]).toMatchObject({ reprompt_message: null });
  });

  it("resets a text the agent set: null is sent and the catalogue's text is left to the API", async () => {
    const onSave = renderForm();
    await userEvent.click(screen.getByRole('button', { name: 'Reset to catalogue: Apology (on errors)' }));
    const apology = screen.getByLabelText('Apology (on errors)');
    expect(apology).toHaveValue('');
    expect(apology).toHaveAttribute('placeholder', "the catalogue's text in the agent's language");
    expect(apology).toHaveAccessibleDescription("from the catalogue (follows the agent's language)");
    await save();
    expect(onSave.mock.calls[0][0]).toMatchObject({ apology_message: null, system_prompt: 'Be brief.' });
  });

  it('discarding the changes brings back the catalogue texts as read', async () => {
    const onSave = renderForm();
    await userEvent.type(screen.getByLabelText('First message'), '!');
    await userEvent.click(screen.getByRole('button', { name: 'Reset to catalogue: Apology (on errors)' }));
    await userEvent.click(screen.getByRole('button', { name: 'Discard changes' }));
    await save();
    expect(onSave.mock.calls[0][0]).toMatchObject({ first_message: null, apology_message: 'Sorry.' });
  });

  it('says the catalogue texts will follow a new language after saving (en)', async () => {
    const onSave = renderForm();
    const language = screen.getByLabelText('Language');
    await userEvent.clear(language);
    await userEvent.type(language, 'es-ES');
    expect(screen.getByLabelText('Re-prompt (after silence)')).toHaveAccessibleDescription(
      'from the catalogue: after saving it will follow the new language (es-ES)',
    );
    expect(screen.getByLabelText('Apology (on errors)')).not.toHaveAccessibleDescription(/new language/);
    await save();
    expect(onSave.mock.calls[0][0]).toMatchObject({ language: 'es-ES', reprompt_message: null, apology_message: 'Sorry.' });
    // back to the language as read: the plain hint again
    await userEvent.clear(language);
    await userEvent.type(language, 'en-US');
    expect(screen.getByLabelText('Re-prompt (after silence)')).toHaveAccessibleDescription("from the catalogue (follows the agent's language)");
  });

  it('shows the catalogue hints and the reset button in Spanish', async () => {
    await i18n.changeLanguage('es');
    const onSave = renderForm();
    const reprompt = screen.getByLabelText('Insistencia (tras un silencio)');
    expect(reprompt).toHaveAccessibleDescription('del catálogo (sigue el idioma del agente)');
    const language = screen.getByLabelText('Idioma');
    await userEvent.clear(language);
    await userEvent.type(language, 'es-ES');
    expect(reprompt).toHaveAccessibleDescription('del catálogo: al guardar, pasará a seguir el nuevo idioma (es-ES)');
    await userEvent.click(screen.getByRole('button', { name: 'Volver al catálogo: Disculpa (si hay errores)' }));
    expect(screen.getByLabelText('Disculpa (si hay errores)')).toHaveAttribute('placeholder', 'el texto del catálogo en el idioma del agente');
    expect(screen.getAllByRole('button', { name: /^Volver al catálogo: / }).map((b) => b.textContent)).toContain('Volver al catálogo');
    await save('Guardar agente');
    expect(onSave.mock.calls[0][0]).toMatchObject({ language: 'es-ES', reprompt_message: null, apology_message: null });
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
        if (url === '/api/v1/providers') return json(catalogue);
        return json([{ ...agent('default', 3), catalogue_texts: ['first_message'] }]);
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
    // the catalogue texts go back as null, so that they keep following the language
    expect(JSON.parse(String(put.init!.body))).toMatchObject({ first_message: null, apology_message: 'Sorry.' });
    expect((put.init!.headers as Record<string, string>)['If-Match']).toBe('"3"');
    expect(screen.getByLabelText('Language')).toHaveAttribute('aria-invalid', 'true');
    expect(calls.some((c) => c.url === '/api/v1/providers')).toBe(true);
    expect(within(screen.getByLabelText('Voice provider')).getByRole('option', { name: 'worker default (local_piper)' })).toBeInTheDocument();
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
