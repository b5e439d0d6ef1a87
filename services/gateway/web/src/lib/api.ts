// A small fetch wrapper: sends the API key from localStorage as X-API-Key and turns error answers into ApiError
// (with FastAPI's 422 details mapped to field paths such as "turn.vad_start_ms"). The server's messages stay as they
// come; the few written here are in the dashboard's language.

import i18n from '../i18n';

export const API_KEY_STORAGE = 'victoria.apiKey';
export const ADMIN_KEY_STORAGE = 'victoria.adminKey';

export function storedKey(name: string): string {
  try {
    return window.localStorage.getItem(name) ?? '';
  } catch {
    return '';
  }
}

export function storeKey(name: string, value: string): void {
  try {
    if (value) window.localStorage.setItem(name, value);
    else window.localStorage.removeItem(name);
  } catch {
    // storage unavailable (private mode): the key lives in memory only
  }
}

export type FieldErrors = Record<string, string>;

export class ApiError extends Error {
  status: number;
  fieldErrors: FieldErrors;
  retryAfter: number | null;

  constructor(status: number, message: string, fieldErrors: FieldErrors = {}, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.fieldErrors = fieldErrors;
    this.retryAfter = retryAfter;
  }
}

interface ValidationItem {
  loc?: (string | number)[];
  msg?: string;
}

/** FastAPI validation details → {"turn.vad_start_ms": "Input should be ..."}. Model-level errors whose message
 * starts with a field path ("voice.provider: unknown ...") are filed under that path. */
export function fieldErrorsFrom(detail: unknown): FieldErrors {
  const out: FieldErrors = {};
  if (!Array.isArray(detail)) return out;
  for (const item of detail as ValidationItem[]) {
    const loc = (item.loc ?? []).filter((p, i) => !(i === 0 && (p === 'body' || p === 'query')));
    let msg = String(item.msg ?? 'invalid').replace(/^Value error, /, '');
    let path = loc.map(String).join('.');
    const prefixed = /^([a-z_]+(?:\.[a-z0-9_]+)+|[a-z_]+): (.*)$/s.exec(msg);
    if (!path && prefixed) {
      path = prefixed[1];
      msg = prefixed[2];
    }
    out[path || '_'] = out[path || '_'] ? `${out[path || '_']}; ${msg}` : msg;
  }
  return out;
}

function describe(status: number, body: unknown, fallback: string): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) return i18n.t('api.invalidFields');
  if (status === 401) return i18n.t('api.missingKey');
  return fallback || `HTTP ${status}`;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  keyName?: string;
  signal?: AbortSignal;
}

export async function apiFetch<T>(path: string, opts: RequestOptions = {}): Promise<{ data: T; headers: Headers }> {
  const headers: Record<string, string> = { Accept: 'application/json', ...(opts.headers ?? {}) };
  const key = storedKey(opts.keyName ?? API_KEY_STORAGE);
  if (key) headers['X-API-Key'] = key;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  let resp: Response;
  try {
    resp = await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (err) {
    throw new ApiError(0, i18n.t('api.network', { message: (err as Error).message || i18n.t('api.noAnswer') }));
  }
  const text = await resp.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!resp.ok) {
    const retry = resp.headers.get('Retry-After');
    const fields = resp.status === 422 ? fieldErrorsFrom((body as { detail?: unknown } | null)?.detail) : {};
    throw new ApiError(resp.status, describe(resp.status, body, resp.statusText), fields, retry ? Number(retry) : null);
  }
  return { data: body as T, headers: resp.headers };
}

export async function apiGet<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  return (await apiFetch<T>(path, opts)).data;
}

/** For createAsyncThunk's rejectWithValue: a plain, serialisable error. */
export interface SerializedApiError {
  status: number;
  message: string;
  fieldErrors: FieldErrors;
}

export function serializeError(err: unknown): SerializedApiError {
  if (err instanceof ApiError) return { status: err.status, message: err.message, fieldErrors: err.fieldErrors };
  return { status: 0, message: (err as Error)?.message ?? String(err), fieldErrors: {} };
}
