// Generated from services/gateway/transports/protocol.py by make protocol (python -m tools.gen_protocol_ts): do not edit.
// The browser simulator's WebSocket protocol (/ws/simulator); see docs/ARCHITECTURE.md.

// --- client → server ---

/** Must be the first message, within the start timeout. */
export interface StartMessage {
  type: 'start';
  /** default 16000 */
  sample_rate?: 8000 | 16000 | 24000 | 48000;
  agent_id?: string | null;
  /** from POST /api/v1/simulator/tokens */
  token?: string | null;
}

/** Caller audio for clients that cannot send binary frames: base64 PCM16 at the start's `sample_rate` (an absent `data` is no audio, not an error). */
export interface AudioMessage {
  type: 'audio';
  /** default '' */
  data?: string;
}

/** The caller hangs up. */
export interface StopMessage {
  type: 'stop';
}

/** A keypad key pressed by the caller (what a phone line's DTMF event is); the agent's `dtmf` setting says how keys become the caller's turns. */
export interface DtmfMessage {
  type: 'dtmf';
  digit: string;
}

/** A JSON message the browser sends; binary frames carry PCM16 audio. */
export type ClientMessage = StartMessage | AudioMessage | StopMessage | DtmfMessage;

// --- server → client ---

/** The call is up. */
export interface Started {
  type: 'started';
  call_id: string;
  sample_rate: number;
  /** default 'pcm16' */
  encoding?: 'pcm16';
  agent_id: string;
}

/** A line of the live transcript; an assistant's text is what the caller heard of it. */
export interface Transcript {
  type: 'transcript';
  role: 'user' | 'assistant';
  text: string;
  turn_id: number;
  /** default false */
  interrupted?: boolean;
  /** default false */
  dtmf?: boolean;
}

/** Barge-in: drop any audio not yet played. */
export interface Clear {
  type: 'clear';
}

/** A reply's latency, each stage in ms from the end of the caller's turn (VAD). */
export interface TurnMetrics {
  type: 'turn_metrics';
  turn_id: number;
  stt_done_ms?: number | null;
  llm_first_token_ms?: number | null;
  tts_first_audio_ms?: number | null;
  first_audio_sent_ms?: number | null;
  tools_ms?: number | null;
}

/** The call's state machine moved: who is speaking, whether the agent is thinking (the event that moved it). */
export interface StateChanged {
  type: 'state';
  caller: 'listening' | 'speaking';
  agent: 'idle' | 'thinking' | 'speaking' | 'ending' | 'closing' | 'ended';
  event: string;
}

/** Something was wrong (codes in docs/ARCHITECTURE.md); a call error is followed by the apology and `ended`. */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

/** The agent called a tool: one line for the live transcript (`text`: name, arguments and result, shortened; a sensitive keypad entry masked), `status` ok, error or cancelled (a barge-in). */
export interface ToolActivity {
  type: 'tool';
  turn_id: number;
  name: string;
  status: 'ok' | 'error' | 'cancelled';
  text: string;
  /** default 0.0 */
  duration_ms?: number;
}

/** The agent transferred the call to `target` (a browser call cannot be: it is told, then closed). */
export interface Transferred {
  type: 'transferred';
  target: string;
}

/** The call is over; the socket closes next. */
export interface Ended {
  type: 'ended';
  reason: string;
}

/** A JSON message the gateway sends; binary frames carry reply audio. */
export type ServerMessage = Started | Transcript | Clear | TurnMetrics | StateChanged | ErrorMessage | ToolActivity | Transferred | Ended;
