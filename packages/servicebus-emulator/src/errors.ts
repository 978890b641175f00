/** An administration request the namespace refuses; the admin API maps `reason` to 404/409/400. */
export class EntityRequestError extends Error {
  constructor(
    readonly reason: 'not-found' | 'conflict' | 'bad-request',
    message: string,
  ) {
    super(message);
    this.name = 'EntityRequestError';
  }
}
