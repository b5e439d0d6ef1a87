// The dashboard's languages: Spanish and English (i18next + react-i18next). The browser's language decides by default
// (es* → es, anything else → en); the ES / EN switch in the header overrides it and is remembered in localStorage.
import i18n from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import { initReactI18next } from 'react-i18next';

import en from './en.json';
import es from './es.json';

export const LANGUAGES = ['es', 'en'] as const;
export type Language = (typeof LANGUAGES)[number];
export const LANGUAGE_STORAGE = 'victoria.language';

/** Any language tag → one of ours: es, es-ES, es-419 … → es; anything else → en. */
export function toLanguage(tag: string | null | undefined): Language {
  return typeof tag === 'string' && /^es\b/i.test(tag.trim()) ? 'es' : 'en';
}

/** The Intl locale for dates and numbers in the chosen language. */
export function intlLocale(lng: string = i18n.resolvedLanguage ?? i18n.language): string {
  return toLanguage(lng) === 'es' ? 'es-ES' : 'en-US';
}

export const resources = { en: { translation: en }, es: { translation: es } } as const;

void i18n
  .use(LanguageDetector)
  .use(initReactI18next)
  .init({
    resources,
    supportedLngs: [...LANGUAGES],
    fallbackLng: 'en',
    load: 'languageOnly',
    initAsync: false, // the resources are bundled: ready before the first render, no flash of keys
    interpolation: { escapeValue: false }, // React escapes
    detection: {
      // a choice made with the switch first, then the browser's languages; stored only when the user switches
      order: ['localStorage', 'navigator'],
      lookupLocalStorage: LANGUAGE_STORAGE,
      caches: [],
      convertDetectedLanguage: (lng: string) => toLanguage(lng),
    },
    react: { useSuspense: false },
  });

const syncHtmlLang = (lng: string) => {
  if (typeof document !== 'undefined') document.documentElement.lang = toLanguage(lng);
};
syncHtmlLang(i18n.language);
i18n.on('languageChanged', syncHtmlLang);

/** The switch: change the language now and remember it in this browser. */
export function setLanguage(lng: Language): Promise<unknown> {
  try {
    window.localStorage.setItem(LANGUAGE_STORAGE, lng);
  } catch {
    // storage unavailable (private mode): the choice lasts until the page reloads
  }
  return i18n.changeLanguage(lng);
}

export default i18n;
