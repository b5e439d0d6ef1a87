import { useEffect, useState, type FormEvent } from 'react';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { Card, Empty, ErrorBox, Spinner, formatTime } from '../../components/ui';
import { AgentForm } from './AgentForm';
import { agentChosen, createAgent, deleteAgent, fetchAgents, fetchProviders, saveAgent } from './agentsSlice';

export function AgentsPage() {
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
      <Card title="Agents">
        {status === 'loading' && items.length === 0 ? <Spinner label="Loading agents…" /> : null}
        {status === 'failed' && error ? <ErrorBox message={error} onRetry={() => void dispatch(fetchAgents())} /> : null}
        {status === 'succeeded' && items.length === 0 ? <Empty>No agents yet.</Empty> : null}
        <ul className="space-y-1" aria-label="Agent list">
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
                  {a.spec.name} · v{a.version}
                </span>
              </button>
            </li>
          ))}
        </ul>
        <form onSubmit={onCreate} className="mt-4 space-y-2 border-t border-slate-200 pt-4" aria-label="New agent">
          <label htmlFor="new-agent-id" className="label">
            New agent id
          </label>
          <input
            id="new-agent-id"
            className="input"
            value={newId}
            onChange={(e) => setNewId(e.target.value)}
            placeholder="e.g. booking-desk"
            pattern="[a-z0-9][a-z0-9_\-]{0,63}"
          />
          <button type="submit" className="btn-secondary w-full" disabled={!newId.trim()}>
            Create with defaults
          </button>
        </form>
      </Card>

      <div className="min-w-0">
        {selected ? (
          <Card
            title={`Agent “${selected.agent_id}”`}
            actions={
              selected.agent_id !== 'default' ? (
                <button
                  type="button"
                  className="btn-secondary text-red-700"
                  onClick={() => {
                    if (window.confirm(`Delete agent ${selected.agent_id}?`)) void dispatch(deleteAgent(selected.agent_id));
                  }}
                >
                  Delete
                </button>
              ) : undefined
            }
          >
            <p className="mb-4 text-sm text-slate-500">
              Version {selected.version} · updated {formatTime(selected.updated_at)}. Changes apply to new calls.
            </p>
            {save.status === 'succeeded' && save.savedVersion !== null ? (
              <p role="status" className="mb-4 rounded-md bg-emerald-50 p-2 text-sm text-emerald-800">
                Saved — now version {save.savedVersion}.
              </p>
            ) : null}
            {save.status === 'failed' && save.error && Object.keys(save.fieldErrors).length === 0 ? (
              <ErrorBox title="Not saved" message={save.error} />
            ) : null}
            <AgentForm
              key={selected.agent_id}
              spec={selected.spec}
              catalogue={providers.catalogue}
              fieldErrors={save.status === 'failed' ? save.fieldErrors : {}}
              saving={save.status === 'loading'}
              onSave={(spec) => void dispatch(saveAgent({ agentId: selected.agent_id, version: selected.version, spec }))}
            />
          </Card>
        ) : status === 'succeeded' ? (
          <Empty>Pick an agent on the left.</Empty>
        ) : null}
      </div>
    </div>
  );
}
