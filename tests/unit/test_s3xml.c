/*
 * Unit tests for the strict S3 XML scanner: real responses captured from
 * Swift's s3api and s3rver (namespaces differ; both must read the same),
 * entities and numeric references, and the documents it must refuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/s3xml.h"

struct seen {
    char paths[32][SR_S3XML_PATH_MAX];
    char texts[32][256];
    int n;
};

static int record(void *arg, const char *path, const char *text, size_t n)
{
    struct seen *s = arg;

    assert_int_equal(strlen(text), n);
    if (s->n < 32) {
        snprintf(s->paths[s->n], sizeof(s->paths[0]), "%s", path);
        snprintf(s->texts[s->n], sizeof(s->texts[0]), "%s", text);
        s->n++;
    }
    return 0;
}

static const char *text_of(const struct seen *s, const char *path)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->paths[i], path) == 0)
            return s->texts[i];
    }
    return NULL;
}

static int scan(const char *doc, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    return sr_s3xml_scan(doc, strlen(doc), record, s);
}

static void test_swift_list(void **state)
{
    /* Captured from Swift 2.30.1 s3api (ListObjectsV2, max-keys=1). */
    const char *doc =
        "<?xml version='1.0' encoding='UTF-8'?>\n<ListBucketResult "
        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>snapshots</Name><Prefix>a/"
        "</Prefix><NextContinuationToken>YS9iaWcuYmlu</NextContinuationToken><KeyCount>1</"
        "KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>a/big.bin</"
        "Key><LastModified>2026-11-25T13:58:09.000Z</LastModified><ETag>\"8a0e18edee22898260fb376f"
        "8dab7de5\"</ETag><Size>3000000</Size><StorageClass>STANDARD</StorageClass></Contents></"
        "ListBucketResult>";
    struct seen s;

    (void)state;
    assert_int_equal(scan(doc, &s), 0);
    assert_string_equal(text_of(&s, "ListBucketResult/NextContinuationToken"), "YS9iaWcuYmlu");
    assert_string_equal(text_of(&s, "ListBucketResult/IsTruncated"), "true");
    assert_string_equal(text_of(&s, "ListBucketResult/Contents/Key"), "a/big.bin");
    assert_string_equal(text_of(&s, "ListBucketResult/Contents/Size"), "3000000");
    assert_string_equal(s.paths[s.n - 1], "ListBucketResult");
}

static void test_s3rver_list(void **state)
{
    /* Captured from s3rver 3.7.1: another namespace, &quot; in the ETag, '+/=' in the token. */
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
        "xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\"><Name>snapshots</Name><Prefix>a/</"
        "Prefix><NextContinuationToken>1luMhADDKTt/61m2e9U/ZrQ4toolyb8HENGW1CHO38mNc8g3lUeYVQ==</"
        "NextContinuationToken><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</"
        "IsTruncated><Contents><Key>a/big.bin</Key><LastModified>2026-11-25T13:57:40.000Z</"
        "LastModified><ETag>&quot;8a0e18edee22898260fb376f8dab7de5&quot;</ETag><Size>3000000</"
        "Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>";
    struct seen s;

    (void)state;
    assert_int_equal(scan(doc, &s), 0);
    assert_string_equal(text_of(&s, "ListBucketResult/NextContinuationToken"),
                        "1luMhADDKTt/61m2e9U/ZrQ4toolyb8HENGW1CHO38mNc8g3lUeYVQ==");
    assert_string_equal(text_of(&s, "ListBucketResult/Contents/ETag"),
                        "\"8a0e18edee22898260fb376f8dab7de5\"");
}

