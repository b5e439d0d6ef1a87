import { useEffect, useRef, useState } from 'react';
import { Trans, useTranslation } from 'react-i18next';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, formatMs } from '../../components/ui';
import { fetchAgents } from '../agents/agentsSlice';
import { SimulatorCall } from './callEngine';
import { Keypad } from './Keypad';
import {
  agentSelected,
  callActive,
  callFailed,
  callRequested,
  connectionClosed,
  hangUpRequested,
  keyPressed,
  messageReceived,
  muteToggled,
  type LiveState,
  type TranscriptEntry,
} from './simulatorSlice';

/** What the agent is doing right now (the gateway's `state` messages); nothing before the first one. */
export function LiveStateBadge({ live }: { live: LiveState | null }) {
  const { t } = useTranslation();
  if (!live) return null;
  const key = live.caller === 'speaking' && live.agent === 'idle' ? 'listeningToYou' : live.agent;
  return (
    <span className="text-sm" data-testid="agent-state">
      <Badge tone={live.agent === 'thinking' ? 'amber' : live.agent === 'speaking' ? 'sky' : 'slate'}>
        {t(`simulator.agentState.${key}`)}
      </Badge>
    </span>
  );
}

const BUBBLE: Record<TranscriptEntry['role'], string> = {
  user: 'bg-sky-600 text-white',
  assistant: 'bg-slate-100 text-slate-900',
  system: 'bg-red-50 text-red-800',
  tool: 'border border-dashed border-slate-300 bg-white font-mono text-xs text-slate-700',
  notice: 'bg-amber-50 text-amber-900',
};
const TOOL_TONE = { ok: 'green', error: 'red', cancelled: 'amber' } as const;

/** One line of the live transcript: what was said, a tool the agent ran, an error or a transfer. */
export function TranscriptRow({ line }: { line: TranscriptEntry }) {
  const { t } = useTranslation();
  const prefix = line.role === 'user' ? t('simulator.youPrefix') : line.role === 'assistant' ? t('simulator.agentPrefix') : '';
  return (
    <li data-role={line.role} className={`flex ${line.role === 'user' ? 'justify-end' : 'justify-start'}`}>
      <div className={`max-w-[80%] rounded-2xl px-4 py-2 text-sm ${BUBBLE[line.role]}`}>
        <span className="sr-only">{prefix}</span>
        {line.tool ? (
          <span className="mr-2 inline-flex items-center gap-1 font-sans">
            <span className="text-slate-500">{t('simulator.toolPrefix')}</span>
            <Badge tone={TOOL_TONE[line.tool.status] ?? 'slate'}>{t(`callDetail.tool.status.${line.tool.status}`, { defaultValue: line.tool.status })}</Badge>
            <span className="text-slate-500">{formatMs(line.tool.durationMs)}</span>
          </span>
        ) : null}
        {line.dtmf ? <span className="mr-2 text-xs opacity-80">⌨ {t('callDetail.dtmf')}</span> : null}
        {line.text}
        {line.interrupted ? <span className="ml-2 text-xs italic opacity-80">{t('simulator.interrupted')}</span> : null}
      </div>
    </li>
  );
}

export function LevelMeter({ level }: { level: number }) {
  const { t } = useTranslation();
  // RMS 0..1 → 0..100 on a dB scale from -60 dBFS
  const db = level > 0 ? 20 * Math.log10(level) : -100;
  const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
  return (
    <div
      role="meter"
      aria-label={t('simulator.micLevel')}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(pct)}
      className="h-2 w-full overflow-hidden rounded bg-slate-200"
    >
      <div className="h-full bg-emerald-500 transition-[width] duration-75" style={{ width: `${pct}%` }} />
    </div>
  );
}

