/*
 * The S3 store: any S3-compatible service (R2, AWS S3, Swift's s3api,
 * s3rver) over libcurl's blocking easy API, path-style addressing.
 *
 * Stores run only in forked workers and CLIs, so blocking is fine and one
 * easy handle is reused for keep-alive. Every request is signed by our own
 * SigV4 signer (sigv4.c) with x-amz-content-sha256 always present (the real
 * digest of the body), and we send exactly the headers we sign: Host,
 * x-amz-date, x-amz-content-sha256 and Authorization, with curl's own
 * defaults (Accept, Expect) removed. Transient failures (connection errors,
 * timeouts, 5xx, 429) are retried with exponential backoff and full jitter;
 * 4xx answers are final. Errors are turned into sentences that say what to
 * check, and never carry the secret (it lives only in the signer's input).
 */
#include "store/store_impl.h"
#include "store/s3xml.h"
#include "store/sigv4.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Bounds: error bodies we read, listing pages we follow, backoff. */
#define S3_ERRBODY_MAX     (64u * 1024u)
#define S3_LIST_PAGE_MAX   (16u * 1024u * 1024u)
#define S3_LIST_PAGES_MAX  100000u
#define S3_LIST_KEYS       "1000"
#define S3_BACKOFF_BASE_MS 200u
#define S3_BACKOFF_MAX_MS  5000u
#define S3_CONNECT_TIMEOUT 10L
#define S3_ENDPOINT_MAX    256
#define S3_BUCKET_MAX      255
#define S3_CRED_MAX        256
#define S3_EMPTY_SHA256    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sr_store_s3 {
    struct sr_store base;               /* first, so a struct sr_store * converts back */
    char endpoint[S3_ENDPOINT_MAX + 1]; /* "scheme://authority", no trailing '/' */
    char host[S3_ENDPOINT_MAX + 1];     /* the authority, sent and signed as Host */
    char bucket[S3_BUCKET_MAX + 1];
    char region[64];
    char access_key[S3_CRED_MAX + 1];
    char secret_key[S3_CRED_MAX + 1];
    uint32_t timeout;
    uint32_t attempts;
    CURL *curl;
};

/* A growing in-memory body with a hard cap. */
struct s3_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    bool over;
};

/* One logical request, retried as a whole. */
struct s3_req {
    const char *method; /* GET PUT HEAD DELETE */
    const char *key;    /* NULL: the bucket itself */
    const struct sr_sigv4_param *query;
    size_t nquery;
    /* Body to send: a file (fd >= 0) or bytes. */
    int in_fd;
    const char *in_data;
    uint64_t in_len;
    uint64_t in_off;
    const char *payload_hash;
    /* Where a 2xx body goes: a file (fd >= 0) or a buffer (when out_buf is set). */
    int out_fd;
    struct s3_buf *out_buf;
    int out_errno;
    /* A range GET: bytes [range_off, range_off + range_cap) into range_buf. A store that ignores
     * Range answers 200 with the whole object: the bytes before range_off are skipped. */
    bool ranged;
    uint64_t range_off;
    uint8_t *range_buf;
    size_t range_cap;
    size_t range_got;
    uint64_t range_seen; /* body bytes of a 200 answer seen so far */
    /* Results. */
    long status;
    curl_off_t length; /* Content-Length of the answer, -1 when unknown */
    struct s3_buf errbody;
    char code[64]; /* the S3 error code of a final failure, "" when none */
};

static unsigned s3_tmp_seq;

static struct sr_store_s3 *s3_of(struct sr_store *s)
{
    return (struct sr_store_s3 *)s;
}

