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
  turn: {
    vad_start_ms: number;
    vad_stop_ms: number;
    vad_preroll_ms: number;
    silence_timeout_s: number;
    max_call_s: number;
  };
  extraction_fields: Record<string, string>;
  overlays: Record<string, Record<string, unknown>>;
  /** E.164 numbers whose incoming Twilio/Telnyx calls this agent answers */
  phone_numbers?: string[];
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

export interface TranscriptLine {
  seq: number;
  role: 'user' | 'assistant' | string;
  text: string;
  started_at: string;
  ended_at: string;
  interrupted: boolean;
  latency_ms: Record<string, number | null>;
}

export interface CallDetail extends CallItem {
  transcript: TranscriptLine[];
  errors: { code: string; stage: string; message: string; at: string }[];
  extracted_data: unknown;
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
