import { createAsyncThunk, createSlice, type PayloadAction } from '@reduxjs/toolkit';

import i18n from '../../i18n';
import { apiFetch, apiGet, serializeError, type SerializedApiError } from '../../lib/api';
import type { CallDetail, CallItem, CallPage, WebhookDelivery } from '../../lib/types';
import type { LoadStatus } from '../agents/agentsSlice';

export interface HistoryFilters {
  agent_id: string;
  client_type: string;
  status: string;
  q: string;
  since: string;
  until: string;
}

export interface HistoryState {
  filters: HistoryFilters;
  limit: number;
  items: CallItem[];
  status: LoadStatus;
  error: string | null;
  /** cursors[i] is the cursor that loads page i (page 0 has none) */
  cursors: (string | null)[];
  page: number;
  nextCursor: string | null;
  detail: { callId: string | null; data: CallDetail | null; status: LoadStatus; error: string | null };
  /** POST /api/v1/calls/{id}/webhook/resend: the delivery it queued, or why not (409: no webhook, not ended) */
  resend: { callId: string | null; status: LoadStatus; error: string | null; delivery: WebhookDelivery | null };
}

export const emptyFilters: HistoryFilters = { agent_id: '', client_type: '', status: '', q: '', since: '', until: '' };

export const initialHistoryState: HistoryState = {
  filters: emptyFilters,
  limit: 20,
  items: [],
  status: 'idle',
  error: null,
  cursors: [null],
  page: 0,
  nextCursor: null,
  detail: { callId: null, data: null, status: 'idle', error: null },
  resend: { callId: null, status: 'idle', error: null, delivery: null },
};

/** Query string for /api/v1/calls (empty filters are left out; datetime-local values are sent as local time). */
export function callsQuery(filters: HistoryFilters, limit: number, cursor: string | null): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) {
    if (!v) continue;
    if ((k === 'since' || k === 'until') && !Number.isNaN(new Date(v).getTime())) params.set(k, new Date(v).toISOString());
    else params.set(k, v.trim());
  }
  params.set('limit', String(limit));
  if (cursor) params.set('cursor', cursor);
  return params.toString();
}

type Reject = { rejectValue: SerializedApiError };

export const fetchCalls = createAsyncThunk<CallPage, { page: number }, { state: { history: HistoryState } } & Reject>(
  'history/fetch',
  async ({ page }, { getState, rejectWithValue }) => {
    const { filters, limit, cursors } = getState().history;
    try {
      return await apiGet<CallPage>(`/api/v1/calls?${callsQuery(filters, limit, cursors[page] ?? null)}`);
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

export const fetchCallDetail = createAsyncThunk<CallDetail, string, Reject>(
  'history/detail',
  async (callId, { rejectWithValue }) => {
    try {
      return await apiGet<CallDetail>(`/api/v1/calls/${encodeURIComponent(callId)}`);
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

/** The call again without the loading state: the page keeps showing it (webhook deliveries in progress). */
export const refreshCallDetail = createAsyncThunk<CallDetail, string, Reject>(
  'history/refreshDetail',
  async (callId, { rejectWithValue }) => {
    try {
      return await apiGet<CallDetail>(`/api/v1/calls/${encodeURIComponent(callId)}`);
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

/** Queues the post-call webhook again (202: the new delivery, which the recorder delivers). */
export const resendWebhook = createAsyncThunk<WebhookDelivery, string, Reject>(
  'history/resendWebhook',
  async (callId, { rejectWithValue }) => {
    try {
      const { data } = await apiFetch<WebhookDelivery>(`/api/v1/calls/${encodeURIComponent(callId)}/webhook/resend`, {
        method: 'POST',
      });
      return data;
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

const historySlice = createSlice({
  name: 'history',
  initialState: initialHistoryState,
  reducers: {
    filtersApplied(state, action: PayloadAction<HistoryFilters>) {
      state.filters = action.payload;
      state.cursors = [null];
      state.page = 0;
      state.nextCursor = null;
    },
    filtersCleared(state) {
      state.filters = emptyFilters;
      state.cursors = [null];
      state.page = 0;
      state.nextCursor = null;
    },
    detailClosed(state) {
      state.detail = initialHistoryState.detail;
    },
  },
  extraReducers: (builder) => {
    builder
      .addCase(fetchCalls.pending, (state) => {
        state.status = 'loading';
        state.error = null;
      })
      .addCase(fetchCalls.fulfilled, (state, action) => {
        const page = action.meta.arg.page;
        state.status = 'succeeded';
        state.items = action.payload.items;
        state.page = page;
        state.nextCursor = action.payload.next_cursor;
        state.cursors = state.cursors.slice(0, page + 1);
        if (action.payload.next_cursor) state.cursors[page + 1] = action.payload.next_cursor;
      })
      .addCase(fetchCalls.rejected, (state, action) => {
        state.status = 'failed';
        state.error = action.payload?.message ?? action.error.message ?? i18n.t('history.loadFailed');
      })
      .addCase(fetchCallDetail.pending, (state, action) => {
        state.detail = { callId: action.meta.arg, data: null, status: 'loading', error: null };
        if (state.resend.callId !== action.meta.arg) state.resend = initialHistoryState.resend;
      })
      .addCase(refreshCallDetail.fulfilled, (state, action) => {
        if (state.detail.callId === action.meta.arg && state.detail.status === 'succeeded') state.detail.data = action.payload;
      })
      .addCase(resendWebhook.pending, (state, action) => {
        state.resend = { callId: action.meta.arg, status: 'loading', error: null, delivery: null };
      })
      .addCase(resendWebhook.fulfilled, (state, action) => {
        state.resend = { callId: action.meta.arg, status: 'succeeded', error: null, delivery: action.payload };
      })
      .addCase(resendWebhook.rejected, (state, action) => {
        state.resend = {
          callId: action.meta.arg,
          status: 'failed',
          error: action.payload?.message ?? action.error.message ?? i18n.t('callDetail.webhook.resendFailed'),
          delivery: null,
        };
      })
      .addCase(fetchCallDetail.fulfilled, (state, action) => {
        if (state.detail.callId === action.meta.arg) state.detail = { callId: action.meta.arg, data: action.payload, status: 'succeeded', error: null };
      })
      .addCase(fetchCallDetail.rejected, (state, action) => {
        if (state.detail.callId === action.meta.arg)
          state.detail = {
            callId: action.meta.arg,
            data: null,
            status: 'failed',
            error: action.payload?.message ?? action.error.message ?? i18n.t('history.detailFailed'),
          };
      });
  },
});

export const { filtersApplied, filtersCleared, detailClosed } = historySlice.actions;
export default historySlice.reducer;
