/**
 * Ends a command with an exit code once it has said why (doctor's failed checks): `run()` returns
 * the code instead of printing an error, so the CLI also runs in-process (tests) without exiting.
 */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = 'ExitCode';
  }
}
