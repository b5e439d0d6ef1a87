import { createSlice, type PayloadAction } from '@reduxjs/toolkit';

import i18n from '../../i18n';
import type { ServerMessage, StateChanged, ToolActivity } from '../../lib/protocol';

export type CallStatus = 'idle' | 'connecting' | 'in_call' | 'ending' | 'ended' | 'failed';

export interface TranscriptEntry {
  id: number;
  /** system: an error; notice: something that happened to the call (a transfer) */
  role: 'user' | 'assistant' | 'system' | 'tool' | 'notice';
  text: string;
  turnId: number | null;
  interrupted: boolean;
  /** a caller's keypad entry, not speech */
  dtmf?: boolean;
  /** role "tool": what ran */
  tool?: { name: string; status: ToolActivity['status']; durationMs: number };
}

export interface TurnMetrics {
  turn_id: number;
  stt_done_ms: number | null;
  llm_first_token_ms: number | null;
  tts_first_audio_ms: number | null;
  first_audio_sent_ms: number | null;
  /** time the reply spent running tools */
  tools_ms: number | null;
}

/** Who is speaking and what the agent does, from the gateway's `state` messages (null until the first one). */
export type LiveState = Pick<StateChanged, 'caller' | 'agent'>;

export interface SimulatorState {
  agentId: string;
  status: CallStatus;
  callId: string | null;
  live: LiveState | null;
  transcript: TranscriptEntry[];
  metrics: TurnMetrics[];
  endReason: string | null;
  error: string | null;
  muted: boolean;
  bargeIns: number;
  nextId: number;
  /** the keypad keys pressed this call, in order */
  keys: string;
  /** where the agent transferred the call */
  transferredTo: string | null;
}

export const initialSimulatorState: SimulatorState = {
  agentId: 'default',
  status: 'idle',
  callId: null,
  live: null,
  transcript: [],
  metrics: [],
  endReason: null,
  error: null,
  muted: false,
  bargeIns: 0,
  nextId: 1,
  keys: '',
  transferredTo: null,
};

/** Server error codes the simulator's error box explains in words (simulator.serverErrors.<code>). */
export const EXPLAINED_ERRORS = ['unauthorized', 'busy'] as const;

/** What the simulator's error box says for a server error code, in the chosen language; unknown codes show as
 * "code: message" (the server's message as it came). */
export function describeServerError(code: string, message: string): string {
  return (EXPLAINED_ERRORS as readonly string[]).includes(code)
    ? i18n.t(`simulator.serverErrors.${code}`)
    : i18n.t('simulator.serverError', { code, message });
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

const simulatorSlice = createSlice({
  name: 'simulator',
  initialState: initialSimulatorState,
  reducers: {
    agentSelected(state, action: PayloadAction<string>) {
      state.agentId = action.payload;
    },
    callRequested(state) {
      state.status = 'connecting';
      state.callId = null;
      state.live = null;
      state.transcript = [];
      state.metrics = [];
      state.endReason = null;
      state.error = null;
      state.bargeIns = 0;
      state.keys = '';
      state.transferredTo = null;
    },
    hangUpRequested(state) {
      if (state.status === 'in_call' || state.status === 'connecting') state.status = 'ending';
    },
    muteToggled(state) {
      state.muted = !state.muted;
    },
    keyPressed(state, action: PayloadAction<string>) {
      state.keys += action.payload;
    },
    messageReceived(state, action: PayloadAction<ServerMessage>) {
      const m = action.payload;
      switch (m.type) {
        case 'started':
          state.status = 'in_call';
          state.callId = m.call_id;
          break;
        case 'transcript':
          state.transcript.push({
            id: state.nextId++,
            role: m.role,
            text: m.text,
            turnId: typeof m.turn_id === 'number' ? m.turn_id : null,
            interrupted: Boolean(m.interrupted),
            dtmf: Boolean(m.dtmf),
          });
          break;
        case 'clear':
          state.bargeIns += 1;
          break;
        case 'turn_metrics': {
          const entry: TurnMetrics = {
            turn_id: m.turn_id,
            stt_done_ms: num(m.stt_done_ms),
            llm_first_token_ms: num(m.llm_first_token_ms),
            tts_first_audio_ms: num(m.tts_first_audio_ms),
            first_audio_sent_ms: num(m.first_audio_sent_ms),
            tools_ms: num(m.tools_ms),
          };
          const i = state.metrics.findIndex((x) => x.turn_id === m.turn_id);
          if (i >= 0) state.metrics[i] = entry;
          else state.metrics.push(entry);
          break;
        }
        case 'error':
          state.error = describeServerError(m.code, m.message);
          state.transcript.push({
            id: state.nextId++,
            role: 'system',
            text: i18n.t('simulator.transcriptError', { code: m.code, message: m.message }),
            turnId: null,
            interrupted: false,
          });
          break;
        case 'state':
          state.live = { caller: m.caller, agent: m.agent };
          break;
        case 'tool':
          state.transcript.push({
            id: state.nextId++,
            role: 'tool',
            text: m.text,
            turnId: typeof m.turn_id === 'number' ? m.turn_id : null,
            interrupted: false,
            tool: { name: m.name, status: m.status, durationMs: num(m.duration_ms) ?? 0 },
          });
          break;
        case 'transferred':
          state.transferredTo = m.target;
          state.transcript.push({
            id: state.nextId++,
            role: 'notice',
            text: i18n.t('simulator.transferred', { target: m.target }),
            turnId: null,
            interrupted: false,
          });
          break;
        case 'ended':
          state.endReason = m.reason;
          state.status = 'ended';
          state.live = null;
          break;
      }
    },
    connectionClosed(state, action: PayloadAction<{ code: number; reason: string }>) {
      const { code, reason } = action.payload;
      if (state.status !== 'ended') {
        const clean = code === 1000 || code === 1005;
        state.status = clean || state.status === 'ending' ? 'ended' : 'failed';
        state.endReason = state.endReason ?? (reason || (clean ? i18n.t('simulator.closed') : i18n.t('simulator.connectionClosed', { code })));
      }
      state.live = null;
    },
    callFailed(state, action: PayloadAction<string>) {
      state.status = 'failed';
      state.error = action.payload;
    },
  },
});

export const {
  agentSelected,
  callRequested,
  hangUpRequested,
  muteToggled,
  keyPressed,
  messageReceived,
  connectionClosed,
  callFailed,
} = simulatorSlice.actions;
export default simulatorSlice.reducer;

export const callActive = (status: CallStatus): boolean =>
  status === 'connecting' || status === 'in_call' || status === 'ending';
