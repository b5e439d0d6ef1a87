import { createAsyncThunk, createSlice } from '@reduxjs/toolkit';

import i18n from '../../i18n';
import { ADMIN_KEY_STORAGE, apiFetch, apiGet, serializeError, type SerializedApiError } from '../../lib/api';
import type { GlobalStop, LiveState, ServiceGroup, ServicesOverview } from '../../lib/types';
import type { LoadStatus } from '../agents/agentsSlice';

export interface StatusState {
  live: LiveState | null;
  liveStatus: LoadStatus;
  liveError: string | null;
  services: ServiceGroup[];
  servicesStatus: LoadStatus;
  servicesError: string | null;
  reset: { status: LoadStatus; error: string | null };
  updatedAt: number | null;
}

export const initialStatusState: StatusState = {
  live: null,
  liveStatus: 'idle',
  liveError: null,
  services: [],
  servicesStatus: 'idle',
  servicesError: null,
  reset: { status: 'idle', error: null },
  updatedAt: null,
};

type Reject = { rejectValue: SerializedApiError };

export const fetchLive = createAsyncThunk<LiveState, void, Reject>('status/live', async (_, { rejectWithValue }) => {
  try {
    return await apiGet<LiveState>('/api/v1/live/calls');
  } catch (err) {
    return rejectWithValue(serializeError(err));
  }
});

export const fetchServices = createAsyncThunk<ServicesOverview, void, Reject>(
  'status/services',
  async (_, { rejectWithValue }) => {
    try {
      return await apiGet<ServicesOverview>('/api/v1/services');
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

/** Lifts the global stop: an admin action, sent with the admin key (ADMIN_API_KEY), not the API key. */
export const resetGlobalStop = createAsyncThunk<GlobalStop, string, Reject>(
  'status/reset',
  async (resetBy, { rejectWithValue }) => {
    try {
      const { data } = await apiFetch<GlobalStop>('/admin/global-stop/reset', {
        method: 'POST',
        body: { reset_by: resetBy || 'dashboard' },
        keyName: ADMIN_KEY_STORAGE,
      });
      return data;
    } catch (err) {
      return rejectWithValue(serializeError(err));
    }
  },
);

const statusSlice = createSlice({
  name: 'status',
  initialState: initialStatusState,
  reducers: {},
  extraReducers: (builder) => {
    builder
      .addCase(fetchLive.pending, (state) => {
        if (state.liveStatus !== 'succeeded') state.liveStatus = 'loading';
      })
      .addCase(fetchLive.fulfilled, (state, action) => {
        state.live = action.payload;
        state.liveStatus = 'succeeded';
        state.liveError = null;
        state.updatedAt = Date.now();
      })
      .addCase(fetchLive.rejected, (state, action) => {
        state.liveStatus = 'failed';
        state.liveError = action.payload?.message ?? action.error.message ?? i18n.t('status.liveFailed');
      })
      .addCase(fetchServices.pending, (state) => {
        if (state.servicesStatus !== 'succeeded') state.servicesStatus = 'loading';
      })
      .addCase(fetchServices.fulfilled, (state, action) => {
        state.services = Array.isArray(action.payload?.services) ? action.payload.services : [];
        state.servicesStatus = 'succeeded';
        state.servicesError = null;
      })
      .addCase(fetchServices.rejected, (state, action) => {
        state.servicesStatus = 'failed';
        state.servicesError = action.payload?.message ?? action.error.message ?? i18n.t('status.servicesFailed');
      })
      .addCase(resetGlobalStop.pending, (state) => {
        state.reset = { status: 'loading', error: null };
      })
      .addCase(resetGlobalStop.fulfilled, (state, action) => {
        state.reset = { status: 'succeeded', error: null };
        if (state.live) {
          state.live.global_stop = action.payload;
          state.live.accepting_calls = state.live.refusal === 'global_stop' ? true : state.live.accepting_calls;
          if (state.live.refusal === 'global_stop') state.live.refusal = null;
        }
      })
      .addCase(resetGlobalStop.rejected, (state, action) => {
        state.reset = { status: 'failed', error: action.payload?.message ?? action.error.message ?? i18n.t('status.resetFailedFallback') };
      });
  },
});

export default statusSlice.reducer;
