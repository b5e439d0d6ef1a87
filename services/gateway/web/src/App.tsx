import { useEffect } from 'react';
import { Link, NavLink, Navigate, Route, Routes, useLocation } from 'react-router-dom';

import { useAppDispatch, useAppSelector } from './app/hooks';

import { AgentsPage } from './features/agents/AgentsPage';
import { ApiKeyInput } from './features/auth/ApiKeyInput';
import { CallDetailPage } from './features/history/CallDetailPage';
import { HistoryPage } from './features/history/HistoryPage';
import { SimulatorPage } from './features/simulator/SimulatorPage';
import { StatusPage } from './features/status/StatusPage';
import { fetchLive } from './features/status/statusSlice';

const NAV = [
  { to: '/', label: 'Simulator', end: true },
  { to: '/agents', label: 'Agents', end: false },
  { to: '/history', label: 'History', end: false },
  { to: '/status', label: 'Status', end: false },
];

/** On every page but Status (which has the full banner): a line when the global stop refuses new calls. */
function GlobalStopNotice() {
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
      Global stop: new calls are refused ({stop.reason || 'no reason given'}).{' '}
      <Link to="/status" className="font-semibold underline">
        Details and reset
      </Link>
    </div>
  );
}

export function App() {
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:p-2">
        Skip to content
      </a>
      <header className="bg-slate-900 text-white">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-4 px-4 py-3">
          <span className="text-lg font-bold tracking-tight">Victoria</span>
          <nav aria-label="Main" className="flex gap-1">
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
                {n.label}
              </NavLink>
            ))}
          </nav>
          <div className="ml-auto">
            <ApiKeyInput />
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
          <Route path="*" element={<p className="text-slate-600">Page not found.</p>} />
        </Routes>
      </main>
    </div>
  );
}
