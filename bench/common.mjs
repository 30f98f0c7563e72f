/** What the bench scripts share: the median they report and how they stop on bad input. */

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Print `bench: message` and exit with status 2 (bad options or a missing build). */
export function die(message) {
  console.error(`bench: ${message}`);
  process.exit(2);
}
