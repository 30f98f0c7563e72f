/**
 * The server's Prometheus metrics, written out in the text exposition format for GET /metrics:
 * counters, the queue gauges and two latency histograms (time to first token, inter-token).
 */
import type { EngineStats } from './engine.js';

/** Upper bounds in seconds, from 1 ms to 60 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class Histogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  private sum = 0;
  private count = 0;

  observe(seconds: number): void {
    const bucket = LATENCY_BUCKETS.findIndex((bound) => seconds <= bound);
    if (bucket >= 0) this.counts[bucket]++;
    this.sum += seconds;
    this.count++;
  }

  lines(name: string): string[] {
    let cumulative = 0;
    const buckets = LATENCY_BUCKETS.map((bound, i) => {
      cumulative += this.counts[i];
      return `${name}_bucket{le="${bound}"} ${cumulative}`;
    });
    return [...buckets, `${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`];
  }
}

export class ServerMetrics {
  /** Finished requests by endpoint and HTTP status. */
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  generatedTokens = 0;
  readonly timeToFirstToken = new Histogram();
  readonly interTokenLatency = new Histogram();

  countRequest(endpoint: string, status: number): void {
    const key = `endpoint="${endpoint}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  render(stats: EngineStats): string {
    const metric = (name: string, type: string, help: string, lines: string[]): string[] => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines];
    return [
      ...metric('smallmind_requests_total', 'counter', 'HTTP requests answered, by endpoint and status.',
        [...this.requests].map(([labels, n]) => `smallmind_requests_total{${labels}} ${n}`)),
      ...metric('smallmind_prompt_tokens_total', 'counter', 'Prompt tokens processed.', [`smallmind_prompt_tokens_total ${this.promptTokens}`]),
      ...metric('smallmind_generated_tokens_total', 'counter', 'Tokens generated.', [`smallmind_generated_tokens_total ${this.generatedTokens}`]),
      ...metric('smallmind_queue_depth', 'gauge', 'Requests waiting for their turn.', [`smallmind_queue_depth ${stats.queued}`]),
      ...metric('smallmind_requests_running', 'gauge', 'Requests generating now.', [`smallmind_requests_running ${stats.running}`]),
      ...metric('smallmind_time_to_first_token_seconds', 'histogram', 'From the request to its first generated token.',
        this.timeToFirstToken.lines('smallmind_time_to_first_token_seconds')),
      ...metric('smallmind_inter_token_latency_seconds', 'histogram', 'Between consecutive generated tokens of a sequence.',
        this.interTokenLatency.lines('smallmind_inter_token_latency_seconds')),
    ].join('\n') + '\n';
  }
}