export function SimulatorPage() {
  const { t } = useTranslation();
  const dispatch = useAppDispatch();
  const sim = useAppSelector((s) => s.simulator);
  const agents = useAppSelector((s) => s.agents);
  const callRef = useRef<SimulatorCall | null>(null);
  const [level, setLevel] = useState(0);
  const lastLevel = useRef(0);
  const transcriptEnd = useRef<HTMLLIElement | null>(null);
  const active = callActive(sim.status);

  useEffect(() => {
    if (agents.status === 'idle') void dispatch(fetchAgents());
  }, [dispatch, agents.status]);

  useEffect(() => () => callRef.current?.cleanup(), []);

  useEffect(() => {
    if (callRef.current) callRef.current.muted = sim.muted;
  }, [sim.muted]);

  useEffect(() => {
    transcriptEnd.current?.scrollIntoView?.({ block: 'nearest' });
  }, [sim.transcript.length]);

  async function startCall() {
    dispatch(callRequested());
    const call = new SimulatorCall({
      onMessage: (m) => dispatch(messageReceived(m)),
      onLevel: (rms) => {
        const now = performance.now();
        if (now - lastLevel.current > 50 || rms === 0) {
          lastLevel.current = now;
          setLevel(rms);
        }
      },
      onClose: (code, reason) => {
        dispatch(connectionClosed({ code, reason }));
        callRef.current = null;
      },
      onFailure: (message) => dispatch(callFailed(message)),
    });
    call.muted = sim.muted;
    callRef.current = call;
    try {
      await call.start(sim.agentId);
    } catch (err) {
      const e = err as Error;
      const msg =
        e.name === 'NotAllowedError'
          ? t('simulator.micDenied')
          : e.name === 'NotFoundError'
            ? t('simulator.noMic')
            : e.message || String(err);
      call.cleanup();
      callRef.current = null;
      dispatch(callFailed(msg));
    }
  }

  function pressKey(digit: string) {
    if (callRef.current?.sendDtmf(digit)) dispatch(keyPressed(digit));
  }

  function hangUp() {
    dispatch(hangUpRequested());
    callRef.current?.hangUp();
  }

  // time in tools: a column only when a reply used one
  const withTools = sim.metrics.some((m) => m.tools_ms !== null);
  const columns = ['turn', 'stt', 'llm', 'tts', 'audio', ...(withTools ? ['tools'] : [])];
  const agentOptions = agents.items.length ? agents.items.map((a) => a.agent_id) : ['default'];

  return (
    <div className="grid gap-6 lg:grid-cols-[1fr_22rem]">
      <Card title={t('simulator.title')}>
        <p className="mb-4 text-sm text-slate-600">
          <Trans i18nKey="simulator.intro" components={{ b: <b /> }} />
        </p>
        <div className="flex flex-wrap items-end gap-3">
          <div>
            <label htmlFor="sim-agent" className="label">
              {t('simulator.agent')}
            </label>
            <select
              id="sim-agent"
              className="input w-56"
              value={sim.agentId}
              disabled={active}
              onChange={(e) => dispatch(agentSelected(e.target.value))}
            >
              {agentOptions.map((id) => (
                <option key={id} value={id}>
                  {id}
                </option>
              ))}
            </select>
          </div>
          {active ? (
            <button type="button" className="btn-danger" onClick={hangUp} disabled={sim.status === 'ending'}>
              {t('simulator.hangUp')}
            </button>
          ) : (
            <button type="button" className="btn-primary" onClick={() => void startCall()}>
              {t('simulator.call')}
            </button>
          )}
          <button type="button" className="btn-secondary" aria-pressed={sim.muted} onClick={() => dispatch(muteToggled())}>
            {sim.muted ? t('simulator.unmute') : t('simulator.mute')}
          </button>
          <p role="status" aria-live="polite" className="text-sm" data-testid="call-status">
            <Badge tone={sim.status === 'in_call' ? 'green' : sim.status === 'failed' ? 'red' : 'slate'}>
              {t(`simulator.callStatus.${sim.status}`)}
            </Badge>
            {sim.endReason ? <span className="ml-2 text-slate-500">({sim.endReason})</span> : null}
            {sim.callId ? <span className="ml-2 font-mono text-xs text-slate-500">{sim.callId}</span> : null}
          </p>
          <LiveStateBadge live={sim.live} />
        </div>
        <div className="mt-4">
          <LevelMeter level={level} />
        </div>
        {sim.error && sim.status === 'failed' ? (
          <p role="alert" className="mt-3 rounded-md border border-red-300 bg-red-50 p-2 text-sm text-red-800">
            {sim.error}
          </p>
        ) : null}
        <h3 className="mt-6 mb-2 font-semibold">{t('simulator.transcript')}</h3>
        {sim.transcript.length === 0 ? (
          <Empty>{active ? t('simulator.waiting') : t('simulator.emptyTranscript')}</Empty>
        ) : null}
        <ol aria-label={t('simulator.liveTranscript')} aria-live="polite" className="max-h-[28rem] space-y-2 overflow-y-auto">
          {sim.transcript.map((line) => (
            <TranscriptRow key={line.id} line={line} />
          ))}
          <li ref={transcriptEnd} aria-hidden className="h-0" />
        </ol>
      </Card>

      <Card title={t('simulator.latency')}>
        <p className="mb-2 text-xs text-slate-500">{t('simulator.latencyHint')}</p>
        {sim.metrics.length === 0 ? <Empty>{t('simulator.noMetrics')}</Empty> : null}
        {sim.metrics.length ? (
          <table className="w-full" aria-label={t('simulator.latencyTable')}>
            <thead>
              <tr>
                {columns.map((c) => (
                  <th key={c} className="th">
                    {t(`simulator.columns.${c}`)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {sim.metrics.map((m) => (
                <tr key={m.turn_id}>
                  <td className="td">{m.turn_id}</td>
                  <td className="td whitespace-nowrap">{formatMs(m.stt_done_ms)}</td>
                  <td className="td whitespace-nowrap">{formatMs(m.llm_first_token_ms)}</td>
                  <td className="td whitespace-nowrap">{formatMs(m.tts_first_audio_ms)}</td>
                  <td className="td whitespace-nowrap font-semibold">{formatMs(m.first_audio_sent_ms)}</td>
                  {withTools ? <td className="td whitespace-nowrap">{formatMs(m.tools_ms)}</td> : null}
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        <p className="mt-4 text-xs text-slate-500">{t('simulator.bargeIns', { count: sim.bargeIns })}</p>
        <h3 className="mt-6 mb-2 font-semibold">{t('simulator.keypad')}</h3>
        <Keypad enabled={sim.status === 'in_call'} keys={sim.keys} onPress={pressKey} />
      </Card>
    </div>
  );
}
