import { createSlice, type PayloadAction } from '@reduxjs/toolkit';

import { ADMIN_KEY_STORAGE, API_KEY_STORAGE, storedKey, storeKey } from '../../lib/api';

export interface AuthState {
  apiKey: string;
  adminKey: string;
}

export const initialAuthState = (): AuthState => ({
  apiKey: storedKey(API_KEY_STORAGE),
  adminKey: storedKey(ADMIN_KEY_STORAGE),
});

const authSlice = createSlice({
  name: 'auth',
  initialState: initialAuthState,
  reducers: {
    apiKeySet(state, action: PayloadAction<string>) {
      state.apiKey = action.payload.trim();
      storeKey(API_KEY_STORAGE, state.apiKey);
    },
    adminKeySet(state, action: PayloadAction<string>) {
      state.adminKey = action.payload.trim();
      storeKey(ADMIN_KEY_STORAGE, state.adminKey);
    },
  },
});

export const { apiKeySet, adminKeySet } = authSlice.actions;
export default authSlice.reducer;
