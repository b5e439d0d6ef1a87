import { useEffect, useState, type FormEvent } from 'react';
import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, ErrorBox, Spinner, formatDuration, formatNumber, formatTime } from '../../components/ui';
import { ApiError, storedKey, API_KEY_STORAGE } from '../../lib/api';
import { callsQuery, fetchCalls, filtersApplied, filtersCleared, type HistoryFilters } from './historySlice';

export const statusTone = (s: string) => (s === 'completed' ? 'green' : s === 'failed' ? 'red' : 'amber');

const CLIENT_TYPES = ['browser', 'twilio', 'telnyx'] as const;
const CALL_STATUSES = ['in_progress', 'completed', 'failed'] as const;
const COLUMNS = ['started', 'call', 'agent', 'client', 'duration', 'turns', 'status', 'endReason'] as const;

/** A call's status / client type in the chosen language; a value this dashboard does not know shows as it came. */
export const statusLabel = (t: TFunction, s: string): string => t(`history.statuses.${s}`, { defaultValue: s });
export const clientLabel = (t: TFunction, c: string): string => t(`history.clients.${c}`, { defaultValue: c });

export function HistoryPage() {
  const { t } = useTranslation();
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
      if (!resp.ok) throw new ApiError(resp.status, t('history.exportHttp', { status: resp.status }));
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
      <Card title={t('history.title')}>
        <form onSubmit={apply} aria-label={t('history.filters')} className="grid gap-3 md:grid-cols-3 lg:grid-cols-6">
          {field('q', t('history.q'), <input {...bind('q')} type="search" placeholder={t('history.qPlaceholder')} />)}
          {field('agent_id', t('history.agent'), <input {...bind('agent_id')} placeholder={t('history.any')} />)}
          {field(
            'client_type',
            t('history.client'),
            <select {...bind('client_type')}>
              <option value="">{t('history.any')}</option>
              {CLIENT_TYPES.map((c) => (
                <option key={c} value={c}>
                  {t(`history.clients.${c}`)}
                </option>
              ))}
            </select>,
          )}
          {field(
            'status',
            t('history.status'),
            <select {...bind('status')}>
              <option value="">{t('history.any')}</option>
              {CALL_STATUSES.map((st) => (
                <option key={st} value={st}>
                  {t(`history.statuses.${st}`)}
                </option>
              ))}
            </select>,
          )}
          {field('since', t('history.since'), <input {...bind('since')} type="datetime-local" />)}
          {field('until', t('history.until'), <input {...bind('until')} type="datetime-local" />)}
          <div className="flex flex-wrap items-end gap-2 md:col-span-3 lg:col-span-6">
            <button type="submit" className="btn-primary">
              {t('history.apply')}
            </button>
            <button
              type="button"
              className="btn-secondary"
              onClick={() => {
                setDraft({ agent_id: '', client_type: '', status: '', q: '', since: '', until: '' });
                dispatch(filtersCleared());
              }}
            >
              {t('history.clear')}
            </button>
            <button type="button" className="btn-secondary" onClick={() => void dispatch(fetchCalls({ page }))}>
              {t('history.refresh')}
            </button>
            <span className="ml-auto text-sm text-slate-500">{t('history.export')}</span>
            <button type="button" className="btn-secondary" onClick={() => void exportAs('csv')}>
              CSV
            </button>
            <button type="button" className="btn-secondary" onClick={() => void exportAs('json')}>
              JSON
            </button>
          </div>
        </form>
        {exportError ? <ErrorBox title={t('history.exportFailed')} message={exportError} /> : null}
      </Card>

      <Card>
        {status === 'loading' ? <Spinner label={t('history.loading')} /> : null}
        {status === 'failed' && error ? <ErrorBox message={error} onRetry={() => void dispatch(fetchCalls({ page }))} /> : null}
        {status === 'succeeded' && items.length === 0 ? <Empty>{t('history.empty')}</Empty> : null}
        {items.length > 0 && status !== 'failed' ? (
          <div className="overflow-x-auto">
            <table className="w-full" aria-label={t('history.tableLabel')}>
              <thead>
                <tr>
                  {COLUMNS.map((c) => (
                    <th key={c} className="th">
                      {t(`history.columns.${c}`)}
                    </th>
                  ))}
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
                    <td className="td">{clientLabel(t, c.client_type)}</td>
                    <td className="td">{formatDuration(c.duration_s)}</td>
                    <td className="td">{formatNumber(c.turns)}</td>
                    <td className="td">
                      <Badge tone={statusTone(c.status)}>{statusLabel(t, c.status)}</Badge>
                    </td>
                    <td className="td">{c.end_reason ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        <nav className="mt-4 flex items-center gap-3" aria-label={t('history.pages')}>
          <button
            type="button"
            className="btn-secondary"
            disabled={page === 0 || status === 'loading'}
            onClick={() => void dispatch(fetchCalls({ page: page - 1 }))}
          >
            {t('history.newer')}
          </button>
          <span className="text-sm text-slate-600">{t('history.page', { page: page + 1 })}</span>
          <button
            type="button"
            className="btn-secondary"
            disabled={!nextCursor || status === 'loading'}
            onClick={() => void dispatch(fetchCalls({ page: page + 1 }))}
          >
            {t('history.older')}
          </button>
        </nav>
      </Card>
    </div>
  );
}
