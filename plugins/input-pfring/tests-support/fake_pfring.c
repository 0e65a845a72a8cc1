/*
 * fake_pfring.c: a test double for libpfring.so (PF_RING 8 API subset used by shadowtap's
 * input-pfring). It serves the packets of a classic pcap file through the PF_RING C API,
 * including cluster distribution over several rings of the same process.
 *
 * Build: cc -shared -fPIC -O2 -o libpfring.so fake_pfring.c
 *
 * Environment:
 *   FAKE_PFRING_PCAP=FILE        classic pcap (Ethernet) whose packets every cluster serves once
 *   FAKE_PFRING_DROP_EVERY=N     every Nth packet (per cluster) is dropped and counted in
 *                                pfring_stats().drop of the ring it was meant for
 *   FAKE_PFRING_EOF=error        at end of file pfring_recv() returns -1 (default: 0, "no packet",
 *                                forever, as a live interface does)
 *   FAKE_PFRING_OPEN_ERRNO=N     pfring_open() fails with errno N (97 = EAFNOSUPPORT: the kernel
 *                                module is not loaded)
 *   FAKE_PFRING_LOG=FILE         appends one line per API call and per dispatched packet
 *
 * Semantics: rings that join the same cluster id share the file's packets; each packet goes to
 * exactly one member, chosen per flow (hash of the sorted <ip, port> pairs and the protocol:
 * both directions of a connection go to the same ring) or round-robin. A ring in no cluster
 * sees every packet. Membership is frozen at the cluster's first pfring_recv(). One global
 * mutex serialises everything; packets meant for other rings wait in their queues, so each
 * pfring_recv() on ring k returns the next packet assigned to k. Packet timestamps are moved
 * so that the first packet is stamped with the wall clock time of the first pfring_recv().
 * pfring_open() fails with ENODEV when the interface does not exist in the calling thread's
 * network namespace (which makes netns switching observable).
 */
#include <errno.h>
#include <stdarg.h>
#include <net/if.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_MEMBERS 64
#define MAX_CLUSTERS 64

struct pfring_pkthdr_prefix { struct timeval ts; uint32_t caplen; uint32_t len; };
typedef struct { uint64_t recv; uint64_t drop; uint64_t shunt; } pfring_stat;

struct pkt {
  struct pkt *next;
  struct timeval ts;
  uint32_t caplen, len;
  unsigned char data[];
};

struct cluster;

typedef struct fake_ring {
  char device[128];
  uint32_t caplen, flags;
  int enabled, breakloop;
  struct cluster *cluster;
  int member; /* index in the cluster */
  struct pkt *head, *tail, *current;
  uint64_t recv, drop;
} pfring;

