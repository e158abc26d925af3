/*
 * Key lists (see keylist.h).
 *
 * Surrounding spaces and a trailing newline are tolerated around each entry
 * (values pasted from a file), nothing else: a key that decodes to anything
 * but exactly 32 bytes is refused rather than padded or cut, so a truncated
 * paste can never become a weak key.
 */
#include "core/keylist.h"

#include "core/mem.h"
#include "core/text.h"

#define PLAINTEXT_WORD "plaintext"

static void say(char *err, size_t errlen, const char *setting, const char *what, uint32_t idx,
                const char *why)
{
    struct sr_text t;

    if (err == NULL || errlen == 0)
        return;
    sr_text_init(&t, err, errlen);
    sr_text_put(&t, setting);
    sr_text_put(&t, ": ");
    if (what != NULL) {
        sr_text_put(&t, what);
        sr_text_u64(&t, idx);
        sr_text_put(&t, " ");
    }
    sr_text_put(&t, why);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Standard or URL-safe base64, padded or not, into exactly SR_KEY_LEN bytes. */
static int decode_key(const char *s, size_t n, uint8_t out[SR_KEY_LEN])
{
    char norm[64];
    uint8_t buf[48];
    size_t len = 0;

    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n >= sizeof(norm))
        return -1;
    for (size_t i = 0; i < n; i++)
        norm[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    if (sr_base64url_decode(norm, n, buf, sizeof(buf), &len) != 0 || len != SR_KEY_LEN) {
        sr_mem_set(buf, 0, sizeof(buf));
        sr_mem_set(norm, 0, sizeof(norm));
        return -1;
    }
    sr_mem_copy(out, buf, SR_KEY_LEN);
    sr_mem_set(buf, 0, sizeof(buf));
    sr_mem_set(norm, 0, sizeof(norm));
    return 0;
}

void sr_keylist_wipe(struct sr_keylist *k)
{
    if (k != NULL)
        sr_mem_set(k, 0, sizeof(*k));
}

int sr_keylist_parse(struct sr_keylist *k, const char *s, size_t n, const char *setting, char *err,
                     size_t errlen)
{
    size_t i = 0;
    uint32_t idx = 0;

    if (setting == NULL)
        setting = "key list";
    sr_keylist_wipe(k);
    if (s == NULL || n == 0) {
        say(err, errlen, setting, NULL, 0, "is empty");
        return -1;
    }
    for (;;) {
        size_t b = i, e;

        while (i < n && s[i] != ',')
            i++;
        e = i;
        idx++;
        while (b < e && is_space(s[b]))
            b++;
        while (e > b && is_space(s[e - 1]))
            e--;
        if (e - b == sizeof(PLAINTEXT_WORD) - 1 &&
            sr_mem_eq(s + b, PLAINTEXT_WORD, sizeof(PLAINTEXT_WORD) - 1)) {
            if (idx == 1) {
                say(err, errlen, setting, NULL, 0,
                    "\"plaintext\" cannot come first: the first entry encrypts every new "
                    "object; put a key first and \"plaintext\" after it");
                goto fail;
            }
            k->plaintext = true;
        } else if (e == b) {
            say(err, errlen, setting, "entry ", idx,
                "is empty (keys are separated by single commas)");
            goto fail;
        } else if (k->n >= SR_KEYLIST_MAX) {
            say(err, errlen, setting, NULL, 0, "holds more than 8 keys");
            goto fail;
        } else if (decode_key(s + b, e - b, k->key[k->n]) != 0) {
            say(err, errlen, setting, "key ", idx,
                "is not 32 bytes of base64 (make one with `serena-remote token --snapshot-key`; "
                "several keys are separated by commas, the first encrypts new objects)");
            goto fail;
        } else {
            k->n++;
        }
        if (i >= n)
            break;
        i++; /* the comma */
    }
    return 0;
fail:
    sr_keylist_wipe(k);
    return -1;
}
