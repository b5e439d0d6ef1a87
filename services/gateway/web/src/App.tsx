import { useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, NavLink, Navigate, Route, Routes, useLocation } from 'react-router-dom';

import { useAppDispatch, useAppSelector } from './app/hooks';

import { AgentsPage } from './features/agents/AgentsPage';
import { ApiKeyInput } from './features/auth/ApiKeyInput';
import { CallDetailPage } from './features/history/CallDetailPage';
import { HistoryPage } from './features/history/HistoryPage';
import { SimulatorPage } from './features/simulator/SimulatorPage';
import { StatusPage } from './features/status/StatusPage';
import { fetchLive } from './features/status/statusSlice';
import { LANGUAGES, setLanguage, toLanguage } from './i18n';

const NAV = [
  { to: '/', key: 'simulator', end: true },
  { to: '/agents', key: 'agents', end: false },
  { to: '/history', key: 'history', end: false },
  { to: '/status', key: 'status', end: false },
] as const;

/** ES / EN in the header: the chosen language is remembered in this browser (else the browser's language decides). */
export function LanguageSwitch() {
  const { t, i18n } = useTranslation();
  const current = toLanguage(i18n.resolvedLanguage ?? i18n.language);
  return (
    <div role="group" aria-label={t('app.language')} className="flex overflow-hidden rounded-md border border-slate-600 text-xs">
      {LANGUAGES.map((lng) => (
        <button
          key={lng}
          type="button"
          lang={lng}
          title={t(`app.languageNames.${lng}`)}
          aria-pressed={current === lng}
          onClick={() => void setLanguage(lng)}
          className={`px-2 py-1 font-semibold focus:outline-none focus:ring-2 focus:ring-sky-400 ${
            current === lng ? 'bg-slate-200 text-slate-900' : 'text-slate-300 hover:bg-slate-800 hover:text-white'
          }`}
        >
          {lng.toUpperCase()}
        </button>
      ))}
    </div>
  );
}

/** On every page but Status (which has the full banner): a line when the global stop refuses new calls. */
function GlobalStopNotice() {
  const { t } = useTranslation();
  const dispatch = useAppDispatch();
  const stop = useAppSelector((s) => s.status.live?.global_stop);
  const apiKey = useAppSelector((s) => s.auth.apiKey);
  const { pathname } = useLocation();
  useEffect(() => {
    void dispatch(fetchLive());
    const timer = window.setInterval(() => void dispatch(fetchLive()), 15000);
    return () => window.clearInterval(timer);
  }, [dispatch, apiKey]);
  if (!stop?.active || pathname === '/status') return null;
  return (
    <div role="alert" className="bg-red-600 px-4 py-2 text-center text-sm text-white">
      {t('app.globalStop', { reason: stop.reason || t('app.noReason') })}{' '}
      <Link to="/status" className="font-semibold underline">
        {t('app.detailsAndReset')}
      </Link>
    </div>
  );
}

export function App() {
  const { t } = useTranslation();
  const title = t('app.title');
  useEffect(() => {
    document.title = title;
  }, [title]);
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:p-2">
        {t('app.skipToContent')}
      </a>
      <header className="bg-slate-900 text-white">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-4 px-4 py-3">
          <span className="text-lg font-bold tracking-tight">Victoria</span>
          <nav aria-label={t('app.mainNav')} className="flex gap-1">
            {NAV.map((n) => (
              <NavLink
                key={n.to}
                to={n.to}
                end={n.end}
                className={({ isActive }) =>
                  `rounded-md px-3 py-1.5 text-sm focus:outline-none focus:ring-2 focus:ring-sky-400 ${
                    isActive ? 'bg-slate-700 font-semibold' : 'text-slate-300 hover:bg-slate-800 hover:text-white'
                  }`
                }
              >
                {t(`app.nav.${n.key}`)}
              </NavLink>
            ))}
          </nav>
          <div className="ml-auto flex flex-wrap items-center gap-3">
            <ApiKeyInput />
            <LanguageSwitch />
          </div>
        </div>
      </header>
      <GlobalStopNotice />
      <main id="main" className="mx-auto max-w-7xl px-4 py-6">
        <Routes>
          <Route path="/" element={<SimulatorPage />} />
          {/* the old single-file simulator's address: old bookmarks land on this one */}
          <Route path="/simulator.html" element={<Navigate to="/" replace />} />
          <Route path="/agents" element={<AgentsPage />} />
          <Route path="/history" element={<HistoryPage />} />
          <Route path="/history/:callId" element={<CallDetailPage />} />
          <Route path="/status" element={<StatusPage />} />
          <Route path="*" element={<p className="text-slate-600">{t('app.notFound')}</p>} />
        </Routes>
      </main>
    </div>
  );
}
