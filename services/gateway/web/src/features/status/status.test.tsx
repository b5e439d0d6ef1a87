import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Provider } from 'react-redux';
import { MemoryRouter } from 'react-router-dom';

import { App } from '../../App';

import { makeStore } from '../../app/store';
import { ADMIN_KEY_STORAGE } from '../../lib/api';
import { StatusPage } from './StatusPage';

const live = (active: boolean) => ({
  instance: 'gw-1',
  accepting_calls: !active,
  refusal: active ? 'global_stop' : null,
  global_stop: { active, reason: active ? '3 critical errors in 60s' : '', tripped_at: 1_900_000_000, errors: active ? ['c1'] : [], reset_at: null, reset_by: null },
  calls: [{ call_id: 'call-9', agent_id: 'default', agent_version: 2, client_type: 'browser', state: 'listening', started_at: '2031-01-01T00:00:00Z', duration_s: 12 }],
});
const services = {
  services: [{ service: 'stt', replicas: 2, ready_replicas: 1, instances: [{ instance: 'a', version: '0.1.0', uptime_s: 5, ready: true }, { instance: 'b', version: '0.1.0', uptime_s: 5, ready: false }] }],
};

describe('StatusPage', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it('shows live calls, replicas and the global stop, and resets it with the admin key', async () => {
    let stopped = true;
    const requests: { url: string; init?: RequestInit }[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init?: RequestInit) => {
        requests.push({ url, init });
        if (url === '/admin/global-stop/reset') {
          stopped = false;
          return new Response(JSON.stringify(live(false).global_stop), { status: 200 });
        }
        return new Response(JSON.stringify(url.includes('services') ? services : live(stopped)), { status: 200 });
      }),
    );
    render(
      <Provider store={makeStore()}>
        <StatusPage />
      </Provider>,
    );
    expect(await screen.findByText('call-9')).toBeInTheDocument();
    expect(screen.getByRole('region', { name: 'Service stt' })).toHaveTextContent('1/2 ready');
    const banner = screen.getByRole('alert');
    expect(banner).toHaveTextContent('3 critical errors in 60s');
    await userEvent.type(screen.getByLabelText('Admin key (ADMIN_API_KEY)'), 'adm1n');
    await userEvent.click(screen.getByRole('button', { name: 'Reset global stop' }));
    expect(await screen.findByText(/Global stop lifted/)).toBeInTheDocument();
    const reset = requests.find((r) => r.url === '/admin/global-stop/reset')!;
    expect(reset.init?.method).toBe('POST');
    expect((reset.init?.headers as Record<string, string>)['X-API-Key']).toBe('adm1n');
    expect(localStorage.getItem(ADMIN_KEY_STORAGE)).toBe('adm1n');
    expect(screen.queryByText('Reset global stop')).not.toBeInTheDocument();
  });
});

describe('App', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('shows the global stop on other pages, with a link to the Status page', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        const body = url.includes('live') ? live(true) : url.includes('services') ? { services: [] } : [];
        return new Response(JSON.stringify(body), { status: 200 });
      }),
    );
    render(
      <Provider store={makeStore()}>
        <MemoryRouter initialEntries={['/agents']}>
          <App />
        </MemoryRouter>
      </Provider>,
    );
    const notice = await screen.findByText(/Global stop: new calls are refused/);
    expect(notice).toHaveTextContent('3 critical errors in 60s');
    await userEvent.click(screen.getByRole('link', { name: 'Details and reset' }));
    expect(await screen.findByRole('button', { name: 'Reset global stop' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'Details and reset' })).not.toBeInTheDocument(); // the full banner instead
  });
});
