import { NavLink, Route, Routes } from 'react-router-dom';

import { AgentsPage } from './features/agents/AgentsPage';
import { ApiKeyInput } from './features/auth/ApiKeyInput';
import { CallDetailPage } from './features/history/CallDetailPage';
import { HistoryPage } from './features/history/HistoryPage';
import { SimulatorPage } from './features/simulator/SimulatorPage';
import { StatusPage } from './features/status/StatusPage';

const NAV = [
  { to: '/', label: 'Simulator', end: true },
  { to: '/agents', label: 'Agents', end: false },
  { to: '/history', label: 'History', end: false },
  { to: '/status', label: 'Status', end: false },
];

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
      <main id="main" className="mx-auto max-w-7xl px-4 py-6">
        <Routes>
          <Route path="/" element={<SimulatorPage />} />
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
