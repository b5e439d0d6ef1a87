import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Card, Empty, ErrorBox, Spinner, formatTime } from '../../components/ui';
import { AgentForm } from './AgentForm';
import { agentChosen, createAgent, deleteAgent, fetchAgents, fetchProviders, saveAgent } from './agentsSlice';

const NO_CATALOGUE_TEXTS: string[] = []; // a gateway that predates catalogue_texts

export function AgentsPage() {
  const { t } = useTranslation();
  const dispatch = useAppDispatch();
  const { items, status, error, selectedId, save, providers } = useAppSelector((s) => s.agents);
  const apiKey = useAppSelector((s) => s.auth.apiKey);
  const [newId, setNewId] = useState('');
  const selected = items.find((a) => a.agent_id === selectedId) ?? null;

  useEffect(() => {
    void dispatch(fetchAgents());
    void dispatch(fetchProviders());
  }, [dispatch, apiKey]);

  function onCreate(e: FormEvent) {
    e.preventDefault();
    if (newId.trim()) void dispatch(createAgent({ agentId: newId.trim(), spec: {} })).then(() => setNewId(''));
  }

  return (
    <div className="grid gap-6 lg:grid-cols-[16rem_1fr]">
      <Card title={t('agents.title')}>
        {status === 'loading' && items.length === 0 ? <Spinner label={t('agents.loading')} /> : null}
        {status === 'failed' && error ? <ErrorBox message={error} onRetry={() => void dispatch(fetchAgents())} /> : null}
        {status === 'succeeded' && items.length === 0 ? <Empty>{t('agents.empty')}</Empty> : null}
        <ul className="space-y-1" aria-label={t('agents.listLabel')}>
          {items.map((a) => (
            <li key={a.agent_id}>
              <button
                type="button"
                onClick={() => dispatch(agentChosen(a.agent_id))}
                aria-current={a.agent_id === selectedId ? 'true' : undefined}
                className={`w-full rounded-md px-3 py-2 text-left text-sm focus:outline-none focus:ring-2 focus:ring-sky-400 ${
                  a.agent_id === selectedId ? 'bg-sky-100 font-semibold text-sky-900' : 'hover:bg-slate-100'
                }`}
              >
                {a.agent_id}
                <span className="block text-xs font-normal text-slate-500">
                  {a.spec.name} · {t('agents.version', { version: a.version })}
                </span>
              </button>
            </li>
          ))}
        </ul>
        <form onSubmit={onCreate} className="mt-4 space-y-2 border-t border-slate-200 pt-4" aria-label={t('agents.newFormLabel')}>
          <label htmlFor="new-agent-id" className="label">
            {t('agents.newId')}
          </label>
          <input
            id="new-agent-id"
            className="input"
            value={newId}
            onChange={(e) => setNewId(e.target.value)}
            placeholder={t('agents.newIdPlaceholder')}
            pattern="[a-z0-9][a-z0-9_\-]{0,63}"
          />
          <button type="submit" className="btn-secondary w-full" disabled={!newId.trim()}>
            {t('agents.create')}
          </button>
        </form>
      </Card>

      <div className="min-w-0">
        {selected ? (
          <Card
            title={t('agents.heading', { id: selected.agent_id })}
            actions={
              selected.agent_id !== 'default' ? (
                <button
                  type="button"
                  className="btn-secondary text-red-700"
                  onClick={() => {
                    if (window.confirm(t('agents.confirmDelete', { id: selected.agent_id }))) void dispatch(deleteAgent(selected.agent_id));
                  }}
                >
                  {t('agents.delete')}
                </button>
              ) : undefined
            }
          >
            <p className="mb-4 text-sm text-slate-500">
              {t('agents.meta', { version: selected.version, updated: formatTime(selected.updated_at) })}
            </p>
            {save.status === 'succeeded' && save.savedVersion !== null ? (
              <p role="status" className="mb-4 rounded-md bg-emerald-50 p-2 text-sm text-emerald-800">
                {t('agents.saved', { version: save.savedVersion })}
              </p>
            ) : null}
            {save.status === 'failed' && save.error && Object.keys(save.fieldErrors).length === 0 ? (
              <ErrorBox title={t('agents.notSaved')} message={save.error} />
            ) : null}
            <AgentForm
              key={selected.agent_id}
              spec={selected.spec}
              catalogueTexts={selected.catalogue_texts ?? NO_CATALOGUE_TEXTS}
              catalogue={providers.catalogue}
              fieldErrors={save.status === 'failed' ? save.fieldErrors : {}}
              saving={save.status === 'loading'}
              onSave={(spec) => void dispatch(saveAgent({ agentId: selected.agent_id, version: selected.version, spec }))}
            />
          </Card>
        ) : status === 'succeeded' ? (
          <Empty>{t('agents.pick')}</Empty>
        ) : null}
      </div>
    </div>
  );
}
