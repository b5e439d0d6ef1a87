import { useEffect, useState } from 'react';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, ErrorBox, Spinner, formatDuration, formatTime } from '../../components/ui';
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
  const dispatch = useAppDispatch();
  const live = useAppSelector((s) => s.status.live);
  const reset = useAppSelector((s) => s.status.reset);
  const adminKey = useAppSelector((s) => s.auth.adminKey);
  const [key, setKey] = useState(adminKey);
  const stop = live?.global_stop;
  if (!stop?.active) return null;
  return (
    <div role="alert" className="rounded-lg border-2 border-red-400 bg-red-50 p-4 text-red-900">
      <p className="text-lg font-semibold">Global stop: new calls are refused</p>
      <p className="mt-1">
        Reason: <b>{stop.reason || 'unknown'}</b>
        {stop.tripped_at ? ` · since ${new Date(stop.tripped_at * 1000).toLocaleString()}` : ''}
      </p>
      {stop.errors.length ? <p className="mt-1 text-sm">Calls with the errors: {stop.errors.join(', ')}</p> : null}
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
            Admin key (ADMIN_API_KEY)
          </label>
          <input id="admin-key" type="password" className="input" value={key} onChange={(e) => setKey(e.target.value)} autoComplete="off" />
        </div>
        <button type="submit" className="btn-danger" disabled={reset.status === 'loading'}>
          {reset.status === 'loading' ? 'Resetting…' : 'Reset global stop'}
        </button>
      </form>
      {reset.status === 'failed' && reset.error ? <p className="mt-2 text-sm">Reset failed: {reset.error}</p> : null}
    </div>
  );
}

export function StatusPage() {
  useStatusPolling();
  const s = useAppSelector((st) => st.status);
  const live = s.live;

  return (
    <div className="space-y-6">
      <GlobalStopBanner />
      {s.reset.status === 'succeeded' && !live?.global_stop.active ? (
        <p role="status" className="rounded-md bg-emerald-50 p-2 text-sm text-emerald-800">
          Global stop lifted: new calls are accepted again.
        </p>
      ) : null}
      <Card
        title="Active calls on this gateway"
        actions={
          live ? (
            <span className="text-sm text-slate-500">
              {live.instance} ·{' '}
              {live.accepting_calls ? <Badge tone="green">accepting calls</Badge> : <Badge tone="red">refusing: {live.refusal}</Badge>}
            </span>
          ) : undefined
        }
      >
        {s.liveStatus === 'loading' ? <Spinner /> : null}
        {s.liveStatus === 'failed' && s.liveError ? <ErrorBox message={s.liveError} /> : null}
        {live && live.calls.length === 0 ? <Empty>No calls right now.</Empty> : null}
        {live && live.calls.length > 0 ? (
          <table className="w-full" aria-label="Active calls">
            <thead>
              <tr>
                <th className="th">Call</th>
                <th className="th">Agent</th>
                <th className="th">Client</th>
                <th className="th">State</th>
                <th className="th">Started</th>
                <th className="th">Duration</th>
              </tr>
            </thead>
            <tbody>
              {live.calls.map((c) => (
                <tr key={c.call_id}>
                  <td className="td font-mono text-xs">{c.call_id}</td>
                  <td className="td">
                    {c.agent_id} <span className="text-xs text-slate-500">v{c.agent_version}</span>
                  </td>
                  <td className="td">{c.client_type}</td>
                  <td className="td">
                    <Badge tone="sky">{c.state}</Badge>
                  </td>
                  <td className="td">{formatTime(c.started_at)}</td>
                  <td className="td">{formatDuration(c.duration_s)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Card>

      <Card title="Services">
        {s.servicesStatus === 'loading' ? <Spinner /> : null}
        {s.servicesStatus === 'failed' && s.servicesError ? <ErrorBox message={s.servicesError} /> : null}
        {s.servicesStatus === 'succeeded' && s.services.length === 0 ? <Empty>No service answered the ping.</Empty> : null}
        <div className="grid gap-4 md:grid-cols-2 xl:grid-cols-3">
          {s.services.map((g) => (
            <section key={g.service} className="rounded-md border border-slate-200 p-3" aria-label={`Service ${g.service}`}>
              <div className="flex items-center justify-between">
                <h3 className="font-semibold">{g.service}</h3>
                <Badge tone={g.ready_replicas === 0 ? 'red' : g.ready_replicas < g.replicas ? 'amber' : 'green'}>
                  {g.ready_replicas}/{g.replicas} ready
                </Badge>
              </div>
              <ul className="mt-2 space-y-1 text-xs text-slate-600">
                {g.instances.map((i) => (
                  <li key={i.instance}>
                    <span className="font-mono">{i.instance}</span> · v{i.version} · up {formatDuration(i.uptime_s)}
                    {i.ready ? '' : ' · not ready'}
                  </li>
                ))}
              </ul>
            </section>
          ))}
        </div>
      </Card>
      {s.updatedAt ? <p className="text-xs text-slate-400">Updated {new Date(s.updatedAt).toLocaleTimeString()} (every 3 s)</p> : null}
    </div>
  );
}
