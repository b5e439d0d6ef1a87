import { useTranslation } from 'react-i18next';

import type { FieldErrors } from '../../lib/api';
import { HTTP_METHODS, TOOL_KINDS, type HttpMethod, type ToolKind } from '../../lib/types';
import { Field } from './Field';
import { newTool, nextKind, type TargetRow, type ToolDraft } from './toolDrafts';

export interface ToolsEditorProps {
  drafts: ToolDraft[];
  onChange(drafts: ToolDraft[]): void;
  /** the API's 422 errors and the browser's own, by path ("tools", "tools.1", "tools.1.url") */
  errors: FieldErrors;
  disabled: boolean;
  idPrefix: string;
}

/** The agent's tools: built-ins (end the call, transfer it, press keys) and HTTP tools, each with its kind. */
export function ToolsEditor({ drafts, onChange, errors, disabled, idPrefix }: ToolsEditorProps) {
  const { t } = useTranslation();
  const update = (i: number, patch: Partial<ToolDraft>) => onChange(drafts.map((d, j) => (j === i ? { ...d, ...patch } : d)));
  const remove = (i: number) => onChange(drafts.filter((_, j) => j !== i));
  return (
    <div className="space-y-3 md:col-span-2">
      <p className="text-xs text-slate-500">{t('agentForm.tools.hint')}</p>
      {errors.tools ? (
        <p className="text-xs text-red-700" data-testid="tools-error">
          {errors.tools}
        </p>
      ) : null}
      <ol className="space-y-3" aria-label={t('agentForm.tools.list')}>
        {drafts.map((d, i) => (
          <li key={d.key}>
            <ToolCard
              draft={d}
              index={i}
              errors={errors}
              disabled={disabled}
              idPrefix={`${idPrefix}-tool-${d.key}`}
              onChange={(patch) => update(i, patch)}
              onRemove={() => remove(i)}
            />
          </li>
        ))}
      </ol>
      {drafts.length === 0 ? <p className="text-sm text-slate-500">{t('agentForm.tools.none')}</p> : null}
      <button type="button" className="btn-secondary" disabled={disabled} onClick={() => onChange([...drafts, newTool(nextKind(drafts))])}>
        {t('agentForm.tools.add')}
      </button>
    </div>
  );
}

interface CardProps {
  draft: ToolDraft;
  index: number;
  errors: FieldErrors;
  disabled: boolean;
  idPrefix: string;
  onChange(patch: Partial<ToolDraft>): void;
  onRemove(): void;
}

