import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';
import { MemoryRouter, Route, Routes } from 'react-router-dom';

import { makeStore } from '../../app/store';
import type { CallDetail, WebhookDelivery } from '../../lib/types';
import { CallDetailPage, DELIVERY_POLL_MS, ExtractionView } from './CallDetailPage';
import { prettyJson } from './TranscriptItem';

describe('ExtractionView', () => {
  it('shows each state of the extraction', () => {
    const { rerender } = render(<ExtractionView data={{ status: 'running', claimed_by: 'r1', claimed_at: 1 }} />);
    expect(screen.getByRole('status')).toHaveTextContent('in progress');
    rerender(<ExtractionView data={{ status: 'ok', summary: 'Booked a table.', intent: 'booking', entities: { party: 2 }, custom: {} }} />);
    expect(screen.getByText('Booked a table.')).toBeInTheDocument();
    expect(screen.getByText('booking')).toBeInTheDocument();
    expect(screen.getByText(/"party": 2/)).toBeInTheDocument();
    rerender(<ExtractionView data={{ status: 'failed', attempts: 2, errors: ['timeout'] }} />);
    expect(screen.getByText(/failed after 2 attempt/)).toBeInTheDocument();
    rerender(<ExtractionView data={null} />);
    expect(screen.getByText(/No extraction/)).toBeInTheDocument();
  });
});

const line = (seq: number, role: string, text: string, extra: object = {}) => ({
  seq,
  role,
  text,
  started_at: '2031-01-01T00:00:00Z',
  ended_at: '2031-01-01T00:00:01Z',
  interrupted: false,
  latency_ms: {},
  dtmf: false,
  tool: null,
  ...extra,
});

const delivery = (id: string, extra: Partial<WebhookDelivery> = {}): WebhookDelivery => ({
  id,
  url: 'https://crm.example/hooks/victoria',
  status: 'failed',
  attempts: 8,
  last_status_code: 500,
  last_error: 'HTTP 500',
  created_at: '2031-01-01T00:01:00Z',
  delivered_at: null,
  requested_by: 'extraction',
  ...extra,
});

const call = (deliveries: WebhookDelivery[]): CallDetail => ({
  call_id: 'call-7',
  agent_id: 'shop',
  client_type: 'browser',
  from_number: null,
  to_number: null,
  started_at: '2031-01-01T00:00:00Z',
  ended_at: '2031-01-01T00:00:30Z',
  duration_s: 30,
  end_reason: 'transferred',
  status: 'completed',
  turns: 4,
  latency_summary: {},
  transcript: [
    line(0, 'assistant', 'Hello!'),
    line(1, 'user', 'DTMF: 1234', { dtmf: true }),
    line(2, 'tool', 'order_status({"order_id":"1234"}) → {"state":"shipped"}', {
      tool: {
        call_id: 'call_ab12cd34',
        name: 'order_status',
        kind: 'http',
        arguments: '{"order_id":"1234"}',
        result: '{"state":"shipped","eta":"tomorrow"}',
        status: 'ok',
        duration_ms: 143,
      },
    }),
    line(3, 'assistant', 'It ships tomorrow.', { latency_ms: { stt_done_ms: 10, tools_ms: 150 } }),
  ],
  errors: [],
  extracted_data: null,
  transferred_to: '+34910000001',
  webhook_deliveries: deliveries,
});

function renderPage() {
  render(
    <Provider store={makeStore()}>
      <MemoryRouter initialEntries={['/history/call-7']}>
        <Routes>
          <Route path="/history/:callId" element={<CallDetailPage />} />
        </Routes>
      </MemoryRouter>
    </Provider>,
  );
}

