/** The error a promise rejects with, to assert on (it fails the test when the promise resolves). */
export interface RejectedError {
  type?: string;
  code?: number;
  data?: any;
  message: string;
}

export async function errorOf(promise: Promise<unknown>): Promise<RejectedError> {
  try {
    await promise;
  } catch (err) {
    return err as RejectedError;
  }
  throw new Error("expected the call to fail, but it succeeded");
}