function ToolCard({ draft: d, index, errors, disabled, idPrefix, onChange, onRemove }: CardProps) {
  const { t } = useTranslation();
  const base = `tools.${index}`;
  const err = (field: string): string | undefined =>
    errors[`${base}.${field}`] ?? Object.entries(errors).find(([k]) => k.startsWith(`${base}.${field}.`))?.[1];
  const label = t('agentForm.tools.toolLabel', { n: index + 1, name: d.name || d.kind });
  const setKind = (kind: ToolKind) =>
    onChange({ kind, targets: kind === 'transfer_call' && d.targets.length === 0 ? [{ name: '', number: '' }] : d.targets });
  return (
    <section aria-label={label} data-kind={d.kind} className="rounded-md border border-slate-200 p-3">
      <div className="mb-2 flex items-center justify-between gap-2">
        <h4 className="text-sm font-semibold">{label}</h4>
        <button type="button" className="text-xs text-red-700 underline" disabled={disabled} onClick={onRemove} aria-label={t('agentForm.tools.removeLabel', { name: label })}>
          {t('agentForm.tools.remove')}
        </button>
      </div>
      {errors[base] ? (
        <p role="alert" className="mb-2 text-xs text-red-700">
          {errors[base]}
        </p>
      ) : null}
      <div className="grid gap-3 md:grid-cols-3">
        <Field id={`${idPrefix}-kind`} label={t('agentForm.tools.kind')} error={err('kind')}>
          {(props) => (
            <select {...props} value={d.kind} disabled={disabled} onChange={(e) => setKind(e.target.value as ToolKind)}>
              {TOOL_KINDS.map((k) => (
                <option key={k} value={k}>
                  {t(`agentForm.tools.kinds.${k}`)}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id={`${idPrefix}-name`} label={t('agentForm.tools.name')} error={err('name')} hint={d.kind === 'http' ? t('agentForm.tools.nameHint') : t('agentForm.emptyIs', { value: d.kind })}>
          {(props) => <input {...props} className={`${props.className} font-mono`} value={d.name} onChange={(e) => onChange({ name: e.target.value })} />}
        </Field>
        <Field id={`${idPrefix}-description`} label={t('agentForm.tools.description')} error={err('description')} hint={d.kind === 'http' ? undefined : t('agentForm.tools.descriptionHint')}>
          {(props) => <input {...props} value={d.description} onChange={(e) => onChange({ description: e.target.value })} />}
        </Field>
      </div>
      {d.kind === 'http' ? <HttpFields draft={d} err={err} idPrefix={idPrefix} disabled={disabled} onChange={onChange} /> : null}
      {d.kind === 'transfer_call' ? (
        <TargetsEditor rows={d.targets} error={err('targets')} idPrefix={idPrefix} disabled={disabled} onChange={(targets) => onChange({ targets })} />
      ) : null}
    </section>
  );
}

interface HttpProps {
  draft: ToolDraft;
  err(field: string): string | undefined;
  idPrefix: string;
  disabled: boolean;
  onChange(patch: Partial<ToolDraft>): void;
}

function HttpFields({ draft: d, err, idPrefix, disabled, onChange }: HttpProps) {
  const { t } = useTranslation();
  return (
    <div className="mt-3 grid gap-3 md:grid-cols-3">
      <div className="md:col-span-3">
        <Field id={`${idPrefix}-url`} label={t('agentForm.tools.url')} error={err('url')} hint={t('agentForm.tools.urlHint')}>
          {(props) => <input {...props} type="url" value={d.url} onChange={(e) => onChange({ url: e.target.value })} />}
        </Field>
      </div>
      <Field id={`${idPrefix}-method`} label={t('agentForm.tools.method')} error={err('method')}>
        {(props) => (
          <select {...props} value={d.method} disabled={disabled} onChange={(e) => onChange({ method: e.target.value as HttpMethod })}>
            {HTTP_METHODS.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field id={`${idPrefix}-timeout`} label={t('agentForm.tools.timeout')} error={err('timeout_s')}>
        {(props) => <input {...props} type="number" step="any" value={d.timeout_s} onChange={(e) => onChange({ timeout_s: e.target.value })} />}
      </Field>
      <label className="flex items-center gap-2 self-end pb-2 text-sm">
        <input type="checkbox" checked={d.cancellable} disabled={disabled} onChange={(e) => onChange({ cancellable: e.target.checked })} />
        {t('agentForm.tools.cancellable')}
      </label>
      <div className="md:col-span-3">
        <Field id={`${idPrefix}-parameters`} label={t('agentForm.tools.parameters')} error={err('parameters')} hint={t('agentForm.tools.parametersHint')}>
          {(props) => (
            <textarea {...props} rows={6} className={`${props.className} font-mono`} value={d.parameters} onChange={(e) => onChange({ parameters: e.target.value })} />
          )}
        </Field>
      </div>
    </div>
  );
}

interface TargetsProps {
  rows: TargetRow[];
  error?: string;
  idPrefix: string;
  disabled: boolean;
  onChange(rows: TargetRow[]): void;
}

/** transfer_call's targets: the names the LLM may choose, each with its E.164 number or SIP URI. */
function TargetsEditor({ rows, error, idPrefix, disabled, onChange }: TargetsProps) {
  const { t } = useTranslation();
  const set = (i: number, patch: Partial<TargetRow>) => onChange(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <fieldset className="mt-3" aria-describedby={error ? `${idPrefix}-targets-error` : undefined}>
      <legend className="label">{t('agentForm.tools.targets')}</legend>
      <p className="mb-1 text-xs text-slate-500">{t('agentForm.tools.targetsHint')}</p>
      <ul className="space-y-2">
        {rows.map((r, i) => (
          <li key={i} className="flex items-center gap-2">
            <input
              className="input w-40 font-mono"
              aria-label={t('agentForm.tools.targetName', { n: i + 1 })}
              value={r.name}
              onChange={(e) => set(i, { name: e.target.value })}
            />
            <input
              className="input flex-1 font-mono"
              aria-label={t('agentForm.tools.targetNumber', { n: i + 1 })}
              value={r.number}
              onChange={(e) => set(i, { number: e.target.value })}
            />
            <button type="button" className="text-xs text-red-700 underline" disabled={disabled} onClick={() => onChange(rows.filter((_, j) => j !== i))}>
              {t('agentForm.tools.removeTarget')}
            </button>
          </li>
        ))}
      </ul>
      <button type="button" className="btn-secondary mt-2" disabled={disabled} onClick={() => onChange([...rows, { name: '', number: '' }])}>
        {t('agentForm.tools.addTarget')}
      </button>
      {error ? (
        <p id={`${idPrefix}-targets-error`} className="mt-0.5 text-xs text-red-700">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}