static int buf_put(struct s3_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->max) {
        b->over = true;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap == 0 ? 4096 : b->cap;
        char *nd;

        while (ncap < b->len + n + 1)
            ncap *= 2;
        nd = realloc(b->data, ncap);
        if (nd == NULL)
            return -1;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct s3_req *r = userdata;
    size_t n = size * nmemb;

    if (r->status < 200 || r->status > 299) {
        /* An error body: keep what fits for the message, drop the rest quietly. */
        if (r->errbody.len < r->errbody.max)
            buf_put(&r->errbody, ptr,
                    n < r->errbody.max - r->errbody.len ? n : r->errbody.max - r->errbody.len);
        return n;
    }
    if (r->ranged) {
        const char *p = ptr;
        size_t left = n;

        if (r->status == 200) {
            /* The whole object: keep only the part asked for. */
            uint64_t skip = r->range_seen < r->range_off ? r->range_off - r->range_seen : 0;

            r->range_seen += n;
            if (skip >= left)
                return n;
            p += skip;
            left -= (size_t)skip;
        }
        if (left > r->range_cap - r->range_got)
            left = r->range_cap - r->range_got;
        memcpy(r->range_buf + r->range_got, p, left);
        r->range_got += left;
        return n;
    }
    if (r->out_fd >= 0) {
        const char *p = ptr;
        size_t left = n;

        while (left > 0) {
            ssize_t w = write(r->out_fd, p, left);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r->out_errno = errno != 0 ? errno : EIO;
                return 0;
            }
            p += w;
            left -= (size_t)w;
        }
        return n;
    }
    if (r->out_buf != NULL && buf_put(r->out_buf, ptr, n) != 0)
        return 0;
    return n;
}

/* Learns the status as soon as the status line arrives, so on_write knows where a body goes. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct s3_req *r = userdata;
    size_t n = size * nmemb;

    if (n > 9 && memcmp(ptr, "HTTP/", 5) == 0) {
        const char *sp = memchr(ptr, ' ', n);

        if (sp != NULL && (size_t)(sp - ptr) + 4 <= n && sp[1] >= '1' && sp[1] <= '5')
            r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    }
    return n;
}

static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata)
{
    struct s3_req *r = userdata;
    size_t want = size * nitems;
    uint64_t left = r->in_len - r->in_off;

    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (r->in_fd >= 0) {
        ssize_t got;

        do {
            got = pread(r->in_fd, buffer, want, (off_t)r->in_off);
        } while (got < 0 && errno == EINTR);
        if (got <= 0)
            return CURL_READFUNC_ABORT;
        want = (size_t)got;
    } else {
        memcpy(buffer, r->in_data + r->in_off, want);
    }
    r->in_off += want;
    return want;
}

/* Full-jitter exponential backoff: a random wait in [d/2, d], d doubling per attempt. */
static void backoff(uint32_t attempt)
{
    uint64_t d = S3_BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);
    uint32_t rnd = 0;
    struct timespec ts;

    if (d > S3_BACKOFF_MAX_MS)
        d = S3_BACKOFF_MAX_MS;
    if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
        rnd = (uint32_t)getpid() * 2654435761u;
    d = d / 2 + rnd % (d / 2 + 1);
    ts.tv_sec = (time_t)(d / 1000);
    ts.tv_nsec = (long)(d % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool transient_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Builds the URL path (unencoded, for the signer) and the URL (encoded, for curl). */
static int build_target(struct sr_store_s3 *s, const struct s3_req *r, char *path, size_t plen,
                        char *url, size_t ulen)
{
    char query[SR_SIGV4_CANON_MAX];
    size_t len;
    int n;

    n = r->key != NULL ? snprintf(path, plen, "/%s/%s", s->bucket, r->key)
                       : snprintf(path, plen, "/%s", s->bucket);
    if (n < 0 || (size_t)n >= plen)
        return -1;
    len = (size_t)snprintf(url, ulen, "%s", s->endpoint);
    if (len >= ulen || sr_sigv4_encode(path, true, url, ulen, &len) != 0)
        return -1;
    if (r->nquery > 0) {
        if (sr_sigv4_canonical_query(r->query, r->nquery, query, sizeof(query)) != 0)
            return -1;
        n = snprintf(url + len, ulen - len, "?%s", query);
        if (n < 0 || (size_t)n >= ulen - len)
            return -1;
    }
    return 0;
}

/* One attempt: sign with the current time, send, and collect status and body. */
static CURLcode attempt(struct sr_store_s3 *s, struct s3_req *r, char *cerr)
{
    char path[SR_STORE_KEY_MAX + S3_BUCKET_MAX + 8];
    char url[SR_SIGV4_CANON_MAX + S3_ENDPOINT_MAX];
    char date[SR_SIGV4_DATE_LEN];
    char auth[SR_SIGV4_AUTH_MAX];
    char h_host[S3_ENDPOINT_MAX + 16], h_date[64], h_sha[128], h_auth[SR_SIGV4_AUTH_MAX + 32];
    struct curl_slist *hl = NULL, *tmp;
    struct sr_sigv4_header sh[3];
    struct sr_sigv4_request sr;
    CURLcode cc = CURLE_OK;
    int sign_rc;

    if (build_target(s, r, path, sizeof(path), url, sizeof(url)) != 0)
        return CURLE_URL_MALFORMAT;
    sr_sigv4_date(time(NULL), date);
    sh[0] = (struct sr_sigv4_header){"host", s->host};
    sh[1] = (struct sr_sigv4_header){"x-amz-content-sha256", r->payload_hash};
    sh[2] = (struct sr_sigv4_header){"x-amz-date", date};
    memset(&sr, 0, sizeof(sr));
    sr.method = r->method;
    sr.path = path;
    sr.query = r->query;
    sr.nquery = r->nquery;
    sr.headers = sh;
    sr.nheaders = 3;
    sr.payload_hash = r->payload_hash;
    sr.access_key = s->access_key;
    sr.secret_key = s->secret_key;
    sr.region = s->region;
    sr.service = "s3";
    sr.amz_date = date;
    sign_rc = sr_sigv4_sign(&sr, auth, sizeof(auth), NULL, 0, NULL, 0);
    if (sign_rc != 0)
        return CURLE_URL_MALFORMAT;
    snprintf(h_host, sizeof(h_host), "Host: %s", s->host);
    snprintf(h_date, sizeof(h_date), "x-amz-date: %s", date);
    snprintf(h_sha, sizeof(h_sha), "x-amz-content-sha256: %s", r->payload_hash);
    snprintf(h_auth, sizeof(h_auth), "Authorization: %s", auth);
    {
        const char *lines[] = {h_host, h_date, h_sha, h_auth, "Accept:", "Expect:"};

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            tmp = curl_slist_append(hl, lines[i]);
            if (tmp == NULL) {
                cc = CURLE_OUT_OF_MEMORY;
                goto out;
            }
            hl = tmp;
        }
    }
    curl_easy_reset(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, S3_CONNECT_TIMEOUT);
    /* A transfer may take long; one that makes no progress for `timeout` seconds is dead. */
    curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_TIME, (long)s->timeout);
    curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, r);
    if (strcmp(r->method, "PUT") == 0) {
        r->in_off = 0;
        curl_easy_setopt(s->curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(s->curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(s->curl, CURLOPT_READDATA, r);
        curl_easy_setopt(s->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->in_len);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(s->curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "DELETE") == 0) {
        curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
        if (r->ranged) {
            char range[64];

            snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)r->range_off,
                     (unsigned long long)(r->range_off + r->range_cap - 1));
            curl_easy_setopt(s->curl, CURLOPT_RANGE, range);
        }
    }
    cerr[0] = '\0';
    cc = curl_easy_perform(s->curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(s->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->length);
    }
