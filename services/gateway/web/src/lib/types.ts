// Shapes of the gateway's HTTP API (services/gateway/api_*.py).

export interface VoiceSpec {
  provider?: string | null;
  name?: string | null;
  style?: string | null;
  rate?: number | string | null;
  pitch?: number | string | null;
  [key: string]: unknown;
}

export interface AgentSpec {
  name: string;
  language: string;
  system_prompt: string;
  first_message: string;
  apology_message: string;
  reprompt_message: string;
  silence_goodbye_message: string;
  max_duration_message: string;
  /** said when a draining gateway closes the call (as read, resolved like the other texts) */
  shutdown_message?: string | null;
  voice: VoiceSpec;
  llm: { provider: string | null; model: string | null; temperature: number; max_tokens: number };
  stt: { provider: string | null; model: string | null; language: string | null };
  turn: TurnSpec;
  extraction_fields: Record<string, string>;
  overlays: Record<string, Record<string, unknown>>;
  /** E.164 numbers whose incoming Twilio/Telnyx calls this agent answers */
  phone_numbers?: string[];
  /** what the agent may do besides talking (shared/agent_tools.py); absent from an older gateway */
  tools?: ToolDef[];
  /** a tool still running after this says tool_filler_message */
  tool_filler_after_ms?: number;
  dtmf?: DtmfSpec;
  webhook?: WebhookSpec;
  tool_filler_message?: string | null;
  end_call_message?: string | null;
  transfer_message?: string | null;
}

export const END_OF_TURN_MODES = ['model', 'silence'] as const;
export type EndOfTurnMode = (typeof END_OF_TURN_MODES)[number];

/** Turn-taking (shared/call_config.py TurnSpec); the fields after vad_preroll_ms are absent from an older gateway. */
export interface TurnSpec {
  vad_start_ms: number;
  /** end_of_turn "silence" (or the model failing): the fixed silence that ends a turn */
  vad_stop_ms: number;
  vad_preroll_ms: number;
  /** "model": the end-of-turn model judges each pause; "silence": the fixed vad_stop_ms window */
  end_of_turn?: EndOfTurnMode;
  /** "model": the silence after which the model judges the pause */
  pause_ms?: number;
  /** "model": the longest pause waited out when the model says the caller has not finished */
  max_silence_ms?: number;
  /** "model": the probability of "finished" that ends the turn */
  eot_threshold?: number;
  /** the reply starts after this much silence, held back until the turn ends; 0 = only after it ends */
  preempt_ms?: number;
  /** caller speech shorter than this (a backchannel, a cough) does not interrupt the agent */
  interrupt_min_ms?: number;
  /** an interruption with no words (or only a backchannel) resumes the agent where it stopped */
  resume_after_false_interruption?: boolean;
  silence_timeout_s: number;
  max_call_s: number;
}

// Agent actions (shared/agent_tools.py): ToolDef, DtmfSpec, WebhookSpec.
export const TOOL_KINDS = ['end_call', 'transfer_call', 'send_dtmf', 'http'] as const;
export type ToolKind = (typeof TOOL_KINDS)[number];
export const BUILT_IN_KINDS: readonly ToolKind[] = ['end_call', 'transfer_call', 'send_dtmf'];
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export interface ToolDef {
  kind: ToolKind;
  /** defaults to the kind for built-ins; required for http */
  name?: string | null;
  description?: string | null;
  /** http: the arguments' JSON schema ("type": "object") */
  parameters?: Record<string, unknown> | null;
  url?: string | null;
  method?: HttpMethod;
  timeout_s?: number;
  /** a barge-in cancels the call (false: it runs to the end) */
  cancellable?: boolean;
  /** transfer_call: name -> E.164 number or SIP URI */
  targets?: Record<string, string>;
}

export const DTMF_MODES = ['off', 'each', 'collect'] as const;
export const DTMF_TERMINATORS = ['#', '*', ''] as const;

export interface DtmfSpec {
  mode: (typeof DTMF_MODES)[number];
  terminator: (typeof DTMF_TERMINATORS)[number];
  timeout_s: number;
  max_digits: number;
  /** masked in logs and history */
  sensitive: boolean;
}

export interface WebhookSpec {
  url: string | null;
}

