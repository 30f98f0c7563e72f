/**
 * What a CLI run talks to. The real process passes its own streams; tests pass string sinks and
 * call `main(argv, io)` in-process.
 */
import readline from 'node:readline';

export interface OutputStream {
  write(text: string): unknown;
  /** A terminal: progress bars redraw in place. */
  isTTY?: boolean;
}

export interface CliIO {
  stdout: OutputStream;
  stderr: OutputStream;
  /** The whole of stdin as text, or undefined when stdin is a terminal (nothing piped in). */
  readStdin(): Promise<string | undefined>;
  /** Stdin line by line as it comes, typed or piped (interactive commands: chat); without it, readStdin's lines. */
  readLines?(): AsyncIterable<string>;
  /**
   * Call `onInterrupt` on the next Ctrl-C instead of exiting (generation stops early and still
   * reports what it did); returns a function that puts the default back. Only long async work
   * uses it: synchronous work could not notice the flag anyway.
   */
  trapInterrupt?(onInterrupt: () => void): () => void;
}

export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    readStdin: async () => {
      if (process.stdin.isTTY) return undefined;
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    // terminal: false leaves line editing and Ctrl-C to the terminal, as for any line-reading program.
    readLines: () => readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false }),
    trapInterrupt: (onInterrupt) => {
      process.once('SIGINT', onInterrupt); // a second Ctrl-C finds no listener and exits as usual
      return () => process.removeListener('SIGINT', onInterrupt);
    },
  };
}