describe('CallDetailPage with agent actions', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('shows a tool turn collapsed, expands it, marks keypad turns and the transfer', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response(JSON.stringify(call([])), { status: 200 })));
    renderPage();
    const transcript = await screen.findByRole('list', { name: 'Transcript' });
    const toolRow = transcript.querySelector('li[data-role="tool"]') as HTMLElement;
    const toggle = within(toolRow).getByRole('button');
    expect(toggle).toHaveAttribute('aria-expanded', 'false');
    expect(toggle).toHaveTextContent('order_status');
    expect(toggle).toHaveTextContent('ok');
    expect(toggle).toHaveTextContent('143 ms');
    expect(within(toolRow).queryByTestId('tool-arguments')).toBeNull();

    await userEvent.click(toggle);
    expect(toggle).toHaveAttribute('aria-expanded', 'true');
    expect(within(toolRow).getByTestId('tool-arguments').textContent).toBe('{\n  "order_id": "1234"\n}');
    expect(within(toolRow).getByTestId('tool-result')).toHaveTextContent('"eta": "tomorrow"');
    await userEvent.click(toggle);
    expect(within(toolRow).queryByTestId('tool-result')).toBeNull();

    const dtmf = transcript.querySelector('li[data-dtmf="true"]') as HTMLElement;
    expect(within(dtmf).getByTestId('dtmf-mark')).toHaveTextContent('Keypad');
    expect(dtmf).toHaveTextContent('DTMF: 1234');
    expect(transcript.querySelectorAll('[data-testid="dtmf-mark"]')).toHaveLength(1);
    expect(screen.getByTestId('transferred-to')).toHaveTextContent('+34910000001');
    expect(screen.getByRole('table', { name: 'Latency per turn' })).toHaveTextContent('In tools');
    expect(screen.getByText('No webhook deliveries for this call.')).toBeInTheDocument();
  });

  it('resends the webhook, shows the queued delivery after a refresh, and the 409 message', async () => {
    const requests: { url: string; method: string }[] = [];
    let deliveries = [delivery('d-1')];
    let refuse = false;
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        const method = init?.method ?? 'GET';
        requests.push({ url, method });
        if (url.endsWith('/webhook/resend')) {
          if (refuse) return new Response(JSON.stringify({ detail: "the call's agent has no webhook url" }), { status: 409 });
          const queued = delivery('d-2', { status: 'pending', attempts: 0, last_status_code: null, last_error: null, requested_by: 'resend' });
          deliveries = [...deliveries, queued];
          return new Response(JSON.stringify(queued), { status: 202 });
        }
        return new Response(JSON.stringify(call(deliveries)), { status: 200 });
      }),
    );
    renderPage();
    const panel = (await screen.findByRole('list', { name: 'Webhook deliveries' })) as HTMLElement;
    const first = panel.querySelector('li[data-delivery-id="d-1"]') as HTMLElement;
    expect(first).toHaveTextContent('failed');
    expect(first).toHaveTextContent('8 attempts');
    expect(within(first).getByTestId('webhook-last')).toHaveTextContent('status 500 · HTTP 500');

    await userEvent.click(screen.getByRole('button', { name: 'Resend' }));
    expect(await screen.findByText('Resend queued (delivery d-2).')).toBeInTheDocument();
    const second = await waitFor(() => {
      const el = screen.getByRole('list', { name: 'Webhook deliveries' }).querySelector('li[data-delivery-id="d-2"]');
      expect(el).not.toBeNull();
      return el as HTMLElement;
    });
    expect(second).toHaveTextContent('pending');
    expect(second).toHaveTextContent('resent');
    expect(requests.filter((r) => r.method === 'POST').map((r) => r.url)).toEqual(['/api/v1/calls/call-7/webhook/resend']);

    refuse = true;
    await userEvent.click(screen.getByRole('button', { name: 'Resend' }));
    expect(await screen.findByRole('alert')).toHaveTextContent("the call's agent has no webhook url");
    expect(screen.queryByText(/Resend queued/)).toBeNull();
  });
});

describe('CallDetailPage polling', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('asks again while a delivery is on its way, and stops once it is delivered', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const retrying = delivery('d-1', { status: 'pending', attempts: 1, next_attempt_at: '2031-01-01T00:02:00Z' });
    const answers = [call([retrying]), call([{ ...retrying, status: 'delivered', attempts: 2, last_status_code: 200, last_error: null }])];
    const fetchMock = vi.fn(async () => new Response(JSON.stringify(answers[Math.min(fetchMock.mock.calls.length - 1, 1)]), { status: 200 }));
    vi.stubGlobal('fetch', fetchMock);
    renderPage();
    const first = await screen.findByText('pending');
    expect(first.closest('li')).toHaveTextContent('Next attempt');
    expect(fetchMock).toHaveBeenCalledTimes(1);
    await act(() => vi.advanceTimersByTimeAsync(DELIVERY_POLL_MS));
    expect(await screen.findByText('delivered')).toBeInTheDocument();
    expect(fetchMock).toHaveBeenCalledTimes(2);
    await act(() => vi.advanceTimersByTimeAsync(3 * DELIVERY_POLL_MS));
    expect(fetchMock).toHaveBeenCalledTimes(2); // nothing on its way: no more requests
  });
});

describe('prettyJson', () => {
  it('indents JSON and leaves other text as it is', () => {
    expect(prettyJson('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(prettyJson('timeout after 5 s')).toBe('timeout after 5 s');
    expect(prettyJson('')).toBe('—');
  });
});
