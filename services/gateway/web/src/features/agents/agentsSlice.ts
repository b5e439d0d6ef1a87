import { createAsyncThunk, createSlice, type PayloadAction } from '@reduxjs/toolkit';

import i18n from '../../i18n';
import { apiFetch, apiGet, serializeError, type FieldErrors, type SerializedApiError } from '../../lib/api';
import type { Agent, AgentSpec, AgentSpecWrite, ProviderCatalogue } from '../../lib/types';

export type LoadStatus = 'idle' | 'loading' | 'succeeded' | 'failed';

export interface AgentsState {
  items: Agent[];
  status: LoadStatus;
  error: string | null;
  selectedId: string | null;
  save: { status: LoadStatus; error: string | null; fieldErrors: FieldErrors; savedVersion: number | null };
  /** GET /api/v1/providers: suggestions for the provider, model and voice fields (null until loaded) */
  providers: { catalogue: ProviderCatalogue | null; status: LoadStatus; error: string | null };
}

export const initialAgentsState: AgentsState = {
  items: [],
  status: 'idle',
  error: null,
  selectedId: null,
  save: { status: 'idle', error: null, fieldErrors: {}, savedVersion: null },
  providers: { catalogue: null, status: 'idle', error: null },
};

const isCatalogue = (v: unknown): v is ProviderCatalogue =>
  Boolean(v) &&
  typeof v === 'object' &&
  (['stt', 'llm', 'tts'] as const).every((k) => Array.isArray((v as Record<string, unknown>)[k]));

type Reject = { rejectValue: SerializedApiError };

export const fetchAgents = createAsyncThunk<Agent[], void, Reject>('agents/fetch', async (_, { rejectWithValue }) => {
  try {
    return await apiGet<Agent[]>('/api/v1/agents');
  } catch (err) {
    return rejectWithValue(serializeError(err));
  }
});

export const fetchProviders = createAsyncThunk<ProviderCatalogue, void, Reject>(
  'agents/providers',
  async (_, { rejectWithValue }) => {
    try {
      const data = await apiGet<unknown>('/api/v1/providers');
      if (!isCatalogue(data)) return rejectWithValue({ status: 0, message: i18n.t('agents.unexpectedProviders'), fieldErrors: {} });
      return data;
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

export const saveAgent = createAsyncThunk<Agent, { agentId: string; version: number; spec: AgentSpecWrite }, Reject>(
  'agents/save',
  async ({ agentId, version, spec }, { rejectWithValue }) => {
    try {
      const { data } = await apiFetch<Agent>(`/api/v1/agents/${encodeURIComponent(agentId)}`, {
        method: 'PUT',
        body: spec,
        headers: { 'If-Match': `"${version}"` },
      });
      return data;
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

export const createAgent = createAsyncThunk<Agent, { agentId: string; spec: Partial<AgentSpec> }, Reject>(
  'agents/create',
  async ({ agentId, spec }, { rejectWithValue }) => {
    try {
      const { data } = await apiFetch<Agent>('/api/v1/agents', { method: 'POST', body: { ...spec, agent_id: agentId } });
      return data;
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

export const deleteAgent = createAsyncThunk<string, string, Reject>(
  'agents/delete',
  async (agentId, { rejectWithValue }) => {
    try {
      await apiFetch<null>(`/api/v1/agents/${encodeURIComponent(agentId)}`, { method: 'DELETE' });
      return agentId;
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

function upsert(items: Agent[], agent: Agent): void {
  const i = items.findIndex((a) => a.agent_id === agent.agent_id);
  if (i >= 0) items[i] = agent;
  else {
    items.push(agent);
    items.sort((a, b) => a.agent_id.localeCompare(b.agent_id));
  }
}

const saveFailed = (state: AgentsState, payload: SerializedApiError | undefined, fallback: string) => {
  state.save.status = 'failed';
  state.save.error = payload?.message ?? fallback;
  state.save.fieldErrors = payload?.fieldErrors ?? {};
};

const agentsSlice = createSlice({
  name: 'agents',
  initialState: initialAgentsState,
  reducers: {
    agentChosen(state, action: PayloadAction<string | null>) {
      state.selectedId = action.payload;
      state.save = { ...initialAgentsState.save };
    },
    saveReset(state) {
      state.save = { ...initialAgentsState.save };
    },
  },
  extraReducers: (builder) => {
    builder
      .addCase(fetchAgents.pending, (state) => {
        state.status = 'loading';
        state.error = null;
      })
      .addCase(fetchAgents.fulfilled, (state, action) => {
        state.status = 'succeeded';
        state.items = [...action.payload].sort((a, b) => a.agent_id.localeCompare(b.agent_id));
        if (!state.selectedId || !state.items.some((a) => a.agent_id === state.selectedId)) {
          state.selectedId = state.items.find((a) => a.agent_id === 'default')?.agent_id ?? state.items[0]?.agent_id ?? null;
        }
      })
      .addCase(fetchAgents.rejected, (state, action) => {
        state.status = 'failed';
        state.error = action.payload?.message ?? action.error.message ?? i18n.t('agents.loadFailed');
      })
      .addCase(saveAgent.pending, (state) => {
        state.save = { status: 'loading', error: null, fieldErrors: {}, savedVersion: null };
      })
      .addCase(saveAgent.fulfilled, (state, action) => {
        upsert(state.items, action.payload);
        state.save = { status: 'succeeded', error: null, fieldErrors: {}, savedVersion: action.payload.version };
      })
      .addCase(saveAgent.rejected, (state, action) => saveFailed(state, action.payload, i18n.t('agents.saveFailed')))
      .addCase(createAgent.pending, (state) => {
        state.save = { status: 'loading', error: null, fieldErrors: {}, savedVersion: null };
      })
      .addCase(createAgent.fulfilled, (state, action) => {
        upsert(state.items, action.payload);
        state.selectedId = action.payload.agent_id;
        state.save = { status: 'succeeded', error: null, fieldErrors: {}, savedVersion: action.payload.version };
      })
      .addCase(createAgent.rejected, (state, action) => saveFailed(state, action.payload, i18n.t('agents.createFailed')))
      .addCase(deleteAgent.fulfilled, (state, action) => {
        state.items = state.items.filter((a) => a.agent_id !== action.payload);
        if (state.selectedId === action.payload) state.selectedId = state.items[0]?.agent_id ?? null;
        state.save = { ...initialAgentsState.save };
      })
      .addCase(fetchProviders.pending, (state) => {
        state.providers.status = 'loading';
        state.providers.error = null;
      })
      .addCase(fetchProviders.fulfilled, (state, action) => {
        state.providers = { catalogue: action.payload, status: 'succeeded', error: null };
      })
      .addCase(fetchProviders.rejected, (state, action) => {
        // the form still works without suggestions: keep any catalogue loaded before
        state.providers.status = 'failed';
        state.providers.error = action.payload?.message ?? action.error.message ?? i18n.t('agents.providersFailed');
      })
      .addCase(deleteAgent.rejected, (state, action) => saveFailed(state, action.payload, i18n.t('agents.deleteFailed')));
  },
});

export const { agentChosen, saveReset } = agentsSlice.actions;
export default agentsSlice.reducer;
