import type { AgentSpec } from '../lib/types';

/** An agent's `turn` as the gateway sends it with shared/call_config.py's defaults (the agents' test fixtures). */
export const defaultTurn: AgentSpec['turn'] = {
  vad_start_ms: 120,
  vad_stop_ms: 500,
  vad_preroll_ms: 200,
  end_of_turn: 'model',
  pause_ms: 200,
  max_silence_ms: 1500,
  eot_threshold: 0.5,
  preempt_ms: 100,
  interrupt_min_ms: 500,
  resume_after_false_interruption: true,
  silence_timeout_s: 10,
  max_call_s: 1800,
};
