// The simulator's agent-action messages (issue #16), as services/gateway/transports/protocol.py defines them
// (DtmfMessage, ToolActivity, Transferred, TurnMetrics.tools_ms). lib/protocol.ts is generated from that file by
// `make protocol`; once it carries these, import them from there and delete this module.

import type { ServerMessage, TurnMetrics } from '../../lib/protocol';

/** A keypad key pressed by the caller. */
export interface DtmfMessage {
  type: 'dtmf';
  digit: string;
}

/** The agent called a tool: one line for the live transcript. */
export interface ToolActivity {
  type: 'tool';
  turn_id: number;
  name: string;
  status: 'ok' | 'error' | 'cancelled';
  text: string;
  /** default 0 */
  duration_ms?: number;
}

/** The agent transferred the call to `target` (a browser call is told, then closed). */
export interface Transferred {
  type: 'transferred';
  target: string;
}

/** Every message the simulator handles: the generated ones and the agent actions'. */
export type SimulatorServerMessage =
  | Exclude<ServerMessage, TurnMetrics>
  | (TurnMetrics & { tools_ms?: number | null })
  | ToolActivity
  | Transferred;

/** The 12 keys of a phone keypad, in its layout. */
export const KEYPAD_KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'] as const;