/** The agent's texts that may come from the catalogue (shared/texts.py AGENT_TEXTS): null = the catalogue's text in
 * the agent's language, so it follows the language. */
export const TEXT_FIELDS = [
  'system_prompt',
  'first_message',
  'apology_message',
  'reprompt_message',
  'silence_goodbye_message',
  'max_duration_message',
  'shutdown_message',
  'tool_filler_message',
  'end_call_message',
  'transfer_message',
] as const;
export type TextField = (typeof TEXT_FIELDS)[number];

/** A spec as written (PUT): a text left null keeps following the agent's language. */
export type AgentSpecWrite = Omit<AgentSpec, TextField> & { [K in TextField]?: string | null };

export interface Agent {
  agent_id: string;
  version: number;
  created_at: string;
  updated_at: string;
  /** every text resolved: the catalogue's (in the agent's language) where the agent leaves it unset */
  spec: AgentSpec;
  /** the text fields that come from the catalogue (shown resolved in spec); write them back as null to keep them
   * following the language */
  catalogue_texts: string[];
}

export interface CallItem {
  call_id: string;
  agent_id: string | null;
  client_type: string;
  from_number: string | null;
  to_number: string | null;
  started_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  end_reason: string | null;
  status: string;
  turns: number;
  latency_summary: Record<string, unknown>;
}

export interface CallPage {
  items: CallItem[];
  next_cursor: string | null;
}

/** A tool the agent ran during a turn (shared/events/lifecycle.py ToolTurn). */
export interface ToolTurn {
  call_id: string;
  name: string;
  kind: ToolKind | string;
  /** the LLM's arguments, JSON text */
  arguments: string;
  result: string;
  status: 'ok' | 'error' | 'cancelled' | string;
  duration_ms: number | null;
}

export interface TranscriptLine {
  seq: number;
  role: 'user' | 'assistant' | 'tool' | string;
  text: string;
  started_at: string;
  ended_at: string;
  interrupted: boolean;
  latency_ms: Record<string, number | null>;
  /** the caller's keypad digits, not speech */
  dtmf?: boolean;
  /** role "tool": what ran */
  tool?: ToolTurn | null;
}

export type WebhookStatus = 'pending' | 'delivering' | 'delivered' | 'failed';

/** One post-call webhook delivery (the recorder retries it with backoff). */
export interface WebhookDelivery {
  id: string;
  url: string;
  status: WebhookStatus | string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  /** 'extraction' (after the call) or 'resend' */
  requested_by: string;
  /** when the recorder tries it (again) */
  next_attempt_at?: string | null;
}

export interface CallDetail extends CallItem {
  transcript: TranscriptLine[];
  errors: { code: string; stage: string; message: string; at: string }[];
  extracted_data: unknown;
  /** where transfer_call sent the caller */
  transferred_to?: string | null;
  webhook_deliveries?: WebhookDelivery[];
}

export interface LiveCall {
  call_id: string;
  agent_id: string;
  agent_version: number;
  client_type: string;
  state: string;
  started_at: string;
  duration_s: number;
}

export interface ServiceInstance {
  instance: string;
  version: string;
  uptime_s: number;
  ready: boolean;
}

export interface ServiceGroup {
  service: string;
  replicas: number;
  ready_replicas: number;
  instances: ServiceInstance[];
}

export interface GlobalStop {
  active: boolean;
  reason: string;
  tripped_at: number | null;
  errors: string[];
  reset_at: number | null;
  reset_by: string | null;
}

export interface LiveState {
  instance: string;
  accepting_calls: boolean;
  refusal: string | null;
  global_stop: GlobalStop;
  calls: LiveCall[];
}

export interface ServicesOverview {
  services: ServiceGroup[];
}

// GET /api/v1/providers (services/gateway/api/providers.py)
export type ProviderKind = 'stt' | 'llm' | 'tts';

export interface ProviderModel {
  id: string;
  description: string;
}

export interface ProviderVoice {
  name: string;
  language: string;
  gender: string;
  styles: string[];
}

export interface ProviderInfo {
  name: string;
  usable: boolean;
  status: string;
  default: boolean;
  default_model: string | null;
  default_voice: string | null;
  models: ProviderModel[];
  voices: ProviderVoice[];
  languages: string[];
  note: string;
}

export type ProviderCatalogue = Record<ProviderKind, ProviderInfo[]>;