static void test_error_doc(void **state)
{
    const char *doc = "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SignatureDoesNotMatch"
                      "</Code><Message>The request signature we calculated does not match the "
                      "signature you provided. Check your key and signing method.</Message>"
                      "<StringToSign>AWS4-HMAC-SHA256\n20261125T135833Z\n</StringToSign>"
                      "<RequestId>tx1</RequestId></Error>";
    struct seen s;

    (void)state;
    assert_int_equal(scan(doc, &s), 0);
    assert_string_equal(text_of(&s, "Error/Code"), "SignatureDoesNotMatch");
    assert_string_equal(text_of(&s, "Error/StringToSign"), "AWS4-HMAC-SHA256\n20261125T135833Z\n");
}

static void test_entities_and_forms(void **state)
{
    const char *doc =
        "\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- lead -->\n<p:R xmlns:p=\"urn:x\" "
        "a='1&amp;2'><p:K>&amp;&lt;&gt;&quot;&apos;&#65;&#x263a;&#x1F600;</p:K>"
        "<E/><E a=\"1\" /><C><![CDATA[a<b&c]]></C><!-- mid --></p:R>\n<!-- tail -->\n";
    struct seen s;

    (void)state;
    assert_int_equal(scan(doc, &s), 0);
    assert_string_equal(text_of(&s, "R/K"), "&<>\"'A\xe2\x98\xba\xf0\x9f\x98\x80");
    assert_string_equal(text_of(&s, "R/E"), "");
    assert_string_equal(text_of(&s, "R/C"), "a<b&c");
    assert_string_equal(s.paths[s.n - 1], "R");
}

static void test_refused(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "text",
        "<a>",
        "<a></b>",
        "<a><b></a></b>",
        "<a>x</a><b/>",
        "<a>x</a>trailing",
        "<a>&unknown;</a>",
        "<a>& </a>",
        "<a>&#0;</a>",
        "<a>&#xD800;</a>",
        "<a>&#x110000;</a>",
        "<a>&#;</a>",
        "<a>&#x;</a>",
        "<a>&#123456789;</a>",
        "<a>&amp</a>",
        "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
        "<a b></a>",
        "<a b=c></a>",
        "<a b=\"<\"></a>",
        "<a b=\"1\"c=\"2\"></a>",
        "<a:>x</a:>",
        "<a><![CDATA[x</a>",
        "<a><!-- x </a>",
        "<?xml version='1.0'",
        "<1a/>",
        "</a>",
    };
    struct seen s;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = scan(bad[i], &s);

        if (rc != SR_S3XML_E_SYNTAX)
            fail_msg("accepted or misjudged (%d): %s", rc, bad[i]);
    }
    /* An embedded NUL is refused too. */
    assert_int_equal(sr_s3xml_scan("<a>x\0y</a>", 10, record, &s), SR_S3XML_E_SYNTAX);
}

static void test_limits(void **state)
{
    char doc[40000];
    size_t n = 0;
    struct seen s;

    (void)state;
    for (int i = 0; i < SR_S3XML_DEPTH_MAX + 1; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<a>");
    for (int i = 0; i < SR_S3XML_DEPTH_MAX + 1; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</a>");
    assert_int_equal(scan(doc, &s), SR_S3XML_E_LIMIT);
    n = (size_t)snprintf(doc, sizeof(doc), "<a>");
    memset(doc + n, 'x', SR_S3XML_TEXT_MAX);
    n += SR_S3XML_TEXT_MAX;
    snprintf(doc + n, sizeof(doc) - n, "</a>");
    assert_int_equal(scan(doc, &s), SR_S3XML_E_LIMIT);
}

static int stop_at_key(void *arg, const char *path, const char *text, size_t n)
{
    (void)arg;
    (void)text;
    (void)n;
    return strcmp(path, "R/K") == 0 ? 42 : 0;
}

static void test_callback_stops(void **state)
{
    const char *doc = "<R><K>1</K><K>2</K></R>";

    (void)state;
    assert_int_equal(sr_s3xml_scan(doc, strlen(doc), stop_at_key, NULL), 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swift_list),     cmocka_unit_test(test_s3rver_list),
        cmocka_unit_test(test_error_doc),      cmocka_unit_test(test_entities_and_forms),
        cmocka_unit_test(test_refused),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_callback_stops),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