out:
    OPENSSL_cleanse(auth, sizeof(auth));
    OPENSSL_cleanse(h_auth, sizeof(h_auth));
    curl_slist_free_all(hl);
    return cc;
}

/* Resets what a retried attempt must start afresh: the status, bodies, a download file. */
static int reset_for_attempt(struct s3_req *r)
{
    r->status = 0;
    r->length = -1;
    r->errbody.len = 0;
    r->out_errno = 0;
    r->range_got = 0;
    r->range_seen = 0;
    if (r->out_buf != NULL) {
        r->out_buf->len = 0;
        r->out_buf->over = false;
    }
    if (r->out_fd >= 0 && (ftruncate(r->out_fd, 0) != 0 || lseek(r->out_fd, 0, SEEK_SET) != 0))
        return -1;
    return 0;
}

/* What an S3 error document says. */
struct s3_errdoc {
    char code[64];
    char message[256];
    char bucket[S3_BUCKET_MAX + 1];
};

static int errdoc_cb(void *arg, const char *path, const char *text, size_t n)
{
    struct s3_errdoc *e = arg;

    (void)n;
    if (strcmp(path, "Error/Code") == 0)
        snprintf(e->code, sizeof(e->code), "%s", text);
    else if (strcmp(path, "Error/Message") == 0)
        snprintf(e->message, sizeof(e->message), "%s", text);
    else if (strcmp(path, "Error/BucketName") == 0)
        snprintf(e->bucket, sizeof(e->bucket), "%s", text);
    return 0;
}

/* Keeps only printable ASCII of a server message, so nothing odd reaches a log line. */
static void sanitize(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s < 0x20 || *s > 0x7e)
            *s = ' ';
    }
}

