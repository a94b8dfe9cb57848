// vitest helper for the API server's tests (imports vitest: only test files import it).
import { expect } from 'vitest';
import { KubeApiError } from '../../lib/kube/client.js';

/** Awaits a request that must be refused with `code` and a Kubernetes Failure Status; returns the error. */
export async function expectApiError(p: Promise<unknown>, code: number): Promise<KubeApiError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(KubeApiError);
  const err = e as KubeApiError;
  expect(err.code).toBe(code);
  expect(err.status).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code });
  return err;
}
