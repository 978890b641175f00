import type { TokenCredential } from '@azure/identity';

/**
 * `new DefaultAzureCredential()` (managed identity in a Function App, `az login` on a workstation),
 * with @azure/identity loaded on first use: only a deployment that gives an account URL or a
 * namespace instead of a connection string needs it, and loading it cost every process ~0.12 s
 * (every `georeg` command, every Function App cold start on connection strings, every test worker).
 */
export function defaultAzureCredential(): TokenCredential {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DefaultAzureCredential } = require('@azure/identity') as typeof import('@azure/identity');
  return new DefaultAzureCredential();
}