struct cluster {
  unsigned id; /* (unsigned)-1: private */
  int type;
  int started, eof;
  int members;
  pfring *rings[MAX_MEMBERS];
  FILE *file;
  int swapped, nsec;
  uint64_t seq;
  int64_t offset_us;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct cluster *clusters[MAX_CLUSTERS];

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
  const char *path = getenv("FAKE_PFRING_LOG");
  if (!path || !*path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

static void netns_of_thread(char *out, size_t len) {
  ssize_t n = readlink("/proc/thread-self/ns/net", out, len - 1);
  if (n < 0) n = 0;
  out[n] = 0;
}

static uint64_t env_u64(const char *name) {
  const char *v = getenv(name);
  return v ? strtoull(v, NULL, 10) : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* pcap reading */

static uint32_t u32(const unsigned char *p, int swapped) {
  uint32_t v;
  memcpy(&v, p, 4);
  return swapped ? __builtin_bswap32(v) : v;
}

static int open_file(struct cluster *c) {
  const char *path = getenv("FAKE_PFRING_PCAP");
  if (!path) { c->eof = 1; return 0; }
  c->file = fopen(path, "rb");
  if (!c->file) { logf_("error cannot open %s", path); c->eof = 1; return -1; }
  unsigned char hdr[24];
  if (fread(hdr, 1, 24, c->file) != 24) { c->eof = 1; return -1; }
  uint32_t magic;
  memcpy(&magic, hdr, 4);
  switch (magic) {
    case 0xa1b2c3d4: break;
    case 0xd4c3b2a1: c->swapped = 1; break;
    case 0xa1b23c4d: c->nsec = 1; break;
    case 0x4d3cb2a1: c->swapped = 1; c->nsec = 1; break;
    default: logf_("error %s is not a classic pcap file", path); c->eof = 1; return -1;
  }
  return 0;
}

static struct pkt *read_packet(struct cluster *c) {
  unsigned char rec[16];
  if (c->eof || !c->file || fread(rec, 1, 16, c->file) != 16) { c->eof = 1; return NULL; }
  uint32_t sec = u32(rec, c->swapped), frac = u32(rec + 4, c->swapped);
  uint32_t incl = u32(rec + 8, c->swapped), orig = u32(rec + 12, c->swapped);
  if (incl > 262144) { c->eof = 1; return NULL; }
  struct pkt *p = malloc(sizeof(struct pkt) + incl);
  if (!p) { c->eof = 1; return NULL; }
  if (fread(p->data, 1, incl, c->file) != incl) { free(p); c->eof = 1; return NULL; }
  p->next = NULL;
  p->caplen = incl;
  p->len = orig;
  int64_t us = (int64_t)sec * 1000000 + (c->nsec ? frac / 1000 : frac);
  if (c->seq == 0) {
    struct timeval now;
    gettimeofday(&now, NULL);
    c->offset_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec - us;
  }
  us += c->offset_us;
  p->ts.tv_sec = us / 1000000;
  p->ts.tv_usec = us % 1000000;
  return p;
}

/* ------------------------------------------------------------------------------------------ */
/* flow hashing: Ethernet [VLAN] IPv4/IPv6 TCP/UDP */

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
  return h;
}

/* Symmetric flow hash; fills the ports for the log. Returns 0 for non-IP frames. */
static uint64_t flow_hash(const struct pkt *p, unsigned *sport, unsigned *dport) {
  const unsigned char *d = p->data;
  size_t n = p->caplen, off = 14;
  *sport = *dport = 0;
  if (n < 14) return 0;
  unsigned type = (d[12] << 8) | d[13];
  while ((type == 0x8100 || type == 0x88a8) && n >= off + 4) {
    type = (d[off + 2] << 8) | d[off + 3];
    off += 4;
  }
  const unsigned char *a, *b;
  size_t alen, l4;
  unsigned proto;
  if (type == 0x0800 && n >= off + 20) {
    proto = d[off + 9];
    a = d + off + 12; b = d + off + 16; alen = 4;
    l4 = off + (d[off] & 0x0f) * 4;
  } else if (type == 0x86dd && n >= off + 40) {
    proto = d[off + 6];
    a = d + off + 8; b = d + off + 24; alen = 16;
    l4 = off + 40;
  } else {
    return 0;
  }
  unsigned pa = 0, pb = 0;
  if ((proto == 6 || proto == 17) && n >= l4 + 4) {
    pa = (d[l4] << 8) | d[l4 + 1];
    pb = (d[l4 + 2] << 8) | d[l4 + 3];
  }
  *sport = pa; *dport = pb;
  int a_first = memcmp(a, b, alen) < 0 || (memcmp(a, b, alen) == 0 && pa <= pb);
  unsigned char ports[4];
  uint64_t h = 1469598103934665603ULL;
  const unsigned char *lo = a_first ? a : b, *hi = a_first ? b : a;
  unsigned plo = a_first ? pa : pb, phi = a_first ? pb : pa;
  h = fnv(h, lo, alen);
  h = fnv(h, hi, alen);
  ports[0] = plo >> 8; ports[1] = plo; ports[2] = phi >> 8; ports[3] = phi;
  h = fnv(h, ports, 4);
  unsigned char pr = proto;
  h = fnv(h, &pr, 1);
  /* FNV's low bits are poor (parity of the input): mix them (murmur3's finaliser) */
  h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/* ------------------------------------------------------------------------------------------ */

static void enqueue(pfring *r, struct pkt *p) {
  if (r->tail) r->tail->next = p; else r->head = p;
  r->tail = p;
}

/* Reads the next packet of the file and hands it to its ring. Returns 0 at EOF. */
static int dispatch_one(struct cluster *c) {
  struct pkt *p = read_packet(c);
  if (!p) return 0;
  c->seq++;
  unsigned sport, dport;
  uint64_t h = flow_hash(p, &sport, &dport);
  int k;
  if (c->members <= 1) k = 0;
  else if (c->type == 1 /* cluster_round_robin */) k = (int)((c->seq - 1) % (uint64_t)c->members);
  else k = (int)(h % (uint64_t)c->members);
  pfring *r = c->rings[k];
  uint64_t every = env_u64("FAKE_PFRING_DROP_EVERY");
  int dropped = every && c->seq % every == 0;
  logf_("assign cluster=%d ring=%d seq=%llu sport=%u dport=%u%s", (int)c->id, k,
        (unsigned long long)c->seq, sport, dport, dropped ? " dropped" : "");
  if (dropped) { r->drop++; free(p); return 1; }
  enqueue(r, p);
  return 1;
}

static void start(struct cluster *c) {
  if (c->started) return;
  c->started = 1;
  open_file(c);
  logf_("start cluster=%d members=%d type=%d", (int)c->id, c->members, c->type);
}

/* ------------------------------------------------------------------------------------------ */
/* The API */

pfring *pfring_open(const char *device_name, uint32_t caplen, uint32_t flags) {
  char ns[128];
  netns_of_thread(ns, sizeof ns);
  uint64_t fail = env_u64("FAKE_PFRING_OPEN_ERRNO");
  logf_("open device=%s caplen=%u flags=%u netns=%s", device_name, caplen, flags, ns);
  if (fail) { errno = (int)fail; return NULL; }
  /* the device part before any '@' (queue) must exist here */
  char dev[128];
  snprintf(dev, sizeof dev, "%s", device_name);
  char *at = strchr(dev, '@');
  if (at) *at = 0;
  if (if_nametoindex(dev) == 0) { errno = ENODEV; return NULL; }
  pfring *r = calloc(1, sizeof *r);
  if (!r) { errno = ENOMEM; return NULL; }
  snprintf(r->device, sizeof r->device, "%s", device_name);
  r->caplen = caplen;
  r->flags = flags;
  return r;
}

int pfring_set_application_name(pfring *ring, char *name) {
  logf_("application_name %s", name);
  (void)ring;
  return 0;
}

int pfring_set_direction(pfring *ring, int direction) {
  logf_("direction %d", direction);
  (void)ring;
  return 0;
}

int pfring_set_socket_mode(pfring *ring, int mode) {
  logf_("socket_mode %d", mode);
  (void)ring;
  return 0;
}

int pfring_set_cluster(pfring *ring, unsigned cluster_id, int type) {
  pthread_mutex_lock(&lock);
  struct cluster *c = NULL;
  int i;
  for (i = 0; i < MAX_CLUSTERS && clusters[i]; i++)
    if (clusters[i]->id == cluster_id) { c = clusters[i]; break; }
  if (!c) {
    if (i == MAX_CLUSTERS) { pthread_mutex_unlock(&lock); return -1; }
    c = clusters[i] = calloc(1, sizeof *c);
    c->id = cluster_id;
    c->type = type;
  }
  if (c->started || c->members == MAX_MEMBERS || c->type != type || ring->cluster) {
    pthread_mutex_unlock(&lock);
    logf_("cluster id=%u type=%d refused", cluster_id, type);
    return -1;
  }
  ring->cluster = c;
  ring->member = c->members;
  c->rings[c->members++] = ring;
  pthread_mutex_unlock(&lock);
  logf_("cluster id=%u type=%d member=%d", cluster_id, type, ring->member);
  return 0;
}

int pfring_set_bpf_filter(pfring *ring, char *filter) {
  logf_("bpf %s", filter);
  (void)ring;
  return 0;
}

int pfring_set_poll_watermark(pfring *ring, uint16_t watermark) {
  logf_("watermark %u", watermark);
  (void)ring;
  return 0;
}

int pfring_set_poll_duration(pfring *ring, unsigned duration) {
  logf_("poll_duration %u", duration);
  (void)ring;
  return 0;
}

int pfring_enable_ring(pfring *ring) {
  pthread_mutex_lock(&lock);
  if (!ring->cluster) {
    struct cluster *c = calloc(1, sizeof *c);
    c->id = (unsigned)-1;
    c->members = 1;
    c->rings[0] = ring;
    ring->cluster = c;
  }
  ring->enabled = 1;
  pthread_mutex_unlock(&lock);
  logf_("enable %s", ring->device);
  return 0;
}

int pfring_recv(pfring *ring, unsigned char **buffer, unsigned buffer_len,
                struct pfring_pkthdr_prefix *hdr, uint8_t wait) {
  static __thread int logged_netns;
  if (!logged_netns) {
    char ns[128];
    netns_of_thread(ns, sizeof ns);
    logf_("recv device=%s member=%d netns=%s", ring->device, ring->member, ns);
    logged_netns = 1;
  }
  if (!ring->enabled) return -1;
  for (;;) {
    pthread_mutex_lock(&lock);
    struct cluster *c = ring->cluster;
    free(ring->current);
    ring->current = NULL;
    start(c);
    while (!ring->head && dispatch_one(c)) {}
    struct pkt *p = ring->head;
    if (p) {
      ring->head = p->next;
      if (!ring->head) ring->tail = NULL;
      ring->current = p;
      ring->recv++;
      pthread_mutex_unlock(&lock);
      hdr->ts = p->ts;
      hdr->caplen = p->caplen < ring->caplen ? p->caplen : ring->caplen;
      hdr->len = p->len;
      if (buffer_len == 0) {
        *buffer = p->data;
      } else {
        memcpy(*buffer, p->data, hdr->caplen < buffer_len ? hdr->caplen : buffer_len);
      }
      return 1;
    }
    int eof = c->eof;
    pthread_mutex_unlock(&lock);
    if (eof) {
      const char *mode = getenv("FAKE_PFRING_EOF");
      if (mode && strcmp(mode, "error") == 0) return -1;
    }
    if (!wait || ring->breakloop) { ring->breakloop = 0; return 0; }
    usleep(1000);
  }
}

void pfring_breakloop(pfring *ring) { ring->breakloop = 1; }

int pfring_stats(pfring *ring, pfring_stat *stats) {
  pthread_mutex_lock(&lock);
  stats->recv = ring->recv;
  stats->drop = ring->drop;
  stats->shunt = 0;
  pthread_mutex_unlock(&lock);
  return 0;
}

void pfring_close(pfring *ring) {
  logf_("close device=%s member=%d recv=%llu drop=%llu", ring->device, ring->member,
        (unsigned long long)ring->recv, (unsigned long long)ring->drop);
  pthread_mutex_lock(&lock);
  /* the cluster keeps a pointer: leave a closed ring's queue to be freed with it */
  free(ring->current);
  ring->current = NULL;
  ring->enabled = 0;
  pthread_mutex_unlock(&lock);
}

void pfring_version_noring(uint32_t *version) { *version = 0x080600; /* 8.6.0 */ }