/* Turns a final non-2xx answer into a code and a sentence. */
static int http_error(struct sr_store_s3 *s, const struct s3_req *r, uint32_t tries, char *err,
                      size_t errlen)
{
    struct s3_errdoc e;
    const char *what = r->key != NULL ? r->key : "(bucket)";

    memset(&e, 0, sizeof(e));
    if (r->errbody.len > 0)
        sr_s3xml_scan(r->errbody.data, r->errbody.len, errdoc_cb, &e);
    sanitize(e.code);
    sanitize(e.message);
    snprintf(((struct s3_req *)r)->code, sizeof(r->code), "%s", e.code);
    if (strcmp(e.code, "SignatureDoesNotMatch") == 0)
        return sr_store_fail(err, errlen, SR_STORE_E_AUTH,
                             "the store rejected our signature: check AWS_SECRET_ACCESS_KEY and "
                             "the clock (%s, HTTP %ld)",
                             s->base.desc, r->status);
    if (strcmp(e.code, "InvalidAccessKeyId") == 0)
        return sr_store_fail(err, errlen, SR_STORE_E_AUTH,
                             "the store does not know our access key: check AWS_ACCESS_KEY_ID "
                             "(%s, HTTP %ld)",
                             s->base.desc, r->status);
    if (strcmp(e.code, "RequestTimeTooSkewed") == 0)
        return sr_store_fail(err, errlen, SR_STORE_E_AUTH,
                             "the store says our clock is too far off: check the system clock "
                             "(NTP) (%s, HTTP %ld)",
                             s->base.desc, r->status);
    if (strcmp(e.code, "AuthorizationHeaderMalformed") == 0)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the store refused our credential scope (region \"%s\"): check "
                             "S3_REGION; it said: %s",
                             s->region, e.message);
    if (strcmp(e.code, "AccessDenied") == 0)
        return sr_store_fail(err, errlen, SR_STORE_E_AUTH,
                             "the store denied access to %s in bucket \"%s\": check the "
                             "permissions of AWS_ACCESS_KEY_ID",
                             what, s->bucket);
    if (strcmp(e.code, "NoSuchBucket") == 0 || (r->key == NULL && r->status == 404))
        return sr_store_fail(err, errlen, SR_STORE_E_NOTFOUND,
                             "the bucket \"%s\" does not exist at %s: create it or check "
                             "R2_BUCKET_NAME",
                             s->bucket, s->endpoint);
    if (strcmp(e.code, "NoSuchKey") == 0 || r->status == 404)
        return sr_store_fail(err, errlen, SR_STORE_E_NOTFOUND, "no object %s in %s", what,
                             s->base.desc);
    if (strcmp(e.code, "BadDigest") == 0 || strcmp(e.code, "XAmzContentSHA256Mismatch") == 0)
        return sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                             "the store received different bytes for %s than we hashed (%s): "
                             "the local file changed during the upload, or the data was damaged "
                             "in transit",
                             what, e.code);
    if (r->status == 403)
        return sr_store_fail(err, errlen, SR_STORE_E_AUTH,
                             "the store refused %s %s (HTTP 403%s%s): check AWS_ACCESS_KEY_ID, "
                             "AWS_SECRET_ACCESS_KEY and the clock",
                             r->method, what, e.code[0] != '\0' ? " " : "", e.code);
    if (r->status >= 500 || r->status == 429)
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the store kept failing %s %s after %u attempts (HTTP %ld%s%s): "
                             "try again later",
                             r->method, what, tries, r->status, e.code[0] != '\0' ? " " : "",
                             e.code);
    return sr_store_fail(err, errlen, SR_STORE_E_IO,
                         "the store answered %s %s with HTTP %ld%s%s%s%s", r->method, what,
                         r->status, e.code[0] != '\0' ? " " : "", e.code,
                         e.message[0] != '\0' ? ": " : "", e.message);
}

