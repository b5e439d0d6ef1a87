import { useId, useState } from 'react';
import { useTranslation } from 'react-i18next';

import { Badge, formatMs } from '../../components/ui';
import type { TranscriptLine } from '../../lib/types';

/** A tool's arguments or result as stored (JSON text, or any text): indented when it is JSON. */
export function prettyJson(text: string | null | undefined): string {
  if (text == null || text === '') return '—';
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

const STATUS_TONE: Record<string, 'green' | 'red' | 'amber'> = { ok: 'green', error: 'red', cancelled: 'amber' };

/** One line of a finished call's transcript: a speech bubble (keypad digits marked as such) or a tool turn. */
export function TranscriptItem({ line }: { line: TranscriptLine }) {
  const { t } = useTranslation();
  if (line.role === 'tool') return <ToolTurnItem line={line} />;
  const user = line.role === 'user';
  return (
    <li data-role={line.role} data-dtmf={line.dtmf ? 'true' : undefined} className={`flex ${user ? 'justify-end' : 'justify-start'}`}>
      <div className={`max-w-[80%] rounded-2xl px-4 py-2 text-sm shadow-sm ${user ? 'bg-sky-600 text-white' : 'bg-slate-100 text-slate-900'}`}>
        <span className="sr-only">{user ? t('callDetail.callerPrefix') : t('callDetail.agentPrefix')}</span>
        {line.dtmf ? (
          <span data-testid="dtmf-mark" className="mr-2 inline-flex items-center gap-1 rounded bg-white/20 px-1.5 text-xs font-semibold">
            <KeypadIcon />
            {t('callDetail.dtmf')}
          </span>
        ) : null}
        {line.text}
        {line.interrupted ? <span className="ml-2 text-xs italic opacity-80">{t('callDetail.interrupted')}</span> : null}
      </div>
    </li>
  );
}

/** A tool the agent ran: name, status and duration; expanded, its arguments and result. Collapsed at first. */
function ToolTurnItem({ line }: { line: TranscriptLine }) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const detailsId = useId();
  const tool = line.tool;
  const status = tool?.status ?? '';
  return (
    <li data-role="tool" data-tool={tool?.name} className="flex justify-start">
      <div className="w-full max-w-[80%] rounded-lg border border-dashed border-slate-300 bg-white text-sm">
        <button
          type="button"
          aria-expanded={open}
          aria-controls={detailsId}
          onClick={() => setOpen((o) => !o)}
          className="flex w-full items-center gap-2 px-3 py-1.5 text-left hover:bg-slate-50 focus:outline-none focus:ring-2 focus:ring-sky-400"
        >
          <span aria-hidden className="text-slate-400">
            {open ? '▾' : '▸'}
          </span>
          <span className="text-xs uppercase tracking-wide text-slate-500">{t('callDetail.tool.label')}</span>
          <span className="font-mono">{tool?.name ?? line.text}</span>
          {tool ? <Badge tone={STATUS_TONE[status] ?? 'slate'}>{t(`callDetail.tool.status.${status}`, { defaultValue: status })}</Badge> : null}
          {tool ? <span className="ml-auto text-xs text-slate-500">{formatMs(tool.duration_ms)}</span> : null}
        </button>
        {open ? (
          <div id={detailsId} className="space-y-2 border-t border-slate-200 px-3 py-2">
            {tool ? (
              <>
                <h4 className="text-xs uppercase tracking-wide text-slate-500">{t('callDetail.tool.arguments')}</h4>
                <pre data-testid="tool-arguments" className="overflow-x-auto rounded bg-slate-900 p-2 text-xs text-slate-100">
                  {prettyJson(tool.arguments)}
                </pre>
                <h4 className="text-xs uppercase tracking-wide text-slate-500">{t('callDetail.tool.result')}</h4>
                <pre data-testid="tool-result" className="overflow-x-auto rounded bg-slate-900 p-2 text-xs text-slate-100">
                  {prettyJson(tool.result)}
                </pre>
              </>
            ) : (
              <p>{line.text}</p>
            )}
          </div>
        ) : null}
      </div>
    </li>
  );
}

function KeypadIcon() {
  return (
    <svg aria-hidden viewBox="0 0 12 16" className="h-3.5 w-3" fill="currentColor">
      {[0, 1, 2, 3].flatMap((row) => [0, 1, 2].map((col) => <circle key={`${row}-${col}`} cx={2 + col * 4} cy={2 + row * 4} r={1.3} />))}
    </svg>
  );
}
