import { useTranslation } from 'react-i18next';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Badge, Card, Empty, formatTime } from '../../components/ui';
import type { WebhookDelivery } from '../../lib/types';
import { refreshCallDetail, resendWebhook } from './historySlice';

const TONE: Record<string, 'green' | 'red' | 'amber' | 'sky'> = {
  delivered: 'green',
  failed: 'red',
  pending: 'amber',
  delivering: 'sky',
};

/** Deliveries still on their way: the page asks again until they are delivered or failed. */
export const inFlight = (deliveries: readonly WebhookDelivery[] | undefined): boolean =>
  (deliveries ?? []).some((d) => d.status === 'pending' || d.status === 'delivering');

/** The call's post-call webhook deliveries (the recorder's retries) and a button to queue it again. */
export function WebhookDeliveries({ callId, deliveries }: { callId: string; deliveries: readonly WebhookDelivery[] }) {
  const { t } = useTranslation();
  const dispatch = useAppDispatch();
  const resend = useAppSelector((s) => s.history.resend);
  const mine = resend.callId === callId ? resend : null;

  async function onResend() {
    await dispatch(resendWebhook(callId));
    void dispatch(refreshCallDetail(callId));
  }

  return (
    <Card
      title={t('callDetail.webhook.title')}
      actions={
        <button type="button" className="btn-secondary" disabled={mine?.status === 'loading'} onClick={() => void onResend()}>
          {mine?.status === 'loading' ? t('callDetail.webhook.resending') : t('callDetail.webhook.resend')}
        </button>
      }
    >
      {mine?.status === 'succeeded' && mine.delivery ? (
        <p role="status" className="mb-2 text-sm text-emerald-800">
          {t('callDetail.webhook.queued', { id: mine.delivery.id })}
        </p>
      ) : null}
      {mine?.status === 'failed' && mine.error ? (
        <p role="alert" className="mb-2 rounded border border-red-200 bg-red-50 p-2 text-sm text-red-800">
          {mine.error}
        </p>
      ) : null}
      {deliveries.length === 0 ? <Empty>{t('callDetail.webhook.none')}</Empty> : null}
      <ul className="space-y-2" aria-label={t('callDetail.webhook.title')}>
        {deliveries.map((d) => (
          <li key={d.id} data-delivery-id={d.id} data-status={d.status} className="rounded border border-slate-200 p-2 text-sm">
            <div className="flex flex-wrap items-center gap-2">
              <Badge tone={TONE[d.status] ?? 'slate'}>{t(`callDetail.webhook.status.${d.status}`, { defaultValue: d.status })}</Badge>
              <span className="text-xs text-slate-500">{t(`callDetail.webhook.by.${d.requested_by}`, { defaultValue: d.requested_by })}</span>
              <span className="ml-auto text-xs text-slate-500">{t('callDetail.webhook.attempts', { count: d.attempts })}</span>
            </div>
            <p className="mt-1 truncate font-mono text-xs" title={d.url}>
              {d.url}
            </p>
            <dl className="mt-1 grid grid-cols-[auto_1fr] gap-x-3 text-xs">
              <dt className="text-slate-500">{t('callDetail.webhook.created')}</dt>
              <dd>{formatTime(d.created_at)}</dd>
              {d.delivered_at ? (
                <>
                  <dt className="text-slate-500">{t('callDetail.webhook.delivered')}</dt>
                  <dd>{formatTime(d.delivered_at)}</dd>
                </>
              ) : null}
              {d.status === 'pending' && d.attempts > 0 && d.next_attempt_at ? (
                <>
                  <dt className="text-slate-500">{t('callDetail.webhook.nextAttempt')}</dt>
                  <dd>{formatTime(d.next_attempt_at)}</dd>
                </>
              ) : null}
              {d.last_status_code != null || d.last_error ? (
                <>
                  <dt className="text-slate-500">{t('callDetail.webhook.last')}</dt>
                  <dd data-testid="webhook-last" className="break-words">
                    {[d.last_status_code != null ? t('callDetail.webhook.code', { code: d.last_status_code }) : null, d.last_error]
                      .filter(Boolean)
                      .join(' · ')}
                  </dd>
                </>
              ) : null}
            </dl>
          </li>
        ))}
      </ul>
    </Card>
  );
}
