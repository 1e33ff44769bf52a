// Errors. A MoetsError is something a user can cause or fix (bad file, bad flag, bad input): the CLI prints
// its message as one line and exits non-zero. Anything else that escapes is a bug and keeps its stack trace.

export type ErrorKind =
  | 'usage'        // a bad flag or argument
  | 'not-found'    // a path or tensor that does not exist
  | 'format'       // a malformed file (safetensors, config.json, tokenizer.json)
  | 'unsupported'  // a valid input moets does not handle (model_type, dtype)
  | 'input'        // bad data passed at run time (token ids out of range)
  | 'device';      // a backend that cannot run here (no GPU, library missing)

export class MoetsError extends Error {
  constructor(readonly kind: ErrorKind, message: string) {
    super(message);
    this.name = 'MoetsError';
  }
}

export function fail(kind: ErrorKind, message: string): never {
  throw new MoetsError(kind, message);
}

/** Internal invariant: a failure here is a bug in moets, not bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`internal error: ${message}`);
}
