/*
 * Unit tests for edge session ids: the core's plaintext, framing and
 * judgement (core/session.c), and the native host's keys, AES-256-GCM seal
 * and open, and the edge-to-backend table (http/session.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/mem.h"
#include "core/session.h"
#include "http/session.h"

#define INIT_BODY                                                                                  \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"     \
    "\"2025-06-18\",\"capabilities\":{\"roots\":{\"listChanged\":true}},\"clientInfo\":{"          \
    "\"name\":\"claude-code\",\"version\":\"2.1\"},\"extra\":\"dropped\"}}"

/* Two keys of 32 bytes, base64url. */
#define KEY1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define KEY2 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"

static struct sr_json_tok toks[512];

static void test_base64url_decode(void **state)
{
    uint8_t out[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(sr_base64url_decode("Zm9vYmFy", 8, out, sizeof(out), &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(sr_base64url_decode("Zm9vYg", 6, out, sizeof(out), &n), 0);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(n, 4);
    assert_int_equal(sr_base64url_decode("", 0, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sr_base64url_decode("Zm9vY", 5, out, sizeof(out), &n), -1);  /* 1 mod 4 */
    assert_int_equal(sr_base64url_decode("Zm9v+g", 6, out, sizeof(out), &n), -1); /* '+' */
    assert_int_equal(sr_base64url_decode("Zm9=", 4, out, sizeof(out), &n), -1);   /* padding */
    assert_int_equal(sr_base64url_decode("Zh", 2, out, sizeof(out), &n), -1);     /* stray bits */
    assert_int_equal(sr_base64url_decode("Zm9vYmFy", 8, out, 5, &n), -1);         /* cap */
}

static void test_plain_round_trip(void **state)
{
    char plain[SR_SESSION_PLAIN_MAX];
    struct sr_session_claims c;
    char body[SR_SESSION_PLAIN_MAX + 128], proto[32];

    (void)state;
    int n = sr_session_plain_new("alice", 1700000000, INIT_BODY, strlen(INIT_BODY), toks, 512,
                                 plain, sizeof(plain));
    assert_true(n > 0);
    assert_null(strstr(plain, "dropped"));
    assert_int_equal(sr_session_plain_parse(plain, (size_t)n, toks, 512, &c), SR_SESSION_OK);
    assert_string_equal(c.name, "alice");
    assert_int_equal(c.issued, 1700000000);
    assert_int_equal(sr_session_check(&c, "alice", 1700000100, 3600), SR_SESSION_OK);
    assert_int_equal(sr_session_check(&c, "bob", 1700000100, 3600), SR_SESSION_E_FOREIGN);
    assert_int_equal(sr_session_check(&c, "alic", 1700000100, 3600), SR_SESSION_E_FOREIGN);
    assert_int_equal(sr_session_check(&c, "alice", 1700003601, 3600), SR_SESSION_E_EXPIRED);
    assert_int_equal(sr_session_check(&c, "alice", 1700000000 - SR_SESSION_SKEW - 1, 3600),
                     SR_SESSION_E_EXPIRED);
    int bl = sr_session_reinit_body(&c, body, sizeof(body));
    assert_true(bl > 0);
    assert_non_null(strstr(body, "\"method\":\"initialize\""));
    assert_non_null(strstr(body, "\"clientInfo\":{\"name\":\"claude-code\",\"version\":\"2.1\"}"));
    assert_non_null(strstr(body, "\"capabilities\":{\"roots\":{\"listChanged\":true}}"));
    struct sr_json_doc doc;
    assert_int_equal(sr_json_parse(&doc, body, (size_t)bl, toks, 512, NULL), 0);
    sr_session_protocol(&c, toks, 512, proto, sizeof(proto));
    assert_string_equal(proto, "2025-06-18");
    assert_int_equal(sr_session_reinit_body(&c, body, 20), -1);
}

static void test_plain_refusals(void **state)
{
    char plain[SR_SESSION_PLAIN_MAX];
    struct sr_session_claims c;
    const char *not_init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";

    (void)state;
    assert_int_equal(
        sr_session_plain_new("a", 1, not_init, strlen(not_init), toks, 512, plain, sizeof(plain)),
        -1);
    assert_int_equal(sr_session_plain_new("a", 1, "[1]", 3, toks, 512, plain, sizeof(plain)), -1);
    assert_int_equal(sr_session_plain_new("a", 1, "{", 1, toks, 512, plain, sizeof(plain)), -1);
    static const char *const bad[] = {
        "{}",
        "{\"v\":2,\"n\":\"a\",\"t\":1,\"i\":{}}",
        "{\"v\":1,\"n\":\"\",\"t\":1,\"i\":{}}",
        "{\"v\":1,\"n\":\"a\",\"t\":1.5,\"i\":{}}",
        "{\"v\":1,\"n\":\"a\",\"t\":1,\"i\":[]}",
        "{\"v\":1,\"n\":7,\"t\":1,\"i\":{}}",
        "{\"v\":1,\"n\":\"a\",\"t\":1,\"i\":{},\"i\":{}}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sr_session_plain_parse(bad[i], strlen(bad[i]), toks, 512, &c),
                         SR_SESSION_E_FORGED);
}

/* Capabilities too large for an id are dropped; the version and client name stay. */
static void test_plain_cuts_large_capabilities(void **state)
{
    static char body[8192];
    char plain[SR_SESSION_PLAIN_MAX];
    struct sr_session_claims c;
    char filler[3000];

    (void)state;
    memset(filler, 'x', sizeof(filler) - 1);
    filler[sizeof(filler) - 1] = '\0';
    snprintf(
        body, sizeof(body),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
        "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{\"experimental\":{\"f\":\"%s\"}},"
        "\"clientInfo\":{\"name\":\"big\",\"version\":\"1\"}}}",
        filler);
    int n = sr_session_plain_new("alice", 5, body, strlen(body), toks, 512, plain, sizeof(plain));
    assert_true(n > 0 && n <= SR_SESSION_PLAIN_MAX);
    assert_int_equal(sr_session_plain_parse(plain, (size_t)n, toks, 512, &c), SR_SESSION_OK);
    assert_null(strstr(plain, "capabilities"));
    assert_non_null(strstr(plain, "\"clientInfo\":{\"name\":\"big\""));
    assert_non_null(strstr(plain, "2025-11-25"));
}

static void test_id_framing(void **state)
{
    uint8_t sealed[64], out[SR_SESSION_SEALED_MAX];
    char id[SR_SESSION_ID_MAX];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(sealed); i++)
        sealed[i] = (uint8_t)(i * 7);
    int len = sr_session_id_encode(sealed, sizeof(sealed), id, sizeof(id));
    assert_true(len > 4);
    assert_memory_equal(id, "sr1.", 4);
    assert_int_equal(sr_session_id_decode(id, (size_t)len, out, sizeof(out), &n), SR_SESSION_OK);
    assert_int_equal(n, sizeof(sealed));
    assert_memory_equal(out, sealed, sizeof(sealed));
    /* Another prefix, a character outside base64url, too short for nonce and tag. */
    id[2] = '2';
    assert_int_equal(sr_session_id_decode(id, (size_t)len, out, sizeof(out), &n),
                     SR_SESSION_E_FORMAT);
    assert_int_equal(sr_session_id_decode("sr1.ab!d", 8, out, sizeof(out), &n),
                     SR_SESSION_E_FORMAT);
    assert_int_equal(sr_session_id_decode("sr1.AAAA", 8, out, sizeof(out), &n),
                     SR_SESSION_E_FORMAT);
    assert_int_equal(sr_session_id_decode("3f0c9a1b", 8, out, sizeof(out), &n),
                     SR_SESSION_E_FORMAT);
    assert_int_equal(sr_session_id_encode(sealed, sizeof(sealed), id, 10), -1);
}

static void test_error_bodies(void **state)
{
    char body[SR_ERROR_BODY_MAX];
    int errs[] = {SR_SESSION_E_FORMAT, SR_SESSION_E_FORGED, SR_SESSION_E_FOREIGN,
                  SR_SESSION_E_EXPIRED, SR_SESSION_E_ENDED};

    (void)state;
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        int n = sr_session_error_body(errs[i], "7", 1, body, sizeof(body));
        assert_true(n > 0);
        assert_non_null(strstr(body, "Session not found"));
        assert_non_null(strstr(body, "\"id\":7"));
        assert_non_null(strstr(body, "-32600"));
    }
}

static struct sr_sessions *new_table(const char *keys)
{
    struct sr_sessions *s = NULL;
    char err[256];
    assert_int_equal(sr_sessions_new(NULL, keys, 3600, &s, err, sizeof(err)), 0);
    return s;
}

static void test_host_seal_open(void **state)
{
    char id[SR_SESSION_ID_MAX], reinit[2048], proto[32];

    (void)state;
    struct sr_sessions *s = new_table(KEY1);
    int n = sr_sessions_issue(s, "alice", INIT_BODY, strlen(INIT_BODY), id, sizeof(id));
    assert_true(n > 0);
    /* The client's data is not readable in the id. */
    assert_null(strstr(id, "claude"));
    assert_int_equal(sr_sessions_open(s, id, (size_t)n, "alice"), SR_SESSION_OK);
    /* Seen before: judged from the table, with the same answers. */
    assert_int_equal(sr_sessions_open(s, id, (size_t)n, "alice"), SR_SESSION_OK);
    assert_true(sr_sessions_reinit(s, id, (size_t)n, reinit, sizeof(reinit), proto, sizeof(proto)) >
                0);
    assert_non_null(strstr(reinit, "claude-code"));
    assert_string_equal(proto, "2025-06-18");
    assert_int_equal(sr_sessions_open(s, id, (size_t)n, "bob"), SR_SESSION_E_FOREIGN);
    /* Any flipped character is refused: the tag covers everything. */
    for (int i = 4; i < n; i += 13) {
        char forged[SR_SESSION_ID_MAX];
        memcpy(forged, id, (size_t)n + 1);
        forged[i] = forged[i] == 'A' ? 'B' : 'A';
        int rc = sr_sessions_open(s, forged, (size_t)n, "alice");
        assert_true(rc == SR_SESSION_E_FORGED || rc == SR_SESSION_E_FORMAT);
    }
    /* Two ids for the same client differ (fresh nonce). */
    char id2[SR_SESSION_ID_MAX];
    assert_true(sr_sessions_issue(s, "alice", INIT_BODY, strlen(INIT_BODY), id2, sizeof(id2)) > 0);
    assert_string_not_equal(id, id2);
    /* Another key does not open it; a rotation list with the old key second does. */
    struct sr_sessions *other = new_table(KEY2);
    assert_int_equal(sr_sessions_open(other, id, (size_t)n, "alice"), SR_SESSION_E_FORGED);
    struct sr_sessions *rotated = new_table(KEY2 "," KEY1);
    assert_int_equal(sr_sessions_open(rotated, id, (size_t)n, "alice"), SR_SESSION_OK);
    char id3[SR_SESSION_ID_MAX];
    int n3 = sr_sessions_issue(rotated, "alice", INIT_BODY, strlen(INIT_BODY), id3, sizeof(id3));
    assert_int_equal(sr_sessions_open(other, id3, (size_t)n3, "alice"),
                     SR_SESSION_OK); /* the first key seals */
    sr_sessions_free(s);
    sr_sessions_free(other);
    sr_sessions_free(rotated);
}

static void test_host_key_refusals(void **state)
{
    struct sr_sessions *s = NULL;
    char err[256];

    (void)state;
    assert_int_equal(sr_sessions_new(NULL, "c2hvcnQ", 0, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "SERENA_SESSION_KEY"));
    assert_int_equal(sr_sessions_new(NULL, KEY1 ",", 0, &s, err, sizeof(err)), -1);
    assert_int_equal(sr_sessions_new(NULL, NULL, 0, &s, err, sizeof(err)), -1);
    assert_null(s);
}

static void test_host_key_file(void **state)
{
    char dir[] = "/tmp/sr-session-test-XXXXXX", path[256], id[SR_SESSION_ID_MAX], err[256];
    struct stat st;
    struct sr_sessions *a = NULL, *b = NULL;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sr_sessions_new(dir, NULL, 0, &a, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/session.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    int n = sr_sessions_issue(a, "x", INIT_BODY, strlen(INIT_BODY), id, sizeof(id));
    /* A restart reads the same key: the id still opens. */
    assert_int_equal(sr_sessions_new(dir, "", 0, &b, err, sizeof(err)), 0);
    assert_int_equal(sr_sessions_open(b, id, (size_t)n, "x"), SR_SESSION_OK);
    sr_sessions_free(a);
    sr_sessions_free(b);
    /* A damaged key file is refused, not replaced. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("garbage\n", f);
    fclose(f);
    assert_int_equal(sr_sessions_new(dir, NULL, 0, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "session.key"));
    unlink(path);
    snprintf(path, sizeof(path), "%s/sessions.ended", dir);
    unlink(path);
    rmdir(dir);
}

/* DELETE'd ids stay ended across a restart (sessions.ended), until they would expire anyway. */
static void test_host_ended_survive(void **state)
{
    char dir[] = "/tmp/sr-session-ended-XXXXXX", path[256], err[256];
    char id1[SR_SESSION_ID_MAX], id2[SR_SESSION_ID_MAX];
    struct sr_sessions *a = NULL, *b = NULL;
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sessions.ended", dir);
    /* A damaged line, an expired one and a live one left by an earlier gateway. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "zz 1\n%064d 1\n%064d 99999999999\n", 0, 1);
    fclose(f);
    assert_int_equal(sr_sessions_new(dir, KEY1, 3600, &a, err, sizeof(err)), 0);
    int n1 = sr_sessions_issue(a, "alice", INIT_BODY, strlen(INIT_BODY), id1, sizeof(id1));
    int n2 = sr_sessions_issue(a, "alice", INIT_BODY, strlen(INIT_BODY), id2, sizeof(id2));
    assert_int_equal(sr_sessions_open(a, id1, (size_t)n1, "alice"), SR_SESSION_OK);
    assert_int_equal(sr_sessions_open(a, id2, (size_t)n2, "alice"), SR_SESSION_OK);
    sr_sessions_end(a, id1, (size_t)n1);
    assert_int_equal(sr_sessions_open(a, id1, (size_t)n1, "alice"), SR_SESSION_E_ENDED);
    sr_sessions_free(a);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A restart: id1 stays ended, id2 still opens. */
    assert_int_equal(sr_sessions_new(dir, KEY1, 3600, &b, err, sizeof(err)), 0);
    assert_int_equal(sr_sessions_open(b, id1, (size_t)n1, "alice"), SR_SESSION_E_ENDED);
    assert_int_equal(sr_sessions_open(b, id2, (size_t)n2, "alice"), SR_SESSION_OK);
    sr_sessions_free(b);
    /* Compacted at start: the damaged and the expired lines are gone, two remain. */
    f = fopen(path, "r");
    assert_non_null(f);
    char line[160];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        assert_int_equal(strlen(line), 64 + 1 + strcspn(line + 65, "\n") + 1);
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, 2);
    unlink(path);
    snprintf(path, sizeof(path), "%s/session.key", dir);
    unlink(path);
    rmdir(dir);
}

static void test_host_table(void **state)
{
    char id[SR_SESSION_ID_MAX];

    (void)state;
    struct sr_sessions *s = new_table(KEY1);
    int n = sr_sessions_issue(s, "alice", INIT_BODY, strlen(INIT_BODY), id, sizeof(id));
    assert_null(sr_sessions_backend(s, id, (size_t)n, 1));
    sr_sessions_bind(s, id, (size_t)n, "b-1", 3, 1);
    assert_string_equal(sr_sessions_backend(s, id, (size_t)n, 1), "b-1");
    assert_null(sr_sessions_backend(s, id, (size_t)n, 2)); /* another incarnation */
    sr_sessions_bind(s, id, (size_t)n, "b-2", 3, 2);
    assert_string_equal(sr_sessions_backend(s, id, (size_t)n, 2), "b-2");
    sr_sessions_unbind(s, id, (size_t)n);
    assert_null(sr_sessions_backend(s, id, (size_t)n, 2));
    sr_sessions_end(s, id, (size_t)n);
    assert_int_equal(sr_sessions_open(s, id, (size_t)n, "alice"), SR_SESSION_E_ENDED);
    /* Bounded: more ids than the table holds evict the least recently used. */
    char key[32];
    for (unsigned i = 0; i < SR_SESSION_TABLE_MAX + 10; i++) {
        int kn = snprintf(key, sizeof(key), "k%u", i);
        sr_sessions_bind(s, key, (size_t)kn, "b", 1, 1);
    }
    assert_int_equal(sr_sessions_count(s), SR_SESSION_TABLE_MAX);
    assert_null(sr_sessions_backend(s, "k0", 2, 1));
    assert_string_equal(sr_sessions_backend(s, "k4100", 5, 1), "b");
    sr_sessions_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url_decode),
        cmocka_unit_test(test_plain_round_trip),
        cmocka_unit_test(test_plain_refusals),
        cmocka_unit_test(test_plain_cuts_large_capabilities),
        cmocka_unit_test(test_id_framing),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_host_seal_open),
        cmocka_unit_test(test_host_key_refusals),
        cmocka_unit_test(test_host_key_file),
        cmocka_unit_test(test_host_ended_survive),
        cmocka_unit_test(test_host_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
