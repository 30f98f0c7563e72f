/*
 * DRAM read bandwidth, for bench/run.mjs's "decode as % of bandwidth" column.
 *
 *   bandwidth THREADS [BUFFER_MIB] [PASSES]    prints one JSON line: {"threads", "buffer_mib", "gb_s", ...}
 *
 * Decode of a model bigger than the caches reads every weight once per token, so the figure that
 * bounds it is read-only streaming from DRAM: THREADS threads each sum their own contiguous share
 * of a buffer far larger than the last-level cache (default: 8 x L3, at least 1 GiB), all passes
 * started together; one pass moves the whole buffer and the best pass counts (GB = 1e9 bytes).
 * The buffer is written once first so that its pages are real memory (untouched pages all map
 * the kernel's zero page and would read from cache). Built by bench/bandwidth.mjs with
 * `cc -O3 -march=native -pthread`, so the loop is vectorised with the CPU's widest loads.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  const uint64_t *words;
  size_t count;
  uint64_t sum; /* printed, so the compiler cannot drop the reads */
} Share;

static pthread_barrier_t pass_start, pass_end;
static int passes;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Eight independent sums so the loads are not serialised behind one add chain. */
static uint64_t sum_words(const uint64_t *w, size_t n) {
  uint64_t s[8] = {0};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) s[k] += w[i + k];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void *reader(void *arg) {
  Share *share = arg;
  for (int p = 0; p < passes; p++) {
    pthread_barrier_wait(&pass_start);
    share->sum += sum_words(share->words, share->count);
    pthread_barrier_wait(&pass_end);
  }
  return NULL;
}

static size_t default_buffer_mib(void) {
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  size_t mib = l3 > 0 ? (size_t)(8 * (l3 >> 20)) : 0;
  return mib < 1024 ? 1024 : mib;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bandwidth THREADS [BUFFER_MIB] [PASSES]\n");
    return 2;
  }
  int threads = atoi(argv[1]);
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : default_buffer_mib();
  passes = argc > 3 ? atoi(argv[3]) : 10;
  if (threads < 1 || threads > 256 || mib < 1 || passes < 1) {
    fprintf(stderr, "bandwidth: bad arguments\n");
    return 2;
  }
  size_t bytes = mib << 20;
  uint64_t *buffer = aligned_alloc(4096, bytes);
  if (!buffer) {
    fprintf(stderr, "bandwidth: cannot allocate %zu MiB\n", mib);
    return 1;
  }
  memset(buffer, 1, bytes);

  size_t words = bytes / sizeof(uint64_t), per_thread = words / (size_t)threads;
  Share *shares = calloc((size_t)threads, sizeof(Share));
  pthread_t *ids = calloc((size_t)threads, sizeof(pthread_t));
  pthread_barrier_init(&pass_start, NULL, (unsigned)threads + 1);
  pthread_barrier_init(&pass_end, NULL, (unsigned)threads + 1);
  for (int t = 0; t < threads; t++) {
    shares[t] = (Share){buffer + (size_t)t * per_thread, per_thread, 0};
    pthread_create(&ids[t], NULL, reader, &shares[t]);
  }

  double best = 0;
  for (int p = 0; p < passes; p++) {
    pthread_barrier_wait(&pass_start);
    double start = now_s();
    pthread_barrier_wait(&pass_end);
    double gb_s = (double)(per_thread * (size_t)threads * sizeof(uint64_t)) / (now_s() - start) / 1e9;
    if (gb_s > best) best = gb_s;
  }
  uint64_t check = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(ids[t], NULL);
    check += shares[t].sum;
  }
  printf("{\"threads\": %d, \"buffer_mib\": %zu, \"passes\": %d, \"gb_s\": %.3f, \"check\": %llu}\n",
         threads, mib, passes, best, (unsigned long long)check);
  return 0;
}
