/** Run the CLI in-process with captured output (shared by the CLI test files). */
import { main } from '../../src/cli/main.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(argv: string[], stdin?: string): Promise<Run> {
  const out = { text: '', write: (t: string) => (out.text += t) };
  const err = { text: '', write: (t: string) => (err.text += t) };
  const code = await main(argv, { stdout: out, stderr: err, readStdin: async () => stdin });
  return { code, stdout: out.text, stderr: err.text };
}
