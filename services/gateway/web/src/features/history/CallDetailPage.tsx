import { useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, ErrorBox, Spinner, formatDuration, formatMs, formatTime } from '../../components/ui';
import { fetchCallDetail, refreshCallDetail } from './historySlice';
import { clientLabel, statusLabel, statusTone } from './HistoryPage';
import { TranscriptItem } from './TranscriptItem';
import { WebhookDeliveries, inFlight } from './WebhookDeliveries';

const LATENCY_KEYS = ['stt_done_ms', 'llm_first_token_ms', 'tts_first_audio_ms', 'first_audio_sent_ms'] as const;
/** how often the page asks again while a webhook delivery is on its way */
export const DELIVERY_POLL_MS = 2000;

export function CallDetailPage() {
  const { t } = useTranslation();
  const { callId = '' } = useParams();
  const dispatch = useAppDispatch();
  const detail = useAppSelector((s) => s.history.detail);
  const apiKey = useAppSelector((s) => s.auth.apiKey);

  useEffect(() => {
    if (callId) void dispatch(fetchCallDetail(callId));
  }, [dispatch, callId, apiKey]);

  const call = detail.callId === callId ? detail.data : null;
  const withLatency = call?.transcript.filter((l) => l.role === 'assistant' && Object.keys(l.latency_ms ?? {}).length) ?? [];
  // time spent in tool rounds: a column only when some reply used a tool
  const latencyKeys: readonly string[] = withLatency.some((l) => typeof l.latency_ms.tools_ms === 'number') ? [...LATENCY_KEYS, 'tools_ms'] : LATENCY_KEYS;
  const polling = inFlight(call?.webhook_deliveries);

  useEffect(() => {
    if (!polling) return undefined;
    const timer = window.setTimeout(() => void dispatch(refreshCallDetail(callId)), DELIVERY_POLL_MS);
    return () => window.clearTimeout(timer);
  }, [dispatch, callId, polling, call]);

  return (
    <div className="space-y-6">
      <Link to="/history" className="text-sm text-sky-700 underline hover:text-sky-900">
        {t('callDetail.back')}
      </Link>
      {detail.status === 'loading' ? <Spinner label={t('callDetail.loading')} /> : null}
      {detail.status === 'failed' && detail.error ? (
        <ErrorBox message={detail.error} onRetry={() => void dispatch(fetchCallDetail(callId))} />
      ) : null}
      {call ? (
        <>
          <Card title={t('callDetail.call')}>
            <dl className="grid gap-x-6 gap-y-2 text-sm sm:grid-cols-2 lg:grid-cols-4">
              <Item label={t('callDetail.callId')} value={<span className="font-mono text-xs">{call.call_id}</span>} />
              <Item label={t('callDetail.agent')} value={call.agent_id ?? '—'} />
              <Item label={t('callDetail.client')} value={clientLabel(t, call.client_type)} />
              <Item label={t('callDetail.status')} value={<Badge tone={statusTone(call.status)}>{statusLabel(t, call.status)}</Badge>} />
              <Item label={t('callDetail.started')} value={formatTime(call.started_at)} />
              <Item label={t('callDetail.ended')} value={formatTime(call.ended_at)} />
              <Item label={t('callDetail.duration')} value={formatDuration(call.duration_s)} />
              <Item label={t('callDetail.endReason')} value={<span data-testid="end-reason">{call.end_reason ?? '—'}</span>} />
              {call.from_number ? <Item label={t('callDetail.from')} value={call.from_number} /> : null}
              {call.to_number ? <Item label={t('callDetail.to')} value={call.to_number} /> : null}
              {call.transferred_to ? (
                <Item label={t('callDetail.transferredTo')} value={<span data-testid="transferred-to">{call.transferred_to}</span>} />
              ) : null}
            </dl>
          </Card>

          <div className="grid gap-6 lg:grid-cols-[2fr_1fr]">
            <Card title={t('callDetail.transcript')}>
              {call.transcript.length === 0 ? <Empty>{t('callDetail.nothingSaid')}</Empty> : null}
              <ol className="space-y-3" aria-label={t('callDetail.transcript')}>
                {call.transcript.map((line) => (
                  <TranscriptItem key={line.seq} line={line} />
                ))}
              </ol>
            </Card>
            <div className="space-y-6">
              <Card title={t('callDetail.latency')}>
                {withLatency.length === 0 ? (
                  <Empty>{t('callDetail.noLatency')}</Empty>
                ) : (
                  <table className="w-full" aria-label={t('callDetail.latency')}>
                    <thead>
                      <tr>
                        <th className="th">{t('callDetail.reply')}</th>
                        {latencyKeys.map((k) => (
                          <th key={k} className="th">
                            {t(`callDetail.latencyKeys.${k}`)}
                          </th>
                        ))}
                      </tr>
                    </thead>
                    <tbody>
                      {withLatency.map((l) => (
                        <tr key={l.seq}>
                          <td className="td">#{l.seq}</td>
                          {latencyKeys.map((k) => (
                            <td key={k} className="td whitespace-nowrap">
                              {formatMs(l.latency_ms[k])}
                            </td>
                          ))}
                        </tr>
                      ))}
                    </tbody>
                  </table>
                )}
              </Card>
              <Card title={t('callDetail.extraction')}>
                <ExtractionView data={call.extracted_data} />
              </Card>
              <WebhookDeliveries callId={call.call_id} deliveries={call.webhook_deliveries ?? []} />
              {call.errors.length ? (
                <Card title={t('callDetail.errors')}>
                  <ul className="space-y-2 text-sm">
                    {call.errors.map((e, i) => (
                      <li key={i} className="rounded border border-red-200 bg-red-50 p-2">
                        <b>{e.code}</b> {t('callDetail.errorAt', { stage: e.stage, at: formatTime(e.at), message: e.message })}
                      </li>
                    ))}
                  </ul>
                </Card>
              ) : null}
            </div>
          </div>
        </>
      ) : null}
    </div>
  );
}

