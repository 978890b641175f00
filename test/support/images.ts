/**
 * Generated images for tests: the same generator `georeg push --generate`, `npm start` and the
 * bench use (src/registry/generate.ts), named here so tests take their fixtures from test/support.
 */
export { generated, type GenerateOptions } from '../../src/registry/generate';
