import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';

import i18n, { intlLocale } from '../i18n';

export function Spinner({ label }: { label?: string }) {
  const { t } = useTranslation();
  return (
    <div role="status" className="flex items-center gap-2 py-6 text-slate-500">
      <span className="h-4 w-4 animate-spin rounded-full border-2 border-slate-300 border-t-sky-600" aria-hidden />
      <span>{label ?? t('common.loading')}</span>
    </div>
  );
}

/** An error message mentioning the API key (the server's English, or our own Spanish) gets a hint where to enter it. */
const API_KEY_MENTION = /api[ -]?key|clave de api/i;

export function ErrorBox({ title, message, onRetry }: { title?: string; message: string; onRetry?: () => void }) {
  const { t } = useTranslation();
  return (
    <div role="alert" className="my-3 rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-800">
      <p className="font-semibold">{title ?? t('common.errorTitle')}</p>
      <p className="mt-1 whitespace-pre-wrap">{message}</p>
      {API_KEY_MENTION.test(message) ? <p className="mt-1">{t('common.apiKeyHint')}</p> : null}
      {onRetry ? (
        <button type="button" onClick={onRetry} className="btn-secondary mt-2">
          {t('common.retry')}
        </button>
      ) : null}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="rounded-md border border-dashed border-slate-300 p-6 text-center text-slate-500">{children}</p>;
}

export function Card({ title, children, actions }: { title?: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm">
      {title || actions ? (
        <div className="mb-3 flex items-center justify-between gap-2">
          {title ? <h2 className="text-lg font-semibold">{title}</h2> : <span />}
          {actions}
        </div>
      ) : null}
      {children}
    </section>
  );
}

export function Badge({ tone = 'slate', children }: { tone?: 'slate' | 'green' | 'red' | 'amber' | 'sky'; children: ReactNode }) {
  const tones = {
    slate: 'bg-slate-100 text-slate-700',
    green: 'bg-emerald-100 text-emerald-800',
    red: 'bg-red-100 text-red-800',
    amber: 'bg-amber-100 text-amber-800',
    sky: 'bg-sky-100 text-sky-800',
  };
  return <span className={`inline-block rounded px-2 py-0.5 text-xs font-medium ${tones[tone]}`}>{children}</span>;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(intlLocale());
}

/** A date-time from epoch milliseconds, in the chosen language. */
export function formatEpoch(ms: number): string {
  return new Date(ms).toLocaleString(intlLocale());
}

/** A time of day from epoch milliseconds, in the chosen language. */
export function formatClock(ms: number): string {
  return new Date(ms).toLocaleTimeString(intlLocale());
}

export function formatNumber(v: number): string {
  return new Intl.NumberFormat(intlLocale()).format(v);
}

export function formatMs(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? i18n.t('common.ms', { value: formatNumber(Math.round(v)) }) : '—';
}

export function formatDuration(seconds: number | null | undefined): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  return s >= 60
    ? i18n.t('common.durationMinutes', { m: formatNumber(Math.floor(s / 60)), s: String(s % 60).padStart(2, '0') })
    : i18n.t('common.durationSeconds', { s: formatNumber(s) });
}
