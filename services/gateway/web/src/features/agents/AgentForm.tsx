import { useEffect, useId, useMemo, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';

import type { FieldErrors } from '../../lib/api';
import {
  DTMF_MODES,
  DTMF_TERMINATORS,
  END_OF_TURN_MODES,
  TEXT_FIELDS,
  type AgentSpec,
  type AgentSpecWrite,
  type DtmfSpec,
  type ProviderCatalogue,
  type ProviderInfo,
  type ProviderKind,
  type TurnSpec,
} from '../../lib/types';
import { Field } from './Field';
import { ToolsEditor } from './ToolsEditor';
import { draftsToTools, toolToDraft, type ToolDraft } from './toolDrafts';

// used until GET /api/v1/providers has answered (or when it cannot)
const FALLBACK_PROVIDERS: Record<ProviderKind, string[]> = {
  stt: ['local_whisper', 'groq', 'azure', 'fake'],
  llm: ['local_llama', 'groq', 'openai', 'fake'],
  tts: ['local_piper', 'azure', 'fake'],
};

export interface Suggestion {
  value: string;
  label?: string;
}

const uniq = (items: Suggestion[]): Suggestion[] => {
  const seen = new Set<string>();
  return items.filter((s) => (seen.has(s.value) ? false : (seen.add(s.value), true)));
};

/** "+34 910 000 000, +1555…" or one per line → ["+34910000000", …] (spaces inside a number are dropped). */
export function parsePhoneNumbers(text: string): string[] {
  return text
    .split(/[\n,;]+/)
    .map((n) => n.replace(/[\s()-]/g, ''))
    .filter(Boolean);
}

type Draft = Record<string, unknown>;

function getPath(obj: Draft, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Draft)[k] : undefined), obj);
}

function setPath(obj: Draft, path: string, value: unknown): Draft {
  const [head, ...rest] = path.split('.');
  if (rest.length === 0) return { ...obj, [head]: value };
  const child = (obj[head] && typeof obj[head] === 'object' ? obj[head] : {}) as Draft;
  return { ...obj, [head]: setPath(child, rest.join('.'), value) };
}

const pretty = (v: unknown) => JSON.stringify(v ?? {}, null, 2);

/** shared/agent_tools.py's and shared/call_config.py's defaults, for a spec read from a gateway that does not send them */
const DEFAULT_DTMF: DtmfSpec = { mode: 'collect', terminator: '#', timeout_s: 3, max_digits: 32, sensitive: false };
const DEFAULT_TURN_TAKING = {
  end_of_turn: 'model',
  pause_ms: 200,
  max_silence_ms: 1500,
  eot_threshold: 0.5,
  preempt_ms: 100,
  interrupt_min_ms: 500,
  resume_after_false_interruption: true,
} satisfies Partial<TurnSpec>;
const withActionDefaults = (spec: AgentSpec): Draft => ({
  ...spec,
  turn: { ...DEFAULT_TURN_TAKING, ...spec.turn },
  tool_filler_after_ms: spec.tool_filler_after_ms ?? 1000,
  dtmf: { ...DEFAULT_DTMF, ...(spec.dtmf ?? {}) },
  webhook: { url: spec.webhook?.url ?? null },
});
const toolDrafts = (spec: AgentSpec): ToolDraft[] => (spec.tools ?? []).map(toolToDraft);

const NONE: readonly string[] = [];
const TEXTS: readonly string[] = TEXT_FIELDS;
/** The texts that follow the catalogue: those the API lists, and any it left null (a gateway that does not resolve). */
const fromCatalogue = (spec: AgentSpec, names: readonly string[]) =>
  new Set(TEXTS.filter((n) => names.includes(n) || (spec as unknown as Draft)[n] == null));

export interface AgentFormProps {
  spec: AgentSpec;
  /** the text fields that come from the catalogue (GET's catalogue_texts): sent back as null unless edited, so they
   * keep following the agent's language */
  catalogueTexts?: readonly string[];
  /** providers, models and voices to suggest (GET /api/v1/providers); free text is still accepted */
  catalogue?: ProviderCatalogue | null;
  fieldErrors: FieldErrors;
  saving: boolean;
  onSave(spec: AgentSpecWrite): void;
}

