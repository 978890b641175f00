/**
 * Generated images for tests: the same generator `georeg push --generate`, `npm start` and the
 * bench use (it lives with the CLI for them), named here so tests take their fixtures from
 * test/support.
 */
export { generated } from '../../src/cli/push-command';
