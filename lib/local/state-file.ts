import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatStateFile, LocalState } from '../core/deployment';

/** Writes atomically, so a client polling for the file never reads half of it; creates the file's directory. */
export function writeStateFile(path: string, state: LocalState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, formatStateFile(state));
  renameSync(tmp, path);
}