static int curl_error(struct sr_store_s3 *s, const struct s3_req *r, CURLcode cc, const char *cerr,
                      uint32_t tries, char *err, size_t errlen)
{
    const char *detail = cerr[0] != '\0' ? cerr : curl_easy_strerror(cc);

    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the store at %s is unreachable (%s) after %u attempts: check "
                             "S3_ENDPOINT and that the service is running",
                             s->endpoint, detail, tries);
    case CURLE_COULDNT_RESOLVE_HOST:
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the store at %s is unreachable: its host name does not resolve "
                             "(%u attempts): check S3_ENDPOINT / R2_ACCOUNT_ID and DNS",
                             s->endpoint, tries);
    case CURLE_OPERATION_TIMEDOUT:
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the store at %s stopped answering %s %s for %u s (%u attempts)",
                             s->endpoint, r->method, r->key != NULL ? r->key : "(bucket)",
                             s->timeout, tries);
    case CURLE_URL_MALFORMAT:
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "cannot build a request for %s: the key, endpoint or listing token "
                             "is too long",
                             r->key != NULL ? r->key : s->bucket);
    case CURLE_WRITE_ERROR:
        if (r->out_buf != NULL && r->out_buf->over)
            return sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                                 "object %s is larger than the %zu bytes expected here", r->key,
                                 r->out_buf->max);
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write the download of %s: %s",
                             r->key != NULL ? r->key : "(listing)",
                             r->out_errno != 0 ? strerror(r->out_errno) : "out of memory");
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR:
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "cannot read the local data to upload to %s", r->key);
    case CURLE_PEER_FAILED_VERIFICATION:
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the store at %s presented a TLS certificate we do not trust (%s)",
                             s->endpoint, detail);
    default:
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the request %s %s to %s failed after %u attempts: %s", r->method,
                             r->key != NULL ? r->key : "(bucket)", s->endpoint, tries, detail);
    }
}

/* Runs a request with retries. 0 on a 2xx answer; otherwise a code and a sentence. */
static int perform(struct sr_store_s3 *s, struct s3_req *r, char *err, size_t errlen)
{
    char cerr[CURL_ERROR_SIZE];
    CURLcode cc = CURLE_OK;
    uint32_t tries = 0;
    int rc;

    r->errbody.max = S3_ERRBODY_MAX;
    for (;;) {
        if (reset_for_attempt(r) != 0)
            return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot reset the download file: %s",
                                 strerror(errno));
        tries++;
        cc = attempt(s, r, cerr);
        if (cc == CURLE_OK && r->status >= 200 && r->status <= 299)
            return 0;
        if (tries >= s->attempts)
            break;
        if (cc != CURLE_OK ? !transient_curl(cc) : !(r->status >= 500 || r->status == 429))
            break;
        backoff(tries - 1);
    }
    if (cc != CURLE_OK)
        rc = curl_error(s, r, cc, cerr, tries, err, errlen);
    else
        rc = http_error(s, r, tries, err, errlen);
    return rc;
}

static void req_init(struct s3_req *r, const char *method, const char *key)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->key = key;
    r->in_fd = -1;
    r->out_fd = -1;
    r->length = -1;
    r->payload_hash = S3_EMPTY_SHA256;
}

static void req_free(struct s3_req *r)
{
    free(r->errbody.data);
    r->errbody.data = NULL;
}

static void hex_of(const unsigned char *md, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* SHA-256 of a file's contents, for uploads whose caller did not hash them. */
static int hash_fd(int fd, char out[65])
{
    unsigned char md[32];
    char buf[65536];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    off_t off = 0;
    int rc = -1;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += n;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    hex_of(md, out);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int s3_put_file(struct sr_store *s, const char *key, const char *path,
                       const char *sha256_hex, char *err, size_t errlen)
{
    struct s3_req r;
    struct stat st;
    char hex[65];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot open %s to upload it: %s", path,
                             strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "%s is not a regular file", path);
    }
    if (sha256_hex == NULL) {
        if (hash_fd(fd, hex) != 0) {
            close(fd);
            return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot read %s to hash it: %s", path,
                                 strerror(errno));
        }
    } else {
        /* S3 compares hex digests exactly; send lowercase as the signer's peers do. */
        for (int i = 0; i < 64; i++)
            hex[i] = (char)(sha256_hex[i] >= 'A' && sha256_hex[i] <= 'F' ? sha256_hex[i] + 32
                                                                         : sha256_hex[i]);
        hex[64] = '\0';
    }
    req_init(&r, "PUT", key);
    r.in_fd = fd;
    r.in_len = (uint64_t)st.st_size;
    r.payload_hash = hex;
    rc = perform(s3_of(s), &r, err, errlen);
    req_free(&r);
    close(fd);
    return rc;
}

