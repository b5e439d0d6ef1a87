/// <reference types="vitest" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `npm run dev` proxies the API and the simulator WebSocket to a gateway on :8000 (`make run` or `make run-fake`).
const gateway = process.env.VICTORIA_GATEWAY ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600 },
  server: {
    proxy: {
      '/api': gateway,
      '/admin': gateway,
      '/health': gateway,
      '/ws': { target: gateway.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    // userEvent types key by key: on 2 busy cores the long form tests (the HTTP tool editor) took over the 5 s default
    testTimeout: 15_000,
  },
});
