// Every page in Spanish: rendered with the API mocked, it shows Spanish labels and none of the English ones.
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';
import { MemoryRouter } from 'react-router-dom';

import { App } from '../App';
import { makeStore } from '../app/store';
import type { Agent, CallDetail } from '../lib/types';
import i18n, { LANGUAGE_STORAGE } from './index';
import { defaultTurn } from '../test/agentTurn';

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });

const agent: Agent = {
  agent_id: 'default',
  version: 3,
  created_at: '2031-01-01T00:00:00Z',
  updated_at: '2031-01-01T00:00:00Z',
  spec: {
    name: 'Recepción',
    language: 'es-ES',
    system_prompt: 'Eres la recepcionista.',
    first_message: 'Hola, ¿en qué puedo ayudarte?',
    reprompt_message: '¿Sigues ahí?',
    silence_goodbye_message: 'Hasta luego.',
    apology_message: 'Perdona.',
    max_duration_message: 'Tengo que colgar.',
    shutdown_message: null,
    phone_numbers: [],
    voice: { provider: null, name: null, style: null, rate: 1, pitch: 0 },
    llm: { provider: null, model: null, temperature: 0.3, max_tokens: 80 },
    stt: { provider: null, model: null, language: null },
    turn: defaultTurn,
    extraction_fields: {},
    overlays: {},
  },
} as unknown as Agent;

const call: CallDetail = {
  call_id: 'call-7',
  agent_id: 'default',
  client_type: 'browser',
  from_number: '+34910000000',
  to_number: '+34910000001',
  started_at: '2031-01-01T10:00:00Z',
  ended_at: '2031-01-01T10:01:05Z',
  duration_s: 65,
  end_reason: 'caller_hangup',
  status: 'completed',
  turns: 2,
  latency_summary: {},
  transcript: [
    { seq: 0, role: 'assistant', text: 'Hola.', started_at: '', ended_at: '', interrupted: true, latency_ms: { first_audio_sent_ms: 1234 } },
    { seq: 1, role: 'user', text: 'Una mesa para dos.', started_at: '', ended_at: '', interrupted: false, latency_ms: {} },
  ],
  errors: [{ code: 'llm_timeout', stage: 'llm', message: 'timeout', at: '2031-01-01T10:00:30Z' }],
  extracted_data: { status: 'ok', summary: 'Reserva para dos.', intent: 'reserva' },
};

const live = {
  instance: 'gw-1',
  accepting_calls: false,
  refusal: 'global_stop',
  global_stop: { active: true, reason: '3 errores críticos', tripped_at: 1_900_000_000, errors: ['c1'], reset_at: null, reset_by: null },
  calls: [{ call_id: 'call-9', agent_id: 'default', agent_version: 2, client_type: 'twilio', state: 'listening', started_at: '2031-01-01T00:00:00Z', duration_s: 12 }],
};
const services = {
  services: [{ service: 'stt', replicas: 2, ready_replicas: 1, instances: [{ instance: 'a', version: '0.1.0', uptime_s: 75, ready: false }] }],
};

function mockApi() {
  vi.stubGlobal(
    'fetch',
    vi.fn(async (url: string) => {
      if (url === '/api/v1/agents') return json([agent]);
      if (url === '/api/v1/providers') return json({ stt: [], llm: [], tts: [] });
      if (url.startsWith('/api/v1/calls/')) return json(call);
      if (url.startsWith('/api/v1/calls')) return json({ items: [call], next_cursor: null });
      if (url === '/api/v1/live/calls') return json(live);
      if (url === '/api/v1/services') return json(services);
      return json({ detail: 'not found' }, 404);
    }),
  );
}

function renderAt(path: string) {
  return render(
    <Provider store={makeStore()}>
      <MemoryRouter initialEntries={[path]}>
        <App />
      </MemoryRouter>
    </Provider>,
  );
}

/** English a page showed before it was localised (and would show again if a label escaped t()). */
const ENGLISH: Record<string, string[]> = {
  header: ['Simulator', 'History', 'Skip to content', 'API key', 'Show', 'Save', 'Global stop: new calls are refused', 'Details and reset'],
  '/': ['Call simulator', 'Press', 'allow the microphone', 'Mute mic', 'Ready', 'Transcript', 'The conversation shows here.', 'Latency per turn', 'From the end of your turn', 'No reply measured yet.', 'Barge-ins this call'],
  '/agents': ['Pick an agent', 'New agent id', 'Create with defaults', 'Version 3', 'Changes apply to new calls', 'Conversation', 'System prompt', 'First message', 'Voice provider', 'worker default', 'Telephony', 'Phone numbers', 'Turn taking', 'Silence to end a turn', "End of the caller's turn", 'fixed silence', 'at each pause the model', 'Speech that interrupts', 'Resume after a false interruption', 'Advanced', 'Extraction fields', 'Save agent', 'Discard changes'],
  '/history': ['Call history', 'Text in transcript', 'Apply filters', 'Clear', 'Refresh', 'Export:', 'Started', 'Duration', 'Turns', 'End reason', 'completed', 'Newer', 'Page 1', 'Older'],
  '/history/call-7': ['Back to the history', 'Call id', 'Started', 'Ended', 'Duration', 'End reason', 'From', 'Transcript', 'Caller:', '(interrupted)', 'Latency per turn', 'Reply', 'First audio sent', 'Extraction', 'Summary', 'Intent', 'Errors', ') at '],
  '/status': ['Reason:', 'since', 'Calls with the errors', 'Admin key', 'Reset global stop', 'Active calls on this gateway', 'refusing:', 'Services', 'ready', ' up ', 'not ready', 'Updated', 'every 3 s'],
};

