import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HttpOutput } from '../common/http';

/**
 * `GET /api/dashboard` and its script and stylesheet: static files from `src/ops/dashboard/`,
 * served without a key. They hold no data: the page's own calls (`/api/overview`,
 * `/api/deadletters`) carry the key, which the page takes from `?key=` once. Asking for a key here
 * too would put it in the address of every asset request and in the server's access logs.
 */

const FILES: Record<string, string> = {
  '': 'index.html',
  'dashboard.js': 'dashboard.js',
  'dashboard.css': 'dashboard.css',
};

const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

// Only what the page is built from: scripts and styles from georeg itself, calls back to georeg.
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
};

/** The folder holding the files: next to this module under tsx, in src/ when run from dist/. */
const DIR = [join(__dirname, 'dashboard'), join(__dirname, '..', '..', '..', 'src', 'ops', 'dashboard')].find((d) => existsSync(join(d, 'index.html')));

export function handleDashboard(file: string | undefined): HttpOutput {
  const name = FILES[file ?? ''];
  if (!name) return { status: 404, jsonBody: { error: `the dashboard has no file "${file}": open /api/dashboard?key=<key>` } };
  if (!DIR) return { status: 500, jsonBody: { error: 'the dashboard files (src/ops/dashboard/) are missing from this deployment: include src/ops/dashboard in the package' } };
  return { status: 200, body: readFileSync(join(DIR, name), 'utf8'), headers: { 'Content-Type': TYPES[name.split('.').pop()!], ...SECURITY_HEADERS } };
}
