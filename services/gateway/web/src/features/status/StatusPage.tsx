import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, ErrorBox, Spinner, formatClock, formatDuration, formatEpoch, formatTime } from '../../components/ui';
import { clientLabel } from '../history/HistoryPage';
import { adminKeySet } from '../auth/authSlice';
import { fetchLive, fetchServices, resetGlobalStop } from './statusSlice';

const POLL_MS = 3000;

export function useStatusPolling() {
  const dispatch = useAppDispatch();
  const apiKey = useAppSelector((s) => s.auth.apiKey);
  useEffect(() => {
    const tick = () => {
      void dispatch(fetchLive());
      void dispatch(fetchServices());
    };
    tick();
    const timer = window.setInterval(tick, POLL_MS);
    return () => window.clearInterval(timer);
  }, [dispatch, apiKey]);
}

export function GlobalStopBanner() {
  const { t } = useTranslation();
  const dispatch = useAppDispatch();
  const live = useAppSelector((s) => s.status.live);
  const reset = useAppSelector((s) => s.status.reset);
  const adminKey = useAppSelector((s) => s.auth.adminKey);
  const [key, setKey] = useState(adminKey);
  const stop = live?.global_stop;
  if (!stop?.active) return null;
  return (
    <div role="alert" className="rounded-lg border-2 border-red-400 bg-red-50 p-4 text-red-900">
      <p className="text-lg font-semibold">{t('status.stopTitle')}</p>
      <p className="mt-1">
        {t('status.reason')} <b>{stop.reason || t('status.unknownReason')}</b>
        {stop.tripped_at ? t('status.since', { time: formatEpoch(stop.tripped_at * 1000) }) : ''}
      </p>
      {stop.errors.length ? <p className="mt-1 text-sm">{t('status.callsWithErrors', { calls: stop.errors.join(', ') })}</p> : null}
      <form
        className="mt-3 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          dispatch(adminKeySet(key));
          void dispatch(resetGlobalStop('dashboard'));
        }}
      >
        <div>
          <label htmlFor="admin-key" className="label text-red-900">
            {t('status.adminKey')}
          </label>
          <input id="admin-key" type="password" className="input" value={key} onChange={(e) => setKey(e.target.value)} autoComplete="off" />
        </div>
        <button type="submit" className="btn-danger" disabled={reset.status === 'loading'}>
          {reset.status === 'loading' ? t('status.resetting') : t('status.reset')}
        </button>
      </form>
      {reset.status === 'failed' && reset.error ? <p className="mt-2 text-sm">{t('status.resetFailed', { error: reset.error })}</p> : null}
    </div>
  );
}

export function StatusPage() {
  const { t } = useTranslation();
  useStatusPolling();
  const s = useAppSelector((st) => st.status);
  const live = s.live;

  return (
    <div className="space-y-6">
      <GlobalStopBanner />
      {s.reset.status === 'succeeded' && !live?.global_stop.active ? (
        <p role="status" className="rounded-md bg-emerald-50 p-2 text-sm text-emerald-800">
          {t('status.lifted')}
        </p>
      ) : null}
      <Card
        title={t('status.activeCalls')}
        actions={
          live ? (
            <span className="text-sm text-slate-500">
              {live.instance} ·{' '}
              {live.accepting_calls ? (
                <Badge tone="green">{t('status.accepting')}</Badge>
              ) : (
                <Badge tone="red">{t('status.refusing', { refusal: live.refusal })}</Badge>
              )}
            </span>
          ) : undefined
        }
      >
        {s.liveStatus === 'loading' ? <Spinner /> : null}
        {s.liveStatus === 'failed' && s.liveError ? <ErrorBox message={s.liveError} /> : null}
        {live && live.calls.length === 0 ? <Empty>{t('status.noCalls')}</Empty> : null}
        {live && live.calls.length > 0 ? (
          <table className="w-full" aria-label={t('status.activeCallsTable')}>
            <thead>
              <tr>
                {(['call', 'agent', 'client', 'state', 'started', 'duration'] as const).map((c) => (
                  <th key={c} className="th">
                    {t(`status.columns.${c}`)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {live.calls.map((c) => (
                <tr key={c.call_id}>
                  <td className="td font-mono text-xs">{c.call_id}</td>
                  <td className="td">
                    {c.agent_id} <span className="text-xs text-slate-500">{t('agents.version', { version: c.agent_version })}</span>
                  </td>
                  <td className="td">{clientLabel(t, c.client_type)}</td>
                  <td className="td">
                    <Badge tone="sky">{t(`status.callStates.${c.state}`, { defaultValue: c.state })}</Badge>
                  </td>
                  <td className="td">{formatTime(c.started_at)}</td>
                  <td className="td">{formatDuration(c.duration_s)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Card>

      <Card title={t('status.services')}>
        {s.servicesStatus === 'loading' ? <Spinner /> : null}
        {s.servicesStatus === 'failed' && s.servicesError ? <ErrorBox message={s.servicesError} /> : null}
        {s.servicesStatus === 'succeeded' && s.services.length === 0 ? <Empty>{t('status.noServices')}</Empty> : null}
        <div className="grid gap-4 md:grid-cols-2 xl:grid-cols-3">
          {s.services.map((g) => (
            <section key={g.service} className="rounded-md border border-slate-200 p-3" aria-label={t('status.serviceRegion', { service: g.service })}>
              <div className="flex items-center justify-between">
                <h3 className="font-semibold">{g.service}</h3>
                <Badge tone={g.ready_replicas === 0 ? 'red' : g.ready_replicas < g.replicas ? 'amber' : 'green'}>
                  {t('status.ready', { ready: g.ready_replicas, total: g.replicas })}
                </Badge>
              </div>
              <ul className="mt-2 space-y-1 text-xs text-slate-600">
                {g.instances.map((i) => (
                  <li key={i.instance}>
                    <span className="font-mono">{i.instance}</span> ·{' '}
                    {t('status.instance', { version: i.version, uptime: formatDuration(i.uptime_s) })}
                    {i.ready ? '' : t('status.notReady')}
                  </li>
                ))}
              </ul>
            </section>
          ))}
        </div>
      </Card>
      {s.updatedAt ? (
        <p className="text-xs text-slate-400">{t('status.updated', { time: formatClock(s.updatedAt), seconds: POLL_MS / 1000 })}</p>
      ) : null}
    </div>
  );
}