type Extraction = { status?: string; [key: string]: unknown };

/** The recorder's ``extracted_data``: pending/running while it works, then ok (fields), skipped or failed. */
export function ExtractionView({ data }: { data: unknown }) {
  const { t } = useTranslation();
  if (data == null) return <Empty>{t('callDetail.noExtraction')}</Empty>;
  const x = data as Extraction;
  if (x.status === 'pending' || x.status === 'running')
    return (
      <p role="status" className="text-sm text-slate-600">
        {t('callDetail.extractionRunning')}
      </p>
    );
  if (x.status === 'skipped') return <p className="text-sm text-slate-600">{t('callDetail.extractionSkipped', { reason: String(x.reason ?? '') })}</p>;
  if (x.status === 'failed')
    return (
      <div className="text-sm text-red-800">
        <p className="font-semibold">
          {typeof x.attempts === 'number'
            ? t('callDetail.extractionFailed', { count: x.attempts })
            : t('callDetail.extractionFailedUnknown')}
        </p>
        <pre className="mt-1 whitespace-pre-wrap text-xs">{JSON.stringify(x.errors ?? [], null, 2)}</pre>
      </div>
    );
  const { status: _status, attempts: _attempts, summary, intent, sentiment, next_action, ...rest } = x;
  void _status;
  void _attempts;
  const fields: [string, unknown][] = [
    [t('callDetail.extractionFields.summary'), summary],
    [t('callDetail.extractionFields.intent'), intent],
    [t('callDetail.extractionFields.sentiment'), sentiment],
    [t('callDetail.extractionFields.next_action'), next_action],
  ];
  const hasRest = Object.values(rest).some((v) => v != null && !(typeof v === 'object' && Object.keys(v as object).length === 0));
  return (
    <div className="space-y-2 text-sm">
      <dl className="space-y-1">
        {fields
          .filter(([, v]) => v != null && v !== '')
          .map(([label, v]) => (
            <div key={label}>
              <dt className="text-xs uppercase tracking-wide text-slate-500">{label}</dt>
              <dd>{typeof v === 'string' ? v : JSON.stringify(v)}</dd>
            </div>
          ))}
      </dl>
      {hasRest ? (
        <pre className="overflow-x-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{JSON.stringify(rest, null, 2)}</pre>
      ) : null}
    </div>
  );
}

function Item({ label, value }: { label: string; value: React.ReactNode }) {
  return (
    <div>
      <dt className="text-xs uppercase tracking-wide text-slate-500">{label}</dt>
      <dd className="mt-0.5">{value}</dd>
    </div>
  );
}
