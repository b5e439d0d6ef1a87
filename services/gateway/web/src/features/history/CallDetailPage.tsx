import { useEffect } from 'react';
import { Link, useParams } from 'react-router-dom';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, ErrorBox, Spinner, formatDuration, formatMs, formatTime } from '../../components/ui';
import { fetchCallDetail } from './historySlice';
import { statusTone } from './HistoryPage';

const LATENCY_KEYS: [string, string][] = [
  ['stt_done_ms', 'STT done'],
  ['llm_first_token_ms', 'LLM first token'],
  ['tts_first_audio_ms', 'TTS first audio'],
  ['first_audio_sent_ms', 'First audio sent'],
];

export function CallDetailPage() {
  const { callId = '' } = useParams();
  const dispatch = useAppDispatch();
  const detail = useAppSelector((s) => s.history.detail);
  const apiKey = useAppSelector((s) => s.auth.apiKey);

  useEffect(() => {
    if (callId) void dispatch(fetchCallDetail(callId));
  }, [dispatch, callId, apiKey]);

  const call = detail.callId === callId ? detail.data : null;
  const withLatency = call?.transcript.filter((l) => l.role === 'assistant' && Object.keys(l.latency_ms ?? {}).length) ?? [];

  return (
    <div className="space-y-6">
      <Link to="/history" className="text-sm text-sky-700 underline hover:text-sky-900">
        ← Back to the history
      </Link>
      {detail.status === 'loading' ? <Spinner label="Loading the call…" /> : null}
      {detail.status === 'failed' && detail.error ? (
        <ErrorBox message={detail.error} onRetry={() => void dispatch(fetchCallDetail(callId))} />
      ) : null}
      {call ? (
        <>
          <Card title="Call">
            <dl className="grid gap-x-6 gap-y-2 text-sm sm:grid-cols-2 lg:grid-cols-4">
              <Item label="Call id" value={<span className="font-mono text-xs">{call.call_id}</span>} />
              <Item label="Agent" value={call.agent_id ?? '—'} />
              <Item label="Client" value={call.client_type} />
              <Item label="Status" value={<Badge tone={statusTone(call.status)}>{call.status}</Badge>} />
              <Item label="Started" value={formatTime(call.started_at)} />
              <Item label="Ended" value={formatTime(call.ended_at)} />
              <Item label="Duration" value={formatDuration(call.duration_s)} />
              <Item label="End reason" value={<span data-testid="end-reason">{call.end_reason ?? '—'}</span>} />
              {call.from_number ? <Item label="From" value={call.from_number} /> : null}
              {call.to_number ? <Item label="To" value={call.to_number} /> : null}
            </dl>
          </Card>

          <div className="grid gap-6 lg:grid-cols-[2fr_1fr]">
            <Card title="Transcript">
              {call.transcript.length === 0 ? <Empty>Nothing was said in this call.</Empty> : null}
              <ol className="space-y-3" aria-label="Transcript">
                {call.transcript.map((line) => (
                  <li
                    key={line.seq}
                    data-role={line.role}
                    className={`flex ${line.role === 'user' ? 'justify-end' : 'justify-start'}`}
                  >
                    <div
                      className={`max-w-[80%] rounded-2xl px-4 py-2 text-sm shadow-sm ${
                        line.role === 'user' ? 'bg-sky-600 text-white' : 'bg-slate-100 text-slate-900'
                      }`}
                    >
                      <span className="sr-only">{line.role === 'user' ? 'Caller: ' : 'Agent: '}</span>
                      {line.text}
                      {line.interrupted ? <span className="ml-2 text-xs italic opacity-80">(interrupted)</span> : null}
                    </div>
                  </li>
                ))}
              </ol>
            </Card>
            <div className="space-y-6">
              <Card title="Latency per turn">
                {withLatency.length === 0 ? (
                  <Empty>No measured replies.</Empty>
                ) : (
                  <table className="w-full" aria-label="Latency per turn">
                    <thead>
                      <tr>
                        <th className="th">Reply</th>
                        {LATENCY_KEYS.map(([, label]) => (
                          <th key={label} className="th">
                            {label}
                          </th>
                        ))}
                      </tr>
                    </thead>
                    <tbody>
                      {withLatency.map((l) => (
                        <tr key={l.seq}>
                          <td className="td">#{l.seq}</td>
                          {LATENCY_KEYS.map(([k]) => (
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
              <Card title="Extraction">
                <ExtractionView data={call.extracted_data} />
              </Card>
              {call.errors.length ? (
                <Card title="Errors">
                  <ul className="space-y-2 text-sm">
                    {call.errors.map((e, i) => (
                      <li key={i} className="rounded border border-red-200 bg-red-50 p-2">
                        <b>{e.code}</b> ({e.stage}) at {formatTime(e.at)}: {e.message}
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
  if (data == null) return <Empty>No extraction for this call.</Empty>;
  const x = data as Extraction;
  if (x.status === 'pending' || x.status === 'running')
    return (
      <p role="status" className="text-sm text-slate-600">
        Extraction in progress… reload in a moment.
      </p>
    );
  if (x.status === 'skipped') return <p className="text-sm text-slate-600">Skipped: {String(x.reason ?? '')}</p>;
  if (x.status === 'failed')
    return (
      <div className="text-sm text-red-800">
        <p className="font-semibold">Extraction failed after {String(x.attempts ?? '?')} attempt(s).</p>
        <pre className="mt-1 whitespace-pre-wrap text-xs">{JSON.stringify(x.errors ?? [], null, 2)}</pre>
      </div>
    );
  const { status: _status, attempts: _attempts, summary, intent, sentiment, next_action, ...rest } = x;
  void _status;
  void _attempts;
  const fields: [string, unknown][] = [
    ['Summary', summary],
    ['Intent', intent],
    ['Sentiment', sentiment],
    ['Next action', next_action],
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
