/*
 * Unit tests for the SigV4 signer against AWS's published examples.
 *
 * The expected values are AWS's own: the four header-based examples of the
 * S3 "Signature Calculations for the Authorization Header" page (GET Object
 * with Range, PUT Object "test$file.text", GET ?lifecycle, GET Bucket with
 * max-keys=2&prefix=J; AKIAIOSFODNN7EXAMPLE, 20130524T000000Z, examplebucket)
 * and cases of the general SigV4 test suite (get-vanilla,
 * get-vanilla-query-order-key-case, get-vanilla-empty-query-key, get-utf8;
 * AKIDEXAMPLE, 20150830T123600Z, service "service").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/sigv4.h"

#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_AK     "AKIAIOSFODNN7EXAMPLE"
#define S3_SK     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_HOST   "examplebucket.s3.amazonaws.com"
#define S3_DATE   "20130524T000000Z"
#define SUITE_AK  "AKIDEXAMPLE"
#define SUITE_SK  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static const char *signature_of(const char *auth)
{
    const char *s = strstr(auth, "Signature=");

    assert_non_null(s);
    return s + strlen("Signature=");
}

static void s3_request(struct sr_sigv4_request *r)
{
    memset(r, 0, sizeof(*r));
    r->access_key = S3_AK;
    r->secret_key = S3_SK;
    r->region = "us-east-1";
    r->service = "s3";
    r->amz_date = S3_DATE;
    r->payload_hash = EMPTY_SHA;
}

static void test_s3_get_object(void **state)
{
    const struct sr_sigv4_header h[] = {
        {"Host", S3_HOST},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", EMPTY_SHA},
        {"x-amz-date", S3_DATE},
    };
    struct sr_sigv4_request r;
    char auth[SR_SIGV4_AUTH_MAX], canon[SR_SIGV4_CANON_MAX], sts[512];

    (void)state;
    s3_request(&r);
    r.method = "GET";
    r.path = "/test.txt";
    r.headers = h;
    r.nheaders = 4;
    assert_int_equal(sr_sigv4_sign(&r, auth, sizeof(auth), canon, sizeof(canon), sts, sizeof(sts)),
                     0);
    assert_string_equal(canon, "GET\n/test.txt\n\n"
                               "host:examplebucket.s3.amazonaws.com\n"
                               "range:bytes=0-9\n"
                               "x-amz-content-sha256:" EMPTY_SHA "\n"
                               "x-amz-date:20130524T000000Z\n\n"
                               "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                             "20130524/us-east-1/s3/aws4_request\n"
                             "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                              "s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-"
                              "date,Signature="
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_s3_put_object(void **state)
{
    /* The body is "Welcome to Amazon S3."; '$' in the key is encoded as %24. */
    const char *body_sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    const struct sr_sigv4_header h[] = {
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"Host", S3_HOST},
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-date", S3_DATE},
        {"x-amz-content-sha256", body_sha},
    };
    struct sr_sigv4_request r;
    char auth[SR_SIGV4_AUTH_MAX], canon[SR_SIGV4_CANON_MAX];

    (void)state;
    s3_request(&r);
    r.method = "PUT";
    r.path = "/test$file.text";
    r.headers = h;
    r.nheaders = 5;
    r.payload_hash = body_sha;
    assert_int_equal(sr_sigv4_sign(&r, auth, sizeof(auth), canon, sizeof(canon), NULL, 0), 0);
    assert_non_null(strstr(canon, "PUT\n/test%24file.text\n\n"));
    assert_non_null(strstr(auth, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-"
                                 "storage-class,"));
    assert_string_equal(signature_of(auth),
                        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_s3_get_lifecycle(void **state)
{
    /* A valueless parameter is signed as "lifecycle=". */
    const struct sr_sigv4_param q[] = {{"lifecycle", NULL}};
    const struct sr_sigv4_header h[] = {
        {"Host", S3_HOST}, {"x-amz-content-sha256", EMPTY_SHA}, {"x-amz-date", S3_DATE}};
    struct sr_sigv4_request r;
    char auth[SR_SIGV4_AUTH_MAX], canon[SR_SIGV4_CANON_MAX];

    (void)state;
    s3_request(&r);
    r.method = "GET";
    r.path = "/";
    r.query = q;
    r.nquery = 1;
    r.headers = h;
    r.nheaders = 3;
    assert_int_equal(sr_sigv4_sign(&r, auth, sizeof(auth), canon, sizeof(canon), NULL, 0), 0);
    assert_non_null(strstr(canon, "GET\n/\nlifecycle=\n"));
    assert_string_equal(signature_of(auth),
                        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void test_s3_list_objects(void **state)
{
    /* Given unsorted, signed sorted. */
    const struct sr_sigv4_param q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    const struct sr_sigv4_header h[] = {
        {"x-amz-date", S3_DATE}, {"x-amz-content-sha256", EMPTY_SHA}, {"host", S3_HOST}};
    struct sr_sigv4_request r;
    char auth[SR_SIGV4_AUTH_MAX], canon[SR_SIGV4_CANON_MAX];

    (void)state;
    s3_request(&r);
    r.method = "GET";
    r.path = "/";
    r.query = q;
    r.nquery = 2;
    r.headers = h;
    r.nheaders = 3;
    assert_int_equal(sr_sigv4_sign(&r, auth, sizeof(auth), canon, sizeof(canon), NULL, 0), 0);
    assert_non_null(strstr(canon, "GET\n/\nmax-keys=2&prefix=J\n"));
    assert_string_equal(signature_of(auth),
                        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static const char *suite_sign(const char *method, const char *path, const struct sr_sigv4_param *q,
                              size_t nq, char *auth, size_t len)
{
    const struct sr_sigv4_header h[] = {{"Host", "example.amazonaws.com"},
                                        {"X-Amz-Date", "20150830T123600Z"}};
    struct sr_sigv4_request r;

    memset(&r, 0, sizeof(r));
    r.method = method;
    r.path = path;
    r.query = q;
    r.nquery = nq;
    r.headers = h;
    r.nheaders = 2;
    r.payload_hash = EMPTY_SHA;
    r.access_key = SUITE_AK;
    r.secret_key = SUITE_SK;
    r.region = "us-east-1";
    r.service = "service";
    r.amz_date = "20150830T123600Z";
    assert_int_equal(sr_sigv4_sign(&r, auth, len, NULL, 0, NULL, 0), 0);
    return signature_of(auth);
}

static void test_suite_vectors(void **state)
{
    const struct sr_sigv4_param order[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    const struct sr_sigv4_param one[] = {{"Param1", "value1"}};
    char auth[SR_SIGV4_AUTH_MAX];

    (void)state;
    assert_string_equal(suite_sign("GET", "/", NULL, 0, auth, sizeof(auth)),
                        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                              "aws4_request,SignedHeaders=host;x-amz-date,Signature="
                              "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_string_equal(suite_sign("GET", "/", order, 2, auth, sizeof(auth)),
                        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    assert_string_equal(suite_sign("GET", "/", one, 1, auth, sizeof(auth)),
                        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
    assert_string_equal(suite_sign("GET", "/\xe1\x88\xb4", NULL, 0, auth, sizeof(auth)),
                        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
    assert_string_equal(suite_sign("POST", "/", NULL, 0, auth, sizeof(auth)),
                        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

static void test_encoding(void **state)
{
    char out[256];
    size_t len = 0;
    const struct sr_sigv4_param q[] = {{"prefix", "snapshots/ws-1/"},
                                       {"list-type", "2"},
                                       {"continuation-token", "1/ab+c=="},
                                       {"max-keys", "1000"}};

    (void)state;
    assert_int_equal(sr_sigv4_encode("a b/c~d._-*+=&\xc3\xa9", false, out, sizeof(out), &len), 0);
    assert_string_equal(out, "a%20b%2Fc~d._-%2A%2B%3D%26%C3%A9");
    len = 0;
    assert_int_equal(sr_sigv4_encode("/bucket/a b/c", true, out, sizeof(out), &len), 0);
    assert_string_equal(out, "/bucket/a%20b/c");
    len = 0;
    assert_int_equal(sr_sigv4_encode("abcdef", false, out, 4, &len), -1);
    assert_int_equal(sr_sigv4_canonical_query(q, 4, out, sizeof(out)), 0);
    assert_string_equal(out, "continuation-token=1%2Fab%2Bc%3D%3D&list-type=2&max-keys=1000&"
                             "prefix=snapshots%2Fws-1%2F");
    assert_int_equal(sr_sigv4_canonical_query(q, 4, out, 20), -1);
    sr_sigv4_date(0, out);
    assert_string_equal(out, "19700101T000000Z");
    sr_sigv4_date(1369353600, out);
    assert_string_equal(out, S3_DATE);
}

static void test_header_values_and_errors(void **state)
{
    /* Leading, trailing and repeated spaces do not change what is signed. */
    const struct sr_sigv4_header a[] = {{"Host", "example.amazonaws.com"},
                                        {"X-Amz-Date", "20150830T123600Z"},
                                        {"My-Header", "  a   b  "}};
    const struct sr_sigv4_header b[] = {{"host", "example.amazonaws.com"},
                                        {"x-amz-date", "20150830T123600Z"},
                                        {"my-header", "a b"}};
    struct sr_sigv4_request r;
    char auth1[SR_SIGV4_AUTH_MAX], auth2[SR_SIGV4_AUTH_MAX];

    (void)state;
    memset(&r, 0, sizeof(r));
    r.method = "GET";
    r.path = "/";
    r.payload_hash = EMPTY_SHA;
    r.access_key = SUITE_AK;
    r.secret_key = SUITE_SK;
    r.region = "us-east-1";
    r.service = "service";
    r.amz_date = "20150830T123600Z";
    r.headers = a;
    r.nheaders = 3;
    assert_int_equal(sr_sigv4_sign(&r, auth1, sizeof(auth1), NULL, 0, NULL, 0), 0);
    r.headers = b;
    assert_int_equal(sr_sigv4_sign(&r, auth2, sizeof(auth2), NULL, 0, NULL, 0), 0);
    assert_string_equal(auth1, auth2);
    /* The secret never appears in what the signer returns. */
    assert_null(strstr(auth1, SUITE_SK));
    r.amz_date = "2015";
    assert_int_equal(sr_sigv4_sign(&r, auth1, sizeof(auth1), NULL, 0, NULL, 0), -1);
    r.amz_date = "20150830T123600Z";
    r.path = "relative";
    assert_int_equal(sr_sigv4_sign(&r, auth1, sizeof(auth1), NULL, 0, NULL, 0), -1);
    r.path = "/";
    assert_int_equal(sr_sigv4_sign(&r, auth1, 20, NULL, 0, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_get_object),
        cmocka_unit_test(test_s3_put_object),
        cmocka_unit_test(test_s3_get_lifecycle),
        cmocka_unit_test(test_s3_list_objects),
        cmocka_unit_test(test_suite_vectors),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_header_values_and_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