static int s3_put_bytes(struct sr_store *s, const char *key, const void *data, size_t n, char *err,
                        size_t errlen)
{
    struct s3_req r;
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];
    int rc;

    if (EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) != 1)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot hash the upload of %s", key);
    hex_of(md, hex);
    req_init(&r, "PUT", key);
    r.in_data = data;
    r.in_len = n;
    r.payload_hash = hex;
    rc = perform(s3_of(s), &r, err, errlen);
    req_free(&r);
    return rc;
}

static int s3_get_file(struct sr_store *s, const char *key, const char *path, char *err,
                       size_t errlen)
{
    struct s3_req r;
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.#tmp.%ld.%u", path, (long)getpid(), ++s3_tmp_seq);
    int fd = -1;
    int rc;

    req_init(&r, "GET", key);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the path %s is too long", path);
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create %s: %s", tmp,
                             strerror(errno));
    r.out_fd = fd;
    rc = perform(s3_of(s), &r, err, errlen);
    if (rc == 0 && r.length >= 0) {
        struct stat st;

        if (fstat(fd, &st) != 0 || st.st_size != (off_t)r.length)
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO,
                               "the download of %s ended early (%lld of %lld bytes)", key,
                               (long long)st.st_size, (long long)r.length);
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot flush %s to disk: %s", tmp,
                           strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot rename into %s: %s", path,
                           strerror(errno));
    if (rc != 0)
        unlink(tmp);
    req_free(&r);
    return rc;
}

static int s3_get_bytes(struct sr_store *s, const char *key, size_t max, char **data, size_t *n,
                        char *err, size_t errlen)
{
    struct s3_req r;
    struct s3_buf b;
    int rc;

    memset(&b, 0, sizeof(b));
    b.max = max;
    req_init(&r, "GET", key);
    r.out_buf = &b;
    rc = perform(s3_of(s), &r, err, errlen);
    req_free(&r);
    if (rc != 0) {
        free(b.data);
        return rc;
    }
    if (b.data == NULL) {
        b.data = malloc(1);
        if (b.data == NULL)
            return sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory");
        b.data[0] = '\0';
    }
    *data = b.data;
    *n = b.len;
    return 0;
}

static int s3_get_range(struct sr_store *s, const char *key, uint64_t off, size_t n, void *buf,
                        size_t *got, char *err, size_t errlen)
{
    struct s3_req r;
    int rc;

    req_init(&r, "GET", key);
    r.ranged = true;
    r.range_off = off;
    r.range_buf = buf;
    r.range_cap = n;
    rc = perform(s3_of(s), &r, err, errlen);
    /* 416: the range starts at or past the end of the object. */
    if (rc != 0 && r.status == 416)
        rc = 0;
    *got = rc == 0 ? r.range_got : 0;
    req_free(&r);
    return rc;
}

static int s3_head(struct sr_store *s, const char *key, uint64_t *size, char *err, size_t errlen)
{
    struct s3_req r;
    int rc;

    req_init(&r, "HEAD", key);
    rc = perform(s3_of(s), &r, err, errlen);
    if (rc == 0) {
        if (r.length < 0)
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO,
                               "the store gave no Content-Length for %s", key);
        else
            *size = (uint64_t)r.length;
    }
    req_free(&r);
    return rc;
}

static int s3_del(struct sr_store *s, const char *key, char *err, size_t errlen)
{
    struct s3_req r;
    int rc;

    req_init(&r, "DELETE", key);
    rc = perform(s3_of(s), &r, err, errlen);
    /* Deleting a missing key succeeds (S3 answers 204 anyway; some stores say 404). */
    if (rc == SR_STORE_E_NOTFOUND && strcmp(r.code, "NoSuchBucket") != 0)
        rc = 0;
    req_free(&r);
    return rc;
}

/* One page of a listing, parsed before any callback runs. */
struct s3_page {
    struct sr_store_object *objs;
    size_t n;
    size_t cap;
    struct sr_store_object cur;
    bool cur_ok;
    bool truncated;
    char token[4096];
    bool bad;
};

