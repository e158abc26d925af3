/*
 * The strict XML scanner behind S3 error and listing responses.
 *
 * S3 bodies are small, machine-written documents: a declaration, one root,
 * nested elements with text, a handful of entities. Rather than pull a
 * general XML library into the worker, we accept exactly that subset and
 * refuse everything else (DOCTYPE, unbalanced tags, stray '<' or '&', bad
 * numeric references), with named limits on depth and sizes. The scanner
 * never allocates: all state lives in one struct on the stack.
 */
#include "store/s3xml.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct s3xml {
    const char *p;
    const char *end;
    char path[SR_S3XML_PATH_MAX];
    size_t plen;
    size_t marks[SR_S3XML_DEPTH_MAX]; /* path length before each open element */
    int depth;
    char text[SR_S3XML_TEXT_MAX];
    size_t tlen;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' ||
           (unsigned char)c >= 0x80;
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool starts(const struct s3xml *x, const char *s)
{
    size_t n = strlen(s);

    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

static void skip_space(struct s3xml *x)
{
    while (x->p < x->end && is_space(*x->p))
        x->p++;
}

/* Skips past the terminator, or fails when the input ends first. */
static int skip_past(struct s3xml *x, const char *term)
{
    size_t n = strlen(term);

    while ((size_t)(x->end - x->p) >= n) {
        if (memcmp(x->p, term, n) == 0) {
            x->p += n;
            return 0;
        }
        x->p++;
    }
    return SR_S3XML_E_SYNTAX;
}

/* Reads a name; *local points past any namespace prefix. */
static int read_name(struct s3xml *x, const char **start, size_t *len, const char **local)
{
    if (x->p >= x->end || !name_start(*x->p))
        return SR_S3XML_E_SYNTAX;
    *start = x->p;
    *local = x->p;
    while (x->p < x->end && name_char(*x->p)) {
        if (*x->p == ':')
            *local = x->p + 1;
        x->p++;
    }
    *len = (size_t)(x->p - *start);
    if (*local == x->p)
        return SR_S3XML_E_SYNTAX; /* "a:" has no local part */
    return 0;
}

static int text_put(struct s3xml *x, const char *s, size_t n)
{
    if (x->tlen + n >= sizeof(x->text))
        return SR_S3XML_E_LIMIT;
    memcpy(x->text + x->tlen, s, n);
    x->tlen += n;
    return 0;
}

static int put_utf8(struct s3xml *x, uint32_t cp)
{
    char b[4];
    size_t n;

    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || cp == 0xFFFE ||
        cp == 0xFFFF || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r'))
        return SR_S3XML_E_SYNTAX;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return text_put(x, b, n);
}

/* Decodes the reference at x->p ('&'); appends it when keep, else only checks it. */
static int entity(struct s3xml *x, bool keep)
{
    static const struct {
        const char *name;
        char ch;
    } named[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    uint32_t cp = 0;
    int digits = 0;

    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        if (starts(x, named[i].name)) {
            x->p += strlen(named[i].name);
            return keep ? text_put(x, &named[i].ch, 1) : 0;
        }
    }
    if (!starts(x, "&#"))
        return SR_S3XML_E_SYNTAX;
    x->p += 2;
    if (x->p < x->end && *x->p == 'x') {
        x->p++;
        for (; x->p < x->end && *x->p != ';'; x->p++, digits++) {
            char c = *x->p;
            uint32_t v;

            if (c >= '0' && c <= '9')
                v = (uint32_t)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v = (uint32_t)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v = (uint32_t)(c - 'A' + 10);
            else
                return SR_S3XML_E_SYNTAX;
            if (digits >= 8)
                return SR_S3XML_E_SYNTAX;
            cp = cp * 16 + v;
        }
    } else {
        for (; x->p < x->end && *x->p != ';'; x->p++, digits++) {
            if (*x->p < '0' || *x->p > '9' || digits >= 8)
                return SR_S3XML_E_SYNTAX;
            cp = cp * 10 + (uint32_t)(*x->p - '0');
        }
    }
    if (x->p >= x->end || digits == 0)
        return SR_S3XML_E_SYNTAX;
    x->p++; /* ';' */
    if (!keep) {
        size_t save = x->tlen;
        int rc = put_utf8(x, cp);

        x->tlen = save;
        return rc == SR_S3XML_E_LIMIT ? 0 : rc;
    }
    return put_utf8(x, cp);
}

/* Attributes up to '>' or "/>": checked for syntax, values ignored. */
static int attributes(struct s3xml *x, bool *empty)
{
    for (;;) {
        const char *s, *l;
        size_t n;
        char q;
        bool had_space = x->p < x->end && is_space(*x->p);

        skip_space(x);
        if (x->p >= x->end)
            return SR_S3XML_E_SYNTAX;
        if (*x->p == '>') {
            x->p++;
            *empty = false;
            return 0;
        }
        if (starts(x, "/>")) {
            x->p += 2;
            *empty = true;
            return 0;
        }
        if (!had_space || read_name(x, &s, &n, &l) != 0)
            return SR_S3XML_E_SYNTAX;
        skip_space(x);
        if (x->p >= x->end || *x->p != '=')
            return SR_S3XML_E_SYNTAX;
        x->p++;
        skip_space(x);
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
            return SR_S3XML_E_SYNTAX;
        q = *x->p++;
        while (x->p < x->end && *x->p != q) {
            if (*x->p == '<')
                return SR_S3XML_E_SYNTAX;
            if (*x->p == '&') {
                int rc = entity(x, false);

                if (rc != 0)
                    return rc;
                continue;
            }
            x->p++;
        }
        if (x->p >= x->end)
            return SR_S3XML_E_SYNTAX;
        x->p++;
    }
}

static int open_element(struct s3xml *x, sr_s3xml_cb cb, void *arg)
{
    const char *s, *l;
    size_t n, ln;
    bool empty = false;
    int rc;

    x->p++; /* '<' */
    rc = read_name(x, &s, &n, &l);
    if (rc != 0)
        return rc;
    ln = n - (size_t)(l - s);
    if (x->depth >= SR_S3XML_DEPTH_MAX)
        return SR_S3XML_E_LIMIT;
    if (x->plen + 1 + ln >= sizeof(x->path))
        return SR_S3XML_E_LIMIT;
    x->marks[x->depth++] = x->plen;
    if (x->plen > 0)
        x->path[x->plen++] = '/';
    memcpy(x->path + x->plen, l, ln);
    x->plen += ln;
    x->path[x->plen] = '\0';
    x->tlen = 0;
    rc = attributes(x, &empty);
    if (rc != 0)
        return rc;
    if (empty) {
        x->text[0] = '\0';
        rc = cb(arg, x->path, x->text, 0);
        if (rc != 0)
            return rc;
        x->plen = x->marks[--x->depth];
        x->path[x->plen] = '\0';
    }
    return 0;
}

static int close_element(struct s3xml *x, sr_s3xml_cb cb, void *arg)
{
    const char *s, *l;
    size_t n, ln, mark;
    int rc;

    x->p += 2; /* "</" */
    rc = read_name(x, &s, &n, &l);
    if (rc != 0)
        return rc;
    ln = n - (size_t)(l - s);
    skip_space(x);
    if (x->p >= x->end || *x->p != '>' || x->depth == 0)
        return SR_S3XML_E_SYNTAX;
    x->p++;
    mark = x->marks[x->depth - 1];
    /* The closing name must be the innermost open element's (compared on the local part). */
    {
        size_t off = mark == 0 ? 0 : mark + 1;

        if (x->plen - off != ln || memcmp(x->path + off, l, ln) != 0)
            return SR_S3XML_E_SYNTAX;
    }
    x->text[x->tlen] = '\0';
    rc = cb(arg, x->path, x->text, x->tlen);
    if (rc != 0)
        return rc;
    x->depth--;
    x->plen = mark;
    x->path[x->plen] = '\0';
    x->tlen = 0;
    return 0;
}

/* The prologue and epilogue: whitespace, the declaration, comments, processing instructions. */
static int misc(struct s3xml *x)
{
    for (;;) {
        skip_space(x);
        if (starts(x, "<?")) {
            if (skip_past(x, "?>") != 0)
                return SR_S3XML_E_SYNTAX;
        } else if (starts(x, "<!--")) {
            x->p += 4;
            if (skip_past(x, "-->") != 0)
                return SR_S3XML_E_SYNTAX;
        } else {
            return 0;
        }
    }
}

int sr_s3xml_scan(const char *buf, size_t n, sr_s3xml_cb cb, void *arg)
{
    struct s3xml x;
    int rc;

    x.p = buf;
    x.end = buf + n;
    x.plen = 0;
    x.path[0] = '\0';
    x.depth = 0;
    x.tlen = 0;
    /* A UTF-8 byte order mark may precede the declaration. */
    if (starts(&x, "\xEF\xBB\xBF"))
        x.p += 3;
    rc = misc(&x);
    if (rc != 0)
        return rc;
    if (x.p >= x.end || *x.p != '<' || x.p + 1 >= x.end || !name_start(x.p[1]))
        return SR_S3XML_E_SYNTAX;
    rc = open_element(&x, cb, arg);
    if (rc != 0)
        return rc;
    while (x.depth > 0) {
        if (x.p >= x.end)
            return SR_S3XML_E_SYNTAX;
        if (starts(&x, "</")) {
            rc = close_element(&x, cb, arg);
        } else if (starts(&x, "<!--")) {
            x.p += 4;
            rc = skip_past(&x, "-->");
        } else if (starts(&x, "<![CDATA[")) {
            const char *s = x.p + 9;

            x.p = s;
            rc = skip_past(&x, "]]>");
            if (rc == 0)
                rc = text_put(&x, s, (size_t)(x.p - 3 - s));
        } else if (starts(&x, "<?")) {
            rc = skip_past(&x, "?>");
        } else if (*x.p == '<') {
            rc = open_element(&x, cb, arg);
        } else if (*x.p == '&') {
            rc = entity(&x, true);
        } else {
            const char *s = x.p;

            while (x.p < x.end && *x.p != '<' && *x.p != '&') {
                if (*x.p == '\0')
                    return SR_S3XML_E_SYNTAX;
                x.p++;
            }
            rc = text_put(&x, s, (size_t)(x.p - s));
        }
        if (rc != 0)
            return rc;
    }
    rc = misc(&x);
    if (rc != 0)
        return rc;
    return x.p == x.end ? 0 : SR_S3XML_E_SYNTAX;
}
