import type { ReactNode } from 'react';

/** The props a form control gets from its Field: its id, error state and the ids of the texts that describe it. */
export interface ControlProps {
  id: string;
  className: string;
  'aria-invalid': boolean;
  'aria-describedby'?: string;
}

export function Field({
  id,
  label,
  error,
  hint,
  extra,
  children,
}: {
  id: string;
  label: string;
  error?: string;
  hint?: string;
  /** shown under the hint (e.g. a "reset to catalogue" button) */
  extra?: ReactNode;
  children: (props: ControlProps) => ReactNode;
}) {
  const described = [error ? `${id}-error` : null, hint ? `${id}-hint` : null].filter(Boolean).join(' ') || undefined;
  return (
    <div>
      <label htmlFor={id} className="label">
        {label}
      </label>
      {children({ id, className: 'input', 'aria-invalid': Boolean(error), 'aria-describedby': described })}
      {hint ? (
        <p id={`${id}-hint`} className="mt-0.5 text-xs text-slate-500">
          {hint}
        </p>
      ) : null}
      {extra}
      {error ? (
        <p id={`${id}-error`} className="mt-0.5 text-xs text-red-700">
          {error}
        </p>
      ) : null}
    </div>
  );
}
