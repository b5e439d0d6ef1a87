import { makeStore } from '../../app/store';
import { callsQuery, emptyFilters, fetchCalls, filtersApplied } from './historySlice';

const page = (ids: string[], next: string | null) => ({
  items: ids.map((call_id) => ({ call_id, agent_id: 'a', client_type: 'browser', status: 'completed', turns: 1 })),
  next_cursor: next,
});

describe('historySlice', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('builds the query string from non-empty filters', () => {
    const q = new URLSearchParams(callsQuery({ ...emptyFilters, agent_id: 'sales', q: ' refund ' }, 20, 'CUR'));
    expect(Object.fromEntries(q)).toEqual({ agent_id: 'sales', q: 'refund', limit: '20', cursor: 'CUR' });
    const since = new URLSearchParams(callsQuery({ ...emptyFilters, since: '2031-03-01T12:00' }, 5, null)).get('since');
    expect(since).toBe(new Date('2031-03-01T12:00').toISOString());
  });

  it('pages forward and back with the cursors it was given', async () => {
    const urls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        urls.push(url);
        const cursor = new URL(url, 'http://x').searchParams.get('cursor');
        const body = cursor === null ? page(['c3', 'c2'], 'P2') : page(['c1'], null);
        return new Response(JSON.stringify(body), { status: 200 });
      }),
    );
    const store = makeStore();
    await store.dispatch(fetchCalls({ page: 0 }));
    expect(store.getState().history.items.map((c) => c.call_id)).toEqual(['c3', 'c2']);
    expect(store.getState().history.nextCursor).toBe('P2');
    await store.dispatch(fetchCalls({ page: 1 }));
    expect(store.getState().history).toMatchObject({ page: 1, nextCursor: null });
    expect(urls[1]).toContain('cursor=P2');
    await store.dispatch(fetchCalls({ page: 0 }));
    expect(store.getState().history.items.map((c) => c.call_id)).toEqual(['c3', 'c2']);

    store.dispatch(filtersApplied({ ...emptyFilters, status: 'failed' }));
    expect(store.getState().history).toMatchObject({ page: 0, cursors: [null] });
  });

  it('keeps the error of a failed load', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{"detail":"invalid API key"}', { status: 401 })));
    const store = makeStore();
    await store.dispatch(fetchCalls({ page: 0 }));
    expect(store.getState().history).toMatchObject({ status: 'failed', error: 'invalid API key' });
  });
});