static int64_t parse_time(const char *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static int page_cb(void *arg, const char *path, const char *text, size_t n)
{
    struct s3_page *p = arg;

    if (strncmp(path, "ListBucketResult/", 17) != 0)
        return 0;
    path += 17;
    if (strcmp(path, "Contents/Key") == 0) {
        if (n >= sizeof(p->cur.key)) {
            p->bad = true;
            return 0;
        }
        memcpy(p->cur.key, text, n + 1);
        p->cur_ok = true;
    } else if (strcmp(path, "Contents/Size") == 0) {
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0')
            p->bad = true;
        p->cur.size = v;
    } else if (strcmp(path, "Contents/LastModified") == 0) {
        p->cur.mtime = parse_time(text);
    } else if (strcmp(path, "Contents") == 0) {
        if (!p->cur_ok) {
            p->bad = true;
            return 0;
        }
        if (p->n == p->cap) {
            size_t ncap = p->cap == 0 ? 256 : p->cap * 2;
            struct sr_store_object *no;

            if (ncap > 100000)
                return SR_S3XML_E_LIMIT;
            no = realloc(p->objs, ncap * sizeof(*no));
            if (no == NULL)
                return SR_S3XML_E_LIMIT;
            p->objs = no;
            p->cap = ncap;
        }
        p->objs[p->n++] = p->cur;
        memset(&p->cur, 0, sizeof(p->cur));
        p->cur_ok = false;
    } else if (strcmp(path, "IsTruncated") == 0) {
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(path, "NextContinuationToken") == 0) {
        if (n >= sizeof(p->token))
            p->bad = true;
        else
            memcpy(p->token, text, n + 1);
    }
    return 0;
}

static int s3_list(struct sr_store *s, const char *prefix, sr_store_list_cb cb, void *arg,
                   char *err, size_t errlen)
{
    struct sr_store_s3 *s3 = s3_of(s);
    char token[4096] = "";
    struct s3_page page;
    struct s3_buf body;
    int rc = 0;

    memset(&page, 0, sizeof(page));
    memset(&body, 0, sizeof(body));
    body.max = S3_LIST_PAGE_MAX;
    for (uint32_t pages = 0; pages < S3_LIST_PAGES_MAX; pages++) {
        struct sr_sigv4_param q[4];
        size_t nq = 0;
        struct s3_req r;
        int xrc;

        if (token[0] != '\0')
            q[nq++] = (struct sr_sigv4_param){"continuation-token", token};
        q[nq++] = (struct sr_sigv4_param){"list-type", "2"};
        q[nq++] = (struct sr_sigv4_param){"max-keys", S3_LIST_KEYS};
        if (prefix[0] != '\0')
            q[nq++] = (struct sr_sigv4_param){"prefix", prefix};
        req_init(&r, "GET", NULL);
        r.query = q;
        r.nquery = nq;
        r.out_buf = &body;
        rc = perform(s3, &r, err, errlen);
        req_free(&r);
        if (rc != 0)
            goto out;
        page.n = 0;
        page.truncated = false;
        page.token[0] = '\0';
        page.cur_ok = false;
        page.bad = false;
        memset(&page.cur, 0, sizeof(page.cur));
        xrc = sr_s3xml_scan(body.data != NULL ? body.data : "", body.len, page_cb, &page);
        if (xrc != 0 || page.bad) {
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO,
                               "the store's listing of bucket \"%s\" is not valid ListObjectsV2 "
                               "XML (page %u)",
                               s3->bucket, pages + 1);
            goto out;
        }
        for (size_t i = 0; i < page.n; i++) {
            rc = cb(arg, &page.objs[i]);
            if (rc != 0)
                goto out;
        }
        if (!page.truncated)
            goto out;
        if (page.token[0] == '\0' || strcmp(page.token, token) == 0) {
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO,
                               "the store's listing of bucket \"%s\" is truncated but gives no new "
                               "continuation token",
                               s3->bucket);
            goto out;
        }
        snprintf(token, sizeof(token), "%s", page.token);
    }
    rc = sr_store_fail(err, errlen, SR_STORE_E_IO,
                       "the listing of bucket \"%s\" has more than %u "
                       "pages",
                       s3->bucket, S3_LIST_PAGES_MAX);
out:
    free(page.objs);
    free(body.data);
    return rc;
}

static void s3_close(struct sr_store *s)
{
    struct sr_store_s3 *s3 = s3_of(s);

    if (s3->curl != NULL)
        curl_easy_cleanup(s3->curl);
    OPENSSL_cleanse(s3->secret_key, sizeof(s3->secret_key));
    free(s3);
}

static int s3_create(struct sr_store *s, char *err, size_t errlen);

