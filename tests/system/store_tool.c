/*
 * store_tool: a small CLI over the object-store interface, for the system
 * tests (tests/system/test_store.py).
 *
 * It exercises exactly the calls the snapshot layer uses, against a real
 * store, and prints one JSON object per line so that the tests can check
 * results without parsing prose. Settings come from --store file:/dir, or
 * from the same environment variables as serena-remote (S3_ENDPOINT,
 * S3_REGION, R2_BUCKET_NAME, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), plus
 * SR_STORE_RETRIES and SR_STORE_TIMEOUT for fault tests. Objects are read
 * and written as stored, without the encryption layer (SERENA_SNAPSHOT_KEY
 * is not used), so that tests can look at and tamper with the ciphertext.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int fail(int rc, const char *err)
{
    printf("{\"ok\":false,\"code\":%d,\"error\":", rc);
    json_str(err, strlen(err));
    printf("}\n");
    return 1;
}

static int print_object(void *arg, const struct sr_store_object *o)
{
    unsigned long *count = arg;

    printf("{\"key\":");
    json_str(o->key, strlen(o->key));
    printf(",\"size\":%llu,\"mtime\":%lld}\n", (unsigned long long)o->size, (long long)o->mtime);
    (*count)++;
    return 0;
}

static uint32_t env_u32(const char *name)
{
    const char *v = getenv(name);
    char *end = NULL;
    unsigned long n;

    if (v == NULL || v[0] == '\0')
        return 0;
    errno = 0;
    n = strtoul(v, &end, 10);
    return errno == 0 && *end == '\0' && n < 100000 ? (uint32_t)n : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: store_tool [--store file:/dir] create | probe | put KEY FILE [SHA256] "
                    "| put-bytes KEY TEXT | get KEY FILE | get-bytes KEY MAX | head KEY | "
                    "list [PREFIX] | delete KEY\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct sr_store_config c;
    struct sr_store *s = NULL;
    char err[1024] = "";
    const char *cmd;
    int i = 1, rc = 0, ret = 1;

    memset(&c, 0, sizeof(c));
    /* The tests read and write objects exactly as stored (encrypted ones included). */
    c.raw = true;
    if (argc > 2 && strcmp(argv[1], "--store") == 0) {
        if (strncmp(argv[2], "file:", 5) != 0)
            return usage();
        c.kind = "file";
        c.dir = argv[2] + 5;
        i = 3;
    } else {
        c.kind = "s3";
        c.endpoint = getenv("S3_ENDPOINT");
        c.region = getenv("S3_REGION");
        c.bucket = getenv("R2_BUCKET_NAME");
        c.access_key = getenv("AWS_ACCESS_KEY_ID");
        c.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
    }
    c.retries = env_u32("SR_STORE_RETRIES");
    c.timeout = env_u32("SR_STORE_TIMEOUT");
    if (i >= argc)
        return usage();
    cmd = argv[i++];
    rc = sr_store_open(&c, &s, err, sizeof(err));
    if (rc != 0)
        return fail(rc, err);

    if (strcmp(cmd, "create") == 0) {
        rc = sr_store_create(s, err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true}\n");
    } else if (strcmp(cmd, "probe") == 0) {
        rc = sr_store_probe(s, err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true,\"store\":\"%s\"}\n", sr_store_describe(s));
    } else if (strcmp(cmd, "put") == 0 && argc - i >= 2) {
        rc = sr_store_put_file(s, argv[i], argv[i + 1], argc - i >= 3 ? argv[i + 2] : NULL, err,
                               sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true}\n");
    } else if (strcmp(cmd, "put-bytes") == 0 && argc - i >= 2) {
        rc = sr_store_put_bytes(s, argv[i], argv[i + 1], strlen(argv[i + 1]), err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true}\n");
    } else if (strcmp(cmd, "get") == 0 && argc - i >= 2) {
        rc = sr_store_get_file(s, argv[i], argv[i + 1], err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true}\n");
    } else if (strcmp(cmd, "get-bytes") == 0 && argc - i >= 2) {
        char *data = NULL, *end = NULL;
        size_t n = 0;
        unsigned long long max = strtoull(argv[i + 1], &end, 10);

        rc = sr_store_get_bytes(s, argv[i], (size_t)max, &data, &n, err, sizeof(err));
        if (rc == 0) {
            printf("{\"ok\":true,\"size\":%zu,\"text\":", n);
            json_str(data, n);
            printf("}\n");
        }
        free(data);
    } else if (strcmp(cmd, "head") == 0 && argc - i >= 1) {
        uint64_t size = 0;

        rc = sr_store_head(s, argv[i], &size, err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true,\"size\":%llu}\n", (unsigned long long)size);
    } else if (strcmp(cmd, "list") == 0) {
        unsigned long count = 0;

        rc = sr_store_list(s, argc - i >= 1 ? argv[i] : "", print_object, &count, err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true,\"count\":%lu}\n", count);
    } else if (strcmp(cmd, "delete") == 0 && argc - i >= 1) {
        rc = sr_store_delete(s, argv[i], err, sizeof(err));
        if (rc == 0)
            printf("{\"ok\":true}\n");
    } else {
        sr_store_close(s);
        return usage();
    }
    ret = rc == 0 ? 0 : fail(rc, err);
    sr_store_close(s);
    return ret;
}
