#include "bindery/util.h"

#include "bindery/error.h"
#include "bindery/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void bdy_buf_init(bdy_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void bdy_buf_free(bdy_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void bdy_buf_reset(bdy_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void bdy_buf_drop_front(bdy_buf *b, size_t n)
{
    if (n >= b->len) {
        bdy_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

static int buf_reserve(bdy_buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra)
        return BDY_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n *= 2;
    char *p = realloc(b->data, n);
    if (p == NULL)
        return BDY_ENOMEM;
    b->data = p;
    b->alloc = n;
    return 0;
}

int bdy_buf_append(bdy_buf *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int bdy_buf_appends(bdy_buf *b, const char *s)
{
    return bdy_buf_append(b, s, strlen(s));
}

int bdy_buf_printf(bdy_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return BDY_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *bdy_buf_steal(bdy_buf *b)
{
    char *p = b->data;
    if (p == NULL)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

static void format_time(char out[BDY_TIMESTAMP_LEN], bool micros)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, BDY_TIMESTAMP_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    if (micros)
        snprintf(out + n, BDY_TIMESTAMP_LEN - n, ".%06ldZ", ts.tv_nsec / 1000);
    else
        snprintf(out + n, BDY_TIMESTAMP_LEN - n, "Z");
}

void bdy_timestamp_now(char out[BDY_TIMESTAMP_LEN])
{
    format_time(out, true);
}

void bdy_timestamp_now_seconds(char out[BDY_TIMESTAMP_LEN])
{
    format_time(out, false);
}

/* Reads n decimal digits at p (no sign, no spaces). */
static bool digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

bool bdy_date_valid(int year, int month, int day)
{
    /* Days of each month, February of a leap year. */
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month >= 1 && month <= 12 && day >= 1 && day <= month_days[month - 1] &&
           !(month == 2 && !leap && day > 28);
}

int bdy_timestamp_parse(const char *text, double *unix_seconds)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    /* YYYY-MM-DDTHH:MM:SS, every digit where a digit belongs. */
    if (text == NULL || strlen(text) < 20 || !digits(text, 4, &tm.tm_year) || text[4] != '-' ||
        !digits(text + 5, 2, &tm.tm_mon) || text[7] != '-' || !digits(text + 8, 2, &tm.tm_mday) ||
        (text[10] != 'T' && text[10] != 't') || !digits(text + 11, 2, &tm.tm_hour) ||
        text[13] != ':' || !digits(text + 14, 2, &tm.tm_min) || text[16] != ':' ||
        !digits(text + 17, 2, &tm.tm_sec))
        return BDY_EINVAL;
    /* (60 s is a leap second.) */
    if (!bdy_date_valid(tm.tm_year, tm.tm_mon, tm.tm_mday) || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return BDY_EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = text + 19;
    double frac = 0;
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (*p < '0' || *p > '9')
            return BDY_EINVAL;
        while (*p >= '0' && *p <= '9') {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = 0;
        int om = 0;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return BDY_EINVAL;
        offset = (oh * 3600L + om * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return BDY_EINVAL;
    }
    if (*p != '\0')
        return BDY_EINVAL;
    time_t t = timegm(&tm);
    *unix_seconds = (double)t - (double)offset + frac;
    return 0;
}

uint64_t bdy_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bdy_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Random bytes are handed out from a per-thread buffer that one RAND_bytes
 * call refills: each call takes the DRBG's lock and sets up its cipher, and
 * one per claim id was ~5% of an HTTP worker's time in a burst of claims.
 * The bytes are as unpredictable as RAND_bytes' own; each is used once.
 * Bindery never forks except to exec a world, so no child ever draws from a
 * copy of a buffer. */
#define RANDOM_POOL_BYTES 256
static _Thread_local unsigned char random_pool[RANDOM_POOL_BYTES];
static _Thread_local size_t random_pool_left;

static void random_bytes(unsigned char *out, size_t n)
{
    while (n > 0) {
        if (random_pool_left == 0) {
            if (RAND_bytes(random_pool, (int)sizeof(random_pool)) != 1) {
                /* The CSPRNG failing is unrecoverable for name and uid
                 * generation: handing out predictable or repeated
                 * identifiers would be worse. */
                abort();
            }
            random_pool_left = sizeof(random_pool);
        }
        size_t take = n < random_pool_left ? n : random_pool_left;
        unsigned char *from = random_pool + sizeof(random_pool) - random_pool_left;
        memcpy(out, from, take);
        explicit_bzero(from, take);
        random_pool_left -= take;
        out += take;
        n -= take;
    }
}

void bdy_random_suffix(char *out, size_t n)
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char raw[16];
    size_t done = 0;
    while (done < n) {
        /* A few bytes more than needed: about 5% are rejected. */
        size_t want = n - done + 2;
        want = want < sizeof(raw) ? want : sizeof(raw);
        random_bytes(raw, want);
        for (size_t i = 0; i < want && done < n; i++) {
            /* 27 symbols: reject bytes >= 243 to keep the choice uniform. */
            if (raw[i] < 243)
                out[done++] = alphabet[raw[i] % 27];
        }
    }
    out[n] = '\0';
}

void bdy_random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    size_t done = 0;
    while (done < n) {
        size_t want = (n - done + 1) / 2;
        want = want < sizeof(raw) ? want : sizeof(raw);
        random_bytes(raw, want);
        for (size_t i = 0; i < want && done < n; i++) {
            out[done++] = hex[raw[i] >> 4];
            if (done < n)
                out[done++] = hex[raw[i] & 15];
        }
    }
    out[n] = '\0';
}

void bdy_uuid4(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void bdy_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    static const char hex[] = "0123456789abcdef";
    SHA256(data, len, digest);
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[2 * (size_t)SHA256_DIGEST_LENGTH] = '\0';
}

bool bdy_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int bdy_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int bdy_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len)
{
    int rc = 0;
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? BDY_ENOTFOUND : BDY_EIO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = BDY_EIO;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = BDY_EINVAL;
        goto out;
    }
    if ((size_t)st.st_size > max_bytes) {
        rc = BDY_ETOOBIG;
        goto out;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        rc = BDY_ENOMEM;
        goto out;
    }
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size || ferror(f)) {
        rc = BDY_EIO;
        goto out;
    }
    data[n] = '\0';
    *out = data;
    data = NULL;
    if (out_len != NULL)
        *out_len = n;