static const struct sr_store_ops s3_ops = {
    .create = s3_create,
    .put_file = s3_put_file,
    .put_bytes = s3_put_bytes,
    .get_file = s3_get_file,
    .get_bytes = s3_get_bytes,
    .get_range = s3_get_range,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .close = s3_close,
};

static int s3_create(struct sr_store *s, char *err, size_t errlen)
{
    struct s3_req r;
    int rc;

    req_init(&r, "PUT", NULL);
    r.in_data = "";
    rc = perform(s3_of(s), &r, err, errlen);
    if (rc != 0 && r.status == 409)
        rc = 0; /* BucketAlreadyOwnedByYou / BucketAlreadyExists */
    req_free(&r);
    return rc;
}

static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);

    if (n == 0 || n > S3_BUCKET_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool cred_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > S3_CRED_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return false;
    }
    return true;
}

int sr_store_s3_open(const struct sr_store_config *c, struct sr_store **out, char *err,
                     size_t errlen)
{
    struct sr_store_s3 *s = NULL;
    const char *ep = c->endpoint, *auth;
    size_t n, alen;
    static bool curl_ready;

    if (ep == NULL || ep[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 store needs an endpoint: set S3_ENDPOINT, or R2_ACCOUNT_ID "
                             "for Cloudflare R2");
    if (strncmp(ep, "https://", 8) != 0 && strncmp(ep, "http://", 7) != 0)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 endpoint \"%.200s\" must start with https:// (or http:// "
                             "for a local test store)",
                             ep);
    n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/')
        n--;
    auth = ep + (ep[4] == 's' ? 8 : 7);
    alen = n - (size_t)(auth - ep);
    if (n > S3_ENDPOINT_MAX || alen == 0 || memchr(auth, '/', alen) != NULL ||
        strpbrk(ep, "?#@ \t\r\n") != NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 endpoint \"%.200s\" must be just scheme://host[:port] (no "
                             "path, query, credentials or spaces; the bucket is R2_BUCKET_NAME)",
                             ep);
    if (c->bucket == NULL || c->bucket[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 store needs a bucket: set R2_BUCKET_NAME");
    if (!bucket_ok(c->bucket))
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the bucket name \"%.80s\" is not valid: use letters, digits, '.', "
                             "'-' and '_' (at most %d)",
                             c->bucket, S3_BUCKET_MAX);
    if (c->access_key == NULL || c->access_key[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 store needs credentials: set AWS_ACCESS_KEY_ID");
    if (c->secret_key == NULL || c->secret_key[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 store needs credentials: set AWS_SECRET_ACCESS_KEY");
    if (!cred_ok(c->access_key))
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "AWS_ACCESS_KEY_ID is empty, too long or contains spaces or control "
                             "characters");
    if (!cred_ok(c->secret_key))
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "AWS_SECRET_ACCESS_KEY is too long or contains spaces or control "
                             "characters");
    if (c->region != NULL &&
        (c->region[0] == '\0' || strlen(c->region) >= 64 || strpbrk(c->region, "/ \t\r\n") != NULL))
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the S3 region \"%.64s\" is not valid (R2 uses \"auto\")", c->region);
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot initialise libcurl");
        curl_ready = true;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory");
    s->base.ops = &s3_ops;
    memcpy(s->endpoint, ep, n);
    s->endpoint[n] = '\0';
    memcpy(s->host, auth, alen);
    s->host[alen] = '\0';
    snprintf(s->bucket, sizeof(s->bucket), "%s", c->bucket);
    snprintf(s->region, sizeof(s->region), "%s", c->region != NULL ? c->region : "us-east-1");
    snprintf(s->access_key, sizeof(s->access_key), "%s", c->access_key);
    snprintf(s->secret_key, sizeof(s->secret_key), "%s", c->secret_key);
    s->timeout = c->timeout != 0 ? c->timeout : SR_STORE_TIMEOUT_DEFAULT;
    s->attempts = c->retries != 0 ? c->retries : SR_STORE_RETRIES_DEFAULT;
    if (s->attempts > SR_STORE_RETRIES_MAX)
        s->attempts = SR_STORE_RETRIES_MAX;
    snprintf(s->base.desc, sizeof(s->base.desc), "s3://%s@%s", s->bucket, s->endpoint);
    s->curl = curl_easy_init();
    if (s->curl == NULL) {
        s3_close(&s->base);
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create a libcurl handle");
    }
    *out = &s->base;
    return 0;
}
