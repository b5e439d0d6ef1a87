import { useEffect, useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, ErrorBox, Spinner, formatDuration, formatTime } from '../../components/ui';
import { ApiError, storedKey, API_KEY_STORAGE } from '../../lib/api';
import { callsQuery, fetchCalls, filtersApplied, filtersCleared, type HistoryFilters } from './historySlice';

export const statusTone = (s: string) => (s === 'completed' ? 'green' : s === 'failed' ? 'red' : 'amber');

export function HistoryPage() {
  const dispatch = useAppDispatch();
  const { filters, items, status, error, page, nextCursor, limit } = useAppSelector((s) => s.history);
  const apiKey = useAppSelector((s) => s.auth.apiKey);
  const [draft, setDraft] = useState<HistoryFilters>(filters);
  const [exportError, setExportError] = useState<string | null>(null);

  useEffect(() => {
    void dispatch(fetchCalls({ page: 0 }));
  }, [dispatch, filters, apiKey]);

  function apply(e: FormEvent) {
    e.preventDefault();
    dispatch(filtersApplied(draft));
  }

  async function exportAs(format: 'csv' | 'json') {
    setExportError(null);
    try {
      const q = callsQuery(filters, limit, null).replace(/(^|&)limit=\d+/, '');
      const resp = await fetch(`/api/v1/calls/export?${q}&format=${format}`, {
        headers: storedKey(API_KEY_STORAGE) ? { 'X-API-Key': storedKey(API_KEY_STORAGE) } : {},
      });
      if (!resp.ok) throw new ApiError(resp.status, `export failed: HTTP ${resp.status}`);
      const url = URL.createObjectURL(await resp.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `calls.${format}`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      setExportError((err as Error).message);
    }
  }

  const field = (name: keyof HistoryFilters, label: string, input: JSX.Element) => (
    <div>
      <label htmlFor={`f-${name}`} className="label">
        {label}
      </label>
      {input}
    </div>
  );
  const bind = (name: keyof HistoryFilters) => ({
    id: `f-${name}`,
    className: 'input',
    value: draft[name],
    onChange: (e: { target: { value: string } }) => setDraft((d) => ({ ...d, [name]: e.target.value })),
  });

  return (
    <div className="space-y-6">
      <Card title="Call history">
        <form onSubmit={apply} aria-label="Filters" className="grid gap-3 md:grid-cols-3 lg:grid-cols-6">
          {field('q', 'Text in transcript', <input {...bind('q')} type="search" placeholder="e.g. refund" />)}
          {field('agent_id', 'Agent', <input {...bind('agent_id')} placeholder="any" />)}
          {field(
            'client_type',
            'Client',
            <select {...bind('client_type')}>
              <option value="">any</option>
              <option value="browser">browser</option>
              <option value="twilio">twilio</option>
              <option value="telnyx">telnyx</option>
            </select>,
          )}
          {field(
            'status',
            'Status',
            <select {...bind('status')}>
              <option value="">any</option>
              <option value="in_progress">in progress</option>
              <option value="completed">completed</option>
              <option value="failed">failed</option>
            </select>,
          )}
          {field('since', 'Since', <input {...bind('since')} type="datetime-local" />)}
          {field('until', 'Until', <input {...bind('until')} type="datetime-local" />)}
          <div className="flex flex-wrap items-end gap-2 md:col-span-3 lg:col-span-6">
            <button type="submit" className="btn-primary">
              Apply filters
            </button>
            <button
              type="button"
              className="btn-secondary"
              onClick={() => {
                setDraft({ agent_id: '', client_type: '', status: '', q: '', since: '', until: '' });
                dispatch(filtersCleared());
              }}
            >
              Clear
            </button>
            <button type="button" className="btn-secondary" onClick={() => void dispatch(fetchCalls({ page }))}>
              Refresh
            </button>
            <span className="ml-auto text-sm text-slate-500">Export:</span>
            <button type="button" className="btn-secondary" onClick={() => void exportAs('csv')}>
              CSV
            </button>
            <button type="button" className="btn-secondary" onClick={() => void exportAs('json')}>
              JSON
            </button>
          </div>
        </form>
        {exportError ? <ErrorBox title="Export failed" message={exportError} /> : null}
      </Card>

      <Card>
        {status === 'loading' ? <Spinner label="Loading calls…" /> : null}
        {status === 'failed' && error ? <ErrorBox message={error} onRetry={() => void dispatch(fetchCalls({ page }))} /> : null}
        {status === 'succeeded' && items.length === 0 ? <Empty>No calls match these filters.</Empty> : null}
        {items.length > 0 && status !== 'failed' ? (
          <div className="overflow-x-auto">
            <table className="w-full" aria-label="Calls">
              <thead>
                <tr>
                  <th className="th">Started</th>
                  <th className="th">Call</th>
                  <th className="th">Agent</th>
                  <th className="th">Client</th>
                  <th className="th">Duration</th>
                  <th className="th">Turns</th>
                  <th className="th">Status</th>
                  <th className="th">End reason</th>
                </tr>
              </thead>
              <tbody>
                {items.map((c) => (
                  <tr key={c.call_id} className="hover:bg-slate-50" data-call-id={c.call_id}>
                    <td className="td whitespace-nowrap">{formatTime(c.started_at)}</td>
                    <td className="td font-mono text-xs">
                      <Link to={`/history/${encodeURIComponent(c.call_id)}`} className="text-sky-700 underline hover:text-sky-900">
                        {c.call_id}
                      </Link>
                    </td>
                    <td className="td">{c.agent_id ?? '—'}</td>
                    <td className="td">{c.client_type}</td>
                    <td className="td">{formatDuration(c.duration_s)}</td>
                    <td className="td">{c.turns}</td>
                    <td className="td">
                      <Badge tone={statusTone(c.status)}>{c.status}</Badge>
                    </td>
                    <td className="td">{c.end_reason ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        <nav className="mt-4 flex items-center gap-3" aria-label="Pages">
          <button
            type="button"
            className="btn-secondary"
            disabled={page === 0 || status === 'loading'}
            onClick={() => void dispatch(fetchCalls({ page: page - 1 }))}
          >
            ← Newer
          </button>
          <span className="text-sm text-slate-600">Page {page + 1}</span>
          <button
            type="button"
            className="btn-secondary"
            disabled={!nextCursor || status === 'loading'}
            onClick={() => void dispatch(fetchCalls({ page: page + 1 }))}
          >
            Older →
          </button>
        </nav>
      </Card>
    </div>
  );
}
