import { useTranslation } from 'react-i18next';

import { KEYPAD_KEYS } from './keypad';

/** A phone keypad: each key is sent to the call as a DTMF digit, as a phone line would. */
export function Keypad({ enabled, keys, onPress }: { enabled: boolean; keys: string; onPress(digit: string): void }) {
  const { t } = useTranslation();
  return (
    <div>
      <div role="group" aria-label={t('simulator.keypad')} className="grid w-44 grid-cols-3 gap-1.5">
        {KEYPAD_KEYS.map((k) => (
          <button
            key={k}
            type="button"
            disabled={!enabled}
            onClick={() => onPress(k)}
            className="rounded-md border border-slate-300 bg-white py-2 font-mono text-lg hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-sky-400 disabled:opacity-40"
          >
            {k}
          </button>
        ))}
      </div>
      <p className="mt-2 text-xs text-slate-500" data-testid="keys-sent">
        {keys ? t('simulator.keysSent', { keys }) : enabled ? t('simulator.keypadHint') : t('simulator.keypadIdle')}
      </p>
    </div>
  );
}
