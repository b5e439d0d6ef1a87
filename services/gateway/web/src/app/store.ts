import { combineReducers, configureStore } from '@reduxjs/toolkit';

import agentsReducer from '../features/agents/agentsSlice';
import authReducer from '../features/auth/authSlice';
import historyReducer from '../features/history/historySlice';
import simulatorReducer from '../features/simulator/simulatorSlice';
import statusReducer from '../features/status/statusSlice';

export const rootReducer = combineReducers({
  auth: authReducer,
  simulator: simulatorReducer,
  agents: agentsReducer,
  history: historyReducer,
  status: statusReducer,
});

export type RootState = ReturnType<typeof rootReducer>;

export function makeStore(preloadedState?: Partial<RootState>) {
  return configureStore({ reducer: rootReducer, preloadedState: preloadedState as RootState | undefined });
}

export type AppStore = ReturnType<typeof makeStore>;
export type AppDispatch = AppStore['dispatch'];