/** What each page says in Spanish once it has loaded. */
const SPANISH: Record<string, string[]> = {
  '/': ['Simulador de llamadas', 'Pulsa', 'Silenciar micro', 'Preparado', 'Aquí aparecerá la conversación.', 'Interrupciones en esta llamada: 0'],
  '/agents': ['Agente «default»', 'Versión 3', 'Conversación', 'Primer mensaje', 'Fin del turno de quien llama', 'silencio fijo', 'en cada pausa el modelo juzga', 'Voz que interrumpe al agente (ms)', 'Reanudar tras una falsa interrupción', 'Guardar agente', 'Descartar cambios', 'Crear con valores por defecto'],
  '/history': ['Historial de llamadas', 'Aplicar filtros', 'Inicio', 'Duración', '1 min 05 s', 'completada', 'navegador', 'Página 1'],
  '/history/call-7': ['← Volver al historial', 'Id de la llamada', 'Llamante:', '(interrumpido)', '1234 ms', 'Primer audio enviado', 'Resumen', 'Intención', '(llm) el'],
  '/status': ['Parada global: se rechazan las llamadas nuevas', 'Motivo:', 'Restablecer la parada global', 'rechaza llamadas: global_stop', 'Servicios', '1/2 listas', 'escuchando', 'no está lista', 'Actualizado a las'],
};

describe('the dashboard in Spanish', () => {
  beforeEach(async () => {
    mockApi();
    await i18n.changeLanguage('es');
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it.each(Object.keys(SPANISH))('%s shows Spanish labels and no English ones', async (path) => {
    renderAt(path);
    await screen.findByText(SPANISH[path][0], { exact: false });
    // the global stop's line (other pages) or banner (Status), the data and the page's own labels have loaded
    await waitFor(() => expect(document.body).toHaveTextContent('Parada global'));
    for (const text of SPANISH[path]) await waitFor(() => expect(document.body).toHaveTextContent(text));
    const shown = document.body.textContent ?? '';
    for (const english of [...ENGLISH.header, ...ENGLISH[path]]) expect(shown, `"${english}" on ${path}`).not.toContain(english);
    expect(screen.getByRole('navigation', { name: 'Principal' })).toHaveTextContent(/Simulador.*Agentes.*Historial.*Estado/);
  });

  it('keeps the server’s validation messages as they came, inside Spanish text', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        if (init?.method === 'PUT')
          return json({ detail: [{ loc: ['body', 'language'], msg: "String should match pattern '^[a-z]{2,3}(-[A-Z]{2})?$'" }] }, 422);
        if (url === '/api/v1/agents') return json([agent]);
        if (url === '/api/v1/live/calls') return json({ ...live, global_stop: { ...live.global_stop, active: false } });
        return json({ stt: [], llm: [], tts: [] });
      }),
    );
    renderAt('/agents');
    await userEvent.click(await screen.findByRole('button', { name: 'Guardar agente' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('No se ha guardado el agente: corrige estos campos.');
    expect(alert).toHaveTextContent("language: String should match pattern '^[a-z]{2,3}(-[A-Z]{2})?$'");
    expect(screen.getByLabelText('Idioma')).toHaveAttribute('aria-invalid', 'true');
  });
});

describe('the language switch', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it('is in the header: ES turns the dashboard Spanish and is remembered, EN back to English', async () => {
    mockApi();
    renderAt('/');
    expect(await screen.findByRole('heading', { name: 'Call simulator' })).toBeInTheDocument();
    const group = screen.getByRole('group', { name: 'Interface language' });
    expect(within(group).getByRole('button', { name: 'EN' })).toHaveAttribute('aria-pressed', 'true');

    await userEvent.click(within(group).getByRole('button', { name: 'ES' }));
    expect(await screen.findByRole('heading', { name: 'Simulador de llamadas' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Llamar' })).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Historial' })).toBeInTheDocument();
    expect(screen.getByRole('group', { name: 'Idioma de la interfaz' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'ES' })).toHaveAttribute('aria-pressed', 'true');
    expect(localStorage.getItem(LANGUAGE_STORAGE)).toBe('es');
    expect(document.documentElement.lang).toBe('es');
    expect(document.title).toBe('Panel de Victoria');

    await userEvent.click(screen.getByRole('button', { name: 'EN' }));
    expect(await screen.findByRole('heading', { name: 'Call simulator' })).toBeInTheDocument();
    expect(localStorage.getItem(LANGUAGE_STORAGE)).toBe('en');
  });

  it("follows the browser's language until one is chosen", () => {
    const detector = i18n.services.languageDetector as { detect(): string | string[] | undefined };
    const first = () => [detector.detect()].flat()[0];
    const languages = vi.spyOn(window.navigator, 'languages', 'get');
    languages.mockReturnValue(['es-MX', 'en']);
    expect(first()).toBe('es');
    languages.mockReturnValue(['fr-FR', 'es-ES']);
    expect(first()).toBe('en');
    languages.mockReturnValue(['es-ES']);
    localStorage.setItem(LANGUAGE_STORAGE, 'en'); // the switch's choice wins
    expect(first()).toBe('en');
    languages.mockRestore();
  });
});
