// The agent's tools as the form edits them (text fields, the JSON schema as typed, transfer targets as rows) and
// back to ToolDef for the API. The browser checks only what it can (the schema is JSON, target names are not
// repeated); everything else is the API's 422, shown next to the same field paths ("tools.1.url").

import i18n from '../../i18n';
import type { FieldErrors } from '../../lib/api';
import { BUILT_IN_KINDS, type HttpMethod, type ToolDef, type ToolKind } from '../../lib/types';

export interface TargetRow {
  name: string;
  number: string;
}

export interface ToolDraft {
  /** stable React key: rows are added and removed */
  key: number;
  kind: ToolKind;
  name: string;
  description: string;
  url: string;
  method: HttpMethod;
  timeout_s: string;
  cancellable: boolean;
  /** the JSON schema as typed ('' = none) */
  parameters: string;
  targets: TargetRow[];
}

let nextKey = 1;

export const EXAMPLE_PARAMETERS = JSON.stringify(
  { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
  null,
  2,
);

export function newTool(kind: ToolKind): ToolDraft {
  return {
    key: nextKey++,
    kind,
    name: '',
    description: '',
    url: '',
    method: 'POST',
    timeout_s: '5',
    cancellable: true,
    parameters: kind === 'http' ? EXAMPLE_PARAMETERS : '',
    targets: kind === 'transfer_call' ? [{ name: '', number: '' }] : [],
  };
}

export function toolToDraft(tool: ToolDef): ToolDraft {
  return {
    ...newTool(tool.kind),
    name: tool.name ?? '',
    description: tool.description ?? '',
    url: tool.url ?? '',
    method: tool.method ?? 'POST',
    timeout_s: tool.timeout_s == null ? '' : String(tool.timeout_s),
    cancellable: tool.cancellable ?? true,
    parameters: tool.parameters == null ? '' : JSON.stringify(tool.parameters, null, 2),
    targets: Object.entries(tool.targets ?? {}).map(([name, number]) => ({ name, number })),
  };
}

/** The first kind to offer for a new tool: a built-in the agent lacks, else an HTTP tool. */
export function nextKind(drafts: readonly ToolDraft[]): ToolKind {
  return BUILT_IN_KINDS.find((k) => !drafts.some((d) => d.kind === k)) ?? 'http';
}

const blankToNull = (v: string): string | null => (v.trim() === '' ? null : v.trim());

function parseParameters(text: string): Record<string, unknown> | null {
  if (text.trim() === '') return null;
  const v: unknown = JSON.parse(text);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(i18n.t('agentForm.mustBeObject'));
  return v as Record<string, unknown>;
}

/** One draft as the API takes it: only the fields its kind allows (a built-in's url and parameters are fixed). */
function draftToTool(d: ToolDraft, i: number, errors: FieldErrors): ToolDef {
  const tool: ToolDef = {
    kind: d.kind,
    name: blankToNull(d.name),
    description: blankToNull(d.description),
    method: d.method,
    cancellable: d.cancellable,
  };
  if (d.timeout_s.trim() !== '') tool.timeout_s = Number(d.timeout_s);
  if (d.kind === 'http') {
    tool.url = blankToNull(d.url);
    try {
      tool.parameters = parseParameters(d.parameters);
    } catch (err) {
      errors[`tools.${i}.parameters`] = i18n.t('agentForm.invalidJson', { message: (err as Error).message });
    }
  }
  if (d.kind === 'transfer_call') {
    const targets: Record<string, string> = {};
    for (const row of d.targets) {
      const name = row.name.trim();
      if (!name && !row.number.trim()) continue;
      if (Object.prototype.hasOwnProperty.call(targets, name)) errors[`tools.${i}.targets`] = i18n.t('agentForm.tools.duplicateTarget', { name });
      targets[name] = row.number.replace(/[\s()-]/g, '');
    }
    tool.targets = targets;
  }
  return tool;
}

/** The drafts as ToolDefs, or the browser's own errors by field path (nothing is sent while there are any). */
export function draftsToTools(drafts: readonly ToolDraft[]): { tools: ToolDef[]; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const tools = drafts.map((d, i) => draftToTool(d, i, errors));
  return { tools, errors };
}