out:
    free(data);
    fclose(f);
    return rc;
}

/* struct sched_attr of sched_setattr(2), which glibc 2.36 does not declare
 * (layout SCHED_ATTR_SIZE_VER0: the fields up to sched_period). */
struct sched_attr_v0 {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime; /* SCHED_OTHER: the requested slice, in ns */
    uint64_t sched_deadline;
    uint64_t sched_period;
};
#define SCHED_FLAG_RESET_ON_FORK_BIT 0x01u

int bdy_sched_short_slice(bool reset_on_fork)
{
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (nice == -1 && errno != 0)
        return errno;
    struct sched_attr_v0 attr = {
        .size = sizeof(attr),
        .sched_policy = SCHED_OTHER,
        .sched_flags = reset_on_fork ? SCHED_FLAG_RESET_ON_FORK_BIT : 0,
        .sched_nice = nice,
        .sched_runtime = (uint64_t)BDY_SCHED_SLICE_US * 1000u,
    };
    return syscall(SYS_sched_setattr, 0, &attr, 0) == 0 ? 0 : errno;
}

void bdy_thread_start(const char *name, bool background)
{
    char short_name[16];
    snprintf(short_name, sizeof(short_name), "%s", name);
    pthread_setname_np(pthread_self(), short_name);
    /* On Linux, PRIO_PROCESS with a thread id sets that thread's nice. */
    if (background && setpriority(PRIO_PROCESS, (id_t)gettid(), BDY_BACKGROUND_NICE) != 0)
        bdy_debug("util", "cannot lower the priority of thread %s: %s", short_name,
                  strerror(errno));
}

void bdy_deadline_after_ms(clockid_t clock, unsigned ms, struct timespec *out)
{
    clock_gettime(clock, out);
    out->tv_sec += ms / 1000;
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

int bdy_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

bool bdy_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Length of the sequence and the range its second byte must be in:
         * the tight ranges rule out overlong forms, surrogates (ED A0..BF)
         * and code points past U+10FFFF (F4 90.., F5..). */
        size_t len;
        unsigned char lo = 0x80;
        unsigned char hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF)
                return false;
        i += len;
    }
    return true;
}

void bdy_write_health_init(bdy_write_health *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
}

void bdy_write_health_destroy(bdy_write_health *h)
{
    pthread_mutex_destroy(&h->lock);
}

void bdy_write_health_ok(bdy_write_health *h)
{
    pthread_mutex_lock(&h->lock);
    h->failing = false;
    pthread_mutex_unlock(&h->lock);
}

void bdy_write_health_failed(bdy_write_health *h, const char *why)
{
    pthread_mutex_lock(&h->lock);
    h->failed_ns = bdy_monotonic_ns();
    h->failing = true;
    snprintf(h->why, sizeof(h->why), "%s", why != NULL ? why : "unknown error");
    pthread_mutex_unlock(&h->lock);
}

int bdy_write_health_check(bdy_write_health *h, const char *what, bdy_errbuf *eb)
{
    int rc = 0;
    uint64_t now = bdy_monotonic_ns();
    pthread_mutex_lock(&h->lock);
    if (h->failing && now - h->failed_ns < (uint64_t)BDY_WRITE_FAILURE_HOLD_S * 1000000000u)
        rc = bdy_fail(eb, BDY_EIO, "%s: the last write failed %.1f s ago: %s", what,
                      (double)(now - h->failed_ns) / 1e9, h->why);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* ---- base64 ---------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int bdy_base64_decode(const char *in, size_t len, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    char *buf = malloc(len / 4 * 3 + 4);
    if (buf == NULL)
        return BDY_ENOMEM;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    bool padding = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isspace(c))
            continue;
        if (c == '=') {
            padding = true;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || padding) {
            free(buf);
            return BDY_EINVAL; /* a stray character, or data after padding */
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* Six leftover bits cannot encode a byte: the input was cut. */
    if (bits >= 6) {
        free(buf);
        return BDY_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

int bdy_base64_encode(const void *in, size_t len, char **out)
{
    *out = NULL;
    if (len > (size_t)INT_MAX / 4 * 3)
        return BDY_ETOOBIG;
    char *buf = malloc((len + 2) / 3 * 4 + 1);
    if (buf == NULL)
        return BDY_ENOMEM;
    EVP_EncodeBlock((unsigned char *)buf, (const unsigned char *)in, (int)len);
    *out = buf;
    return 0;
}