/** Edits every field of an agent; the API validates the whole spec and its 422 errors show next to the fields. */
export function AgentForm({ spec, catalogueTexts = NONE, catalogue = null, fieldErrors, saving, onSave }: AgentFormProps) {
  const { t } = useTranslation();
  const [draft, setDraft] = useState<Draft>(() => withActionDefaults(spec));
  const [tools, setTools] = useState<ToolDraft[]>(() => toolDrafts(spec));
  // the texts that follow the catalogue (sent as null); editing one takes it out, "reset to catalogue" puts it back
  const [following, setFollowing] = useState<Set<string>>(() => fromCatalogue(spec, catalogueTexts));
  const [json, setJson] = useState({ overlays: pretty(spec.overlays), extraction_fields: pretty(spec.extraction_fields) });
  const [phones, setPhones] = useState((spec.phone_numbers ?? []).join('\n'));
  const [jsonErrors, setJsonErrors] = useState<FieldErrors>({});
  const formId = useId();

  const reset = () => {
    setDraft(withActionDefaults(spec));
    setTools(toolDrafts(spec));
    setFollowing(fromCatalogue(spec, catalogueTexts));
    setJson({ overlays: pretty(spec.overlays), extraction_fields: pretty(spec.extraction_fields) });
    setPhones((spec.phone_numbers ?? []).join('\n'));
    setJsonErrors({});
  };
  useEffect(reset, [spec, catalogueTexts]);

  const errors = useMemo(() => ({ ...fieldErrors, ...jsonErrors }), [fieldErrors, jsonErrors]);
  const errorFor = (path: string): string | undefined =>
    errors[path] ?? Object.entries(errors).find(([k]) => k.startsWith(`${path}.`))?.[1];

  const set = (path: string, value: unknown) => setDraft((d) => setPath(d, path, value));
  const f = (field: string): string => t(`agentForm.fields.${field}`);
  const emptyIs = (value: string): string => t('agentForm.emptyIs', { value });

  function submit(e: FormEvent) {
    e.preventDefault();
    const parsed: Draft = {};
    const bad: FieldErrors = {};
    for (const key of ['overlays', 'extraction_fields'] as const) {
      try {
        const v: unknown = JSON.parse(json[key] || '{}');
        if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(t('agentForm.mustBeObject'));
        parsed[key] = v;
      } catch (err) {
        bad[key] = t('agentForm.invalidJson', { message: (err as Error).message });
      }
    }
    const checked = draftsToTools(tools);
    Object.assign(bad, checked.errors);
    setJsonErrors(bad);
    if (Object.keys(bad).length) return;
    const texts = Object.fromEntries(
      TEXT_FIELDS.map((key) => [key, following.has(key) ? null : ((draft[key] as string | null | undefined) ?? null)]),
    );
    onSave({
      ...(draft as unknown as AgentSpecWrite),
      ...texts,
      ...(parsed as Partial<AgentSpecWrite>),
      phone_numbers: parsePhoneNumbers(phones),
      tools: checked.tools,
    });
  }

  // the language the catalogue texts will follow once saved, when the form changed it
  const draftLanguage = String(draft.language ?? '').trim();
  const newLanguage = draftLanguage && draftLanguage !== spec.language ? draftLanguage : null;

  const editText = (path: string, value: string) => {
    set(path, value);
    setFollowing((prev) => {
      if (!prev.has(path)) return prev;
      const next = new Set(prev);
      next.delete(path);
      return next;
    });
  };
  const resetText = (path: string) => {
    // the text shown is the catalogue's as read when the agent already left it to the catalogue; otherwise the form
    // does not know it (the API resolves it on save)
    set(path, catalogueTexts.includes(path) ? getPath(spec as unknown as Draft, path) ?? '' : '');
    setFollowing((prev) => new Set(prev).add(path));
  };

  // the provider a field refers to: the one chosen, else the worker's default
  const providerOf = (kind: ProviderKind, path: string): ProviderInfo | undefined => {
    const list = catalogue?.[kind] ?? [];
    const chosen = getPath(draft, path);
    return typeof chosen === 'string' && chosen ? list.find((p) => p.name === chosen) : list.find((p) => p.default);
  };
  const tts = providerOf('tts', 'voice.provider');
  const llm = providerOf('llm', 'llm.provider');
  const stt = providerOf('stt', 'stt.provider');
  const models = (p?: ProviderInfo): Suggestion[] =>
    uniq((p?.models ?? []).map((m) => ({ value: m.id, label: m.description || undefined })));
  const voiceName = getPath(draft, 'voice.name');
  const voice = tts?.voices.find((v) => v.name === voiceName);
  const voiceSuggestions = uniq(
    (tts?.voices ?? []).map((v) => ({ value: v.name, label: [v.language, v.gender].filter(Boolean).join(' · ') })),
  );
  const styleSuggestions = uniq((voice ? voice.styles : (tts?.voices ?? []).flatMap((v) => v.styles)).map((st) => ({ value: st })));
  const sttLanguages = uniq((stt?.languages ?? []).map((l) => ({ value: l })));

  const text = (path: string, label: string, opts: { area?: boolean; rows?: number; hint?: string } = {}) => {
    const isText = TEXTS.includes(path);
    const follows = isText && following.has(path);
    const catalogueHint = follows
      ? newLanguage
        ? t('agentForm.catalogue.followsNewLanguage', { language: newLanguage })
        : t('agentForm.catalogue.follows')
      : undefined;
    const hint = [opts.hint, catalogueHint].filter(Boolean).join(' · ') || undefined;
    const placeholder = follows ? t('agentForm.catalogue.placeholder') : undefined;
    const onChange = (value: string) => (isText ? editText(path, value) : set(path, value));
    return (
      <Field
        id={`${formId}-${path}`}
        label={label}
        error={errorFor(path)}
        hint={hint}
        extra={
          isText && !follows ? (
            <button
              type="button"
              className="mt-0.5 text-xs text-sky-700 underline hover:text-sky-900 focus:outline-none focus:ring-2 focus:ring-sky-400"
              aria-label={t('agentForm.catalogue.resetLabel', { field: label })}
              disabled={saving}
              onClick={() => resetText(path)}
            >
              {t('agentForm.catalogue.reset')}
            </button>
          ) : null
        }
      >
        {(props) =>
          opts.area ? (
            <textarea
              {...props}
              rows={opts.rows ?? 3}
              placeholder={placeholder}
              data-catalogue={follows ? 'true' : undefined}
              value={String(getPath(draft, path) ?? '')}
              onChange={(e) => onChange(e.target.value)}
            />
          ) : (
            <input
              {...props}
              placeholder={placeholder}
              data-catalogue={follows ? 'true' : undefined}
              value={String(getPath(draft, path) ?? '')}
              onChange={(e) => onChange(e.target.value)}
            />
          )
        }
      </Field>
    );
  };

  const optional = (path: string, label: string, list?: Suggestion[], hint: string | undefined = t('agentForm.emptyWorkerDefault')) => (
    <Field id={`${formId}-${path}`} label={label} error={errorFor(path)} hint={hint}>
      {(props) => (
        <>
          <input
            {...props}
            list={list?.length ? `${formId}-${path}-list` : undefined}
            value={String(getPath(draft, path) ?? '')}
            onChange={(e) => set(path, e.target.value.trim() === '' ? null : e.target.value)}
          />
          {list?.length ? (
            <datalist id={`${formId}-${path}-list`} data-testid={`${path}-suggestions`}>
              {list.map((p) => (
                <option key={p.value} value={p.value} label={p.label} />
              ))}
            </datalist>
          ) : null}
        </>
      )}
    </Field>
  );

  const providerSelect = (kind: ProviderKind, path: string, label: string) => {
    const list = catalogue?.[kind];
    const current = getPath(draft, path);
    const names = list ? list.map((p) => p.name) : FALLBACK_PROVIDERS[kind];
    const value = typeof current === 'string' ? current : '';
    const fallbackDefault = list?.find((p) => p.default)?.name;
    const chosen = list?.find((p) => p.name === value);
    const hint = chosen && !chosen.usable ? t('agentForm.notUsable', { status: chosen.status }) : undefined;
    return (
      <Field id={`${formId}-${path}`} label={label} error={errorFor(path)} hint={hint}>
        {(props) => (
          <select {...props} value={value} onChange={(e) => set(path, e.target.value === '' ? null : e.target.value)}>
            <option value="">{fallbackDefault ? t('agentForm.workerDefaultNamed', { name: fallbackDefault }) : t('agentForm.workerDefault')}</option>
            {value && !names.includes(value) ? <option value={value}>{value}</option> : null}
            {names.map((name) => {
              const info = list?.find((p) => p.name === name);
              return (
                <option key={name} value={name}>
                  {info && !info.usable ? `${name} (${info.status})` : name}
                </option>
              );
            })}
          </select>
        )}
      </Field>
    );
  };

  const number = (path: string, label: string, step = 'any', hint?: string) => (
    <Field id={`${formId}-${path}`} label={label} error={errorFor(path)} hint={hint}>
      {(props) => (
        <input
          {...props}
          type="number"
          step={step}
          value={getPath(draft, path) === null || getPath(draft, path) === undefined ? '' : String(getPath(draft, path))}
          onChange={(e) => set(path, e.target.value === '' ? null : Number(e.target.value))}
        />
      )}
    </Field>
  );

  const choice = (path: string, label: string, options: { value: string; label: string }[], hint?: string) => (
    <Field id={`${formId}-${path}`} label={label} error={errorFor(path)} hint={hint}>
      {(props) => (
        <select {...props} value={String(getPath(draft, path) ?? '')} disabled={saving} onChange={(e) => set(path, e.target.value)}>
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );

  const checkbox = (path: string, label: string, hint?: string) => (
    <div>
      <label className="flex items-center gap-2 pt-6 text-sm">
        <input type="checkbox" checked={Boolean(getPath(draft, path))} disabled={saving} onChange={(e) => set(path, e.target.checked)} />
        {label}
      </label>
      {hint ? <p className="mt-0.5 text-xs text-slate-500">{hint}</p> : null}
      {errorFor(path) ? <p className="mt-0.5 text-xs text-red-700">{errorFor(path)}</p> : null}
    </div>
  );

  const summary = Object.entries(errors);

  return (
    <form onSubmit={submit} noValidate aria-label={t('agentForm.formLabel')} className="space-y-6">
      {summary.length ? (
        <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-800">
          <p className="font-semibold">{t('agentForm.notSaved')}</p>
          <ul className="mt-1 list-disc pl-5">
            {summary.map(([path, msg]) => (
              <li key={path}>
                <code>{path === '_' ? t('agentForm.wholeAgent') : path}</code>: {msg}
              </li>
            ))}
          </ul>
        </div>
      ) : null}

      <fieldset className="grid gap-4 md:grid-cols-2">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.conversation')}</legend>
        {text('name', f('name'))}
        {text('language', f('language'), { hint: f('languageHint') })}
        <div className="md:col-span-2">{text('system_prompt', f('systemPrompt'), { area: true, rows: 5 })}</div>
        <div className="md:col-span-2">{text('first_message', f('firstMessage'), { area: true, rows: 2, hint: f('firstMessageHint') })}</div>
        {text('reprompt_message', f('reprompt'), { area: true, rows: 2 })}
        {text('silence_goodbye_message', f('silenceGoodbye'), { area: true, rows: 2 })}
        {text('apology_message', f('apology'), { area: true, rows: 2 })}
        {text('max_duration_message', f('maxDuration'), { area: true, rows: 2 })}
        {text('shutdown_message', f('shutdown'), { area: true, rows: 2 })}
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-3">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.voice')}</legend>
        {providerSelect('tts', 'voice.provider', f('voiceProvider'))}
        {optional('voice.name', f('voiceName'), voiceSuggestions, tts?.default_voice ? emptyIs(tts.default_voice) : undefined)}
        {optional('voice.style', f('voiceStyle'), styleSuggestions, f('voiceStyleHint'))}
        {number('voice.rate', f('voiceRate'))}
        {number('voice.pitch', f('voicePitch'))}
        <span />
        {providerSelect('llm', 'llm.provider', f('llmProvider'))}
        {optional('llm.model', f('llmModel'), models(llm), llm?.default_model ? emptyIs(llm.default_model) : undefined)}
        {number('llm.temperature', f('temperature'))}
        {number('llm.max_tokens', f('maxTokens'), '1')}
        <span />
        <span />
        {providerSelect('stt', 'stt.provider', f('sttProvider'))}
        {optional('stt.model', f('sttModel'), models(stt), stt?.default_model ? emptyIs(stt.default_model) : undefined)}
        {optional('stt.language', f('sttLanguage'), sttLanguages, f('sttLanguageHint'))}
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-2">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.telephony')}</legend>
        <Field
          id={`${formId}-phone_numbers`}
          label={f('phoneNumbers')}
          error={errorFor('phone_numbers')}
          hint={f('phoneNumbersHint')}
        >
          {(props) => (
            <textarea
              {...props}
              rows={3}
              className={`${props.className} font-mono`}
              value={phones}
              onChange={(e) => setPhones(e.target.value)}
            />
          )}
        </Field>
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-2">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.tools')}</legend>
        <ToolsEditor drafts={tools} onChange={setTools} errors={errors} disabled={saving} idPrefix={formId} />
        {number('tool_filler_after_ms', f('toolFillerAfter'), '1')}
        {text('tool_filler_message', f('toolFiller'), { area: true, rows: 2 })}
        {text('end_call_message', f('endCall'), { area: true, rows: 2 })}
        {text('transfer_message', f('transfer'), { area: true, rows: 2 })}
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-3">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.dtmf')}</legend>
        {choice(
          'dtmf.mode',
          f('dtmfMode'),
          DTMF_MODES.map((m) => ({ value: m, label: t(`agentForm.dtmfModes.${m}`) })),
        )}
        {choice(
          'dtmf.terminator',
          f('dtmfTerminator'),
          DTMF_TERMINATORS.map((k) => ({ value: k, label: k || t('agentForm.dtmfNoTerminator') })),
        )}
        {checkbox('dtmf.sensitive', f('dtmfSensitive'), f('dtmfSensitiveHint'))}
        {number('dtmf.timeout_s', f('dtmfTimeout'))}
        {number('dtmf.max_digits', f('dtmfMaxDigits'), '1')}
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-2">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.webhook')}</legend>
        {optional('webhook.url', f('webhookUrl'), undefined, f('webhookUrlHint'))}
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-3">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.turn')}</legend>
        {choice(
          'turn.end_of_turn',
          f('endOfTurn'),
          END_OF_TURN_MODES.map((m) => ({ value: m, label: t(`agentForm.endOfTurnModes.${m}`) })),
          t(`agentForm.endOfTurnHints.${getPath(draft, 'turn.end_of_turn') === 'silence' ? 'silence' : 'model'}`),
        )}
        {number('turn.vad_stop_ms', f('vadStop'), '1', f('vadStopHint'))}
        {number('turn.vad_start_ms', f('vadStart'), '1')}
        {number('turn.pause_ms', f('pause'), '1', f('pauseHint'))}
        {number('turn.max_silence_ms', f('maxSilence'), '1', f('maxSilenceHint'))}
        {number('turn.eot_threshold', f('eotThreshold'), '0.05', f('eotThresholdHint'))}
        {number('turn.preempt_ms', f('preempt'), '1', f('preemptHint'))}
        {number('turn.interrupt_min_ms', f('interruptMin'), '1', f('interruptMinHint'))}
        {checkbox('turn.resume_after_false_interruption', f('resumeAfterFalseInterruption'), f('resumeAfterFalseInterruptionHint'))}
        {number('turn.vad_preroll_ms', f('preroll'), '1')}
        {number('turn.silence_timeout_s', f('silenceTimeout'))}
        {number('turn.max_call_s', f('maxCall'))}
      </fieldset>

      <fieldset className="grid gap-4 md:grid-cols-2">
        <legend className="mb-2 text-base font-semibold">{t('agentForm.sections.advanced')}</legend>
        <Field id={`${formId}-extraction`} label={f('extraction')} error={errorFor('extraction_fields')} hint={f('extractionHint')}>
          {(props) => (
            <textarea
              {...props}
              rows={6}
              className={`${props.className} font-mono`}
              value={json.extraction_fields}
              onChange={(e) => setJson((j) => ({ ...j, extraction_fields: e.target.value }))}
            />
          )}
        </Field>
        <Field id={`${formId}-overlays`} label={f('overlays')} error={errorFor('overlays')} hint={f('overlaysHint')}>
          {(props) => (
            <textarea
              {...props}
              rows={6}
              className={`${props.className} font-mono`}
              value={json.overlays}
              onChange={(e) => setJson((j) => ({ ...j, overlays: e.target.value }))}
            />
          )}
        </Field>
      </fieldset>

      <div className="flex items-center gap-3">
        <button type="submit" className="btn-primary" disabled={saving}>
          {saving ? t('agentForm.saving') : t('agentForm.save')}
        </button>
        <button
          type="button"
          className="btn-secondary"
          disabled={saving}
          onClick={reset}
        >
          {t('agentForm.discard')}
        </button>
      </div>
    </form>
  );
}
