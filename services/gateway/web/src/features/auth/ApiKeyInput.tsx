import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';

import { useAppDispatch, useAppSelector } from '../../app/hooks';
import { apiKeySet } from './authSlice';

/** The API key sent as X-API-Key on /api/v1 (kept in this browser's localStorage). */
export function ApiKeyInput() {
  const { t } = useTranslation();
  const dispatch = useAppDispatch();
  const saved = useAppSelector((s) => s.auth.apiKey);
  const [value, setValue] = useState(saved);
  const [shown, setShown] = useState(false);

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    dispatch(apiKeySet(value));
  }

  return (
    <form onSubmit={onSubmit} className="flex items-center gap-2 text-sm" aria-label={t('auth.formLabel')}>
      <label htmlFor="api-key" className="text-slate-300">
        {t('auth.label')}
      </label>
      <input
        id="api-key"
        type={shown ? 'text' : 'password'}
        value={value}
        onChange={(e) => setValue(e.target.value)}
        placeholder={t('auth.placeholder')}
        autoComplete="off"
        className="w-48 rounded border border-slate-600 bg-slate-800 px-2 py-1 text-slate-100 placeholder:text-slate-500 focus:outline-none focus:ring-2 focus:ring-sky-400"
      />
      <button
        type="button"
        onClick={() => setShown((v) => !v)}
        className="rounded px-2 py-1 text-slate-300 hover:text-white focus:outline-none focus:ring-2 focus:ring-sky-400"
        aria-pressed={shown}
      >
        {shown ? t('auth.hide') : t('auth.show')}
      </button>
      <button
        type="submit"
        className="rounded bg-sky-600 px-2 py-1 font-medium text-white hover:bg-sky-500 focus:outline-none focus:ring-2 focus:ring-sky-300"
      >
        {t('auth.save')}
      </button>
      {saved === value.trim() && saved ? <span className="text-emerald-400" aria-live="polite">{t('auth.saved')}</span> : null}
    </form>
  );
}
