/*
 * Unit tests for project specs (src/core/project.c): what a token's "project" may be, and every
 * hostile shape refused — options injection (a leading '-' in a host, user, path or ref,
 * "--upload-pack=", "-oProxyCommand="), git's transport syntax ("ext::"), "..", credentials in a
 * URL, shell and URL metacharacters, control characters — with a message that never quotes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/project.h"

static void ok(const char *s, enum sr_project_kind kind, const char *name, const char *ref)
{
    struct sr_project_spec p;
    const char *why = NULL;
    if (sr_project_spec_parse(s, strlen(s), &p, &why) != 0)
        fail_msg("refused %s: %s", s, why);
    assert_int_equal(p.kind, kind);
    if (kind == SR_PROJECT_GIT) {
        assert_string_equal(p.name, name);
        assert_int_equal(p.ref_len, strlen(ref));
        assert_memory_equal(s + p.ref_off, ref, p.ref_len);
        assert_int_equal(p.url_len, strlen(s) - (p.ref_len ? p.ref_len + 1 : 0));
    } else {
        assert_int_equal(p.url_len, strlen(s));
    }
}

static void bad(const char *s, const char *why_has)
{
    struct sr_project_spec p;
    const char *why = NULL;
    if (sr_project_spec_parse(s, strlen(s), &p, &why) == 0)
        fail_msg("accepted %s", s);
    if (why_has && !strstr(why, why_has))
        fail_msg("%s: expected '%s' in '%s'", s, why_has, why);
    /* The message is static: it never quotes the spec. */
    if (strlen(s) >= 6)
        assert_null(strstr(why, s));
}

static void test_accepted(void **state)
{
    (void)state;
    ok("https://github.com/oraios/serena.git", SR_PROJECT_GIT, "serena", "");
    ok("https://github.com/oraios/serena#v1.2.3", SR_PROJECT_GIT, "serena", "v1.2.3");
    ok("https://git.example.com:8443/team/proj/", SR_PROJECT_GIT, "proj", "");
    ok("ssh://git@github.com/me/repo.git#feature/x-1", SR_PROJECT_GIT, "repo", "feature/x-1");
    ok("ssh://host:2222/srv/git/a_b.git", SR_PROJECT_GIT, "a_b", "");
    ok("file:///tmp/origin/proj.git", SR_PROJECT_GIT, "proj", "");
    ok("file:///tmp/origin/proj.git#0123456789abcdef0123456789abcdef01234567", SR_PROJECT_GIT,
       "proj", "0123456789abcdef0123456789abcdef01234567");
    ok("file:///srv/r/.git", SR_PROJECT_GIT, "project", "");
    ok("/home/me/my project", SR_PROJECT_PATH, NULL, NULL);
    ok("/srv/code", SR_PROJECT_PATH, NULL, NULL);
}

static void test_refused(void **state)
{
    (void)state;
    bad("", "empty");
    bad("relative/path", "git URL");
    bad("-/x", "git URL");
    bad("--upload-pack=touch /tmp/pwned", "git URL");
    bad("ext::sh -c touch% /tmp/pwned", "transport");
    bad("https://host/x::y", "transport");
    bad("file:///tmp/a::b", "transport");
    bad("ssh://-oProxyCommand=touch /x", "host");
    bad("ssh://-oProxyCommand=sh/x", "host");
    bad("ssh://-user@host/x", "host");
    bad("ssh://us$er@host/x", "host");
    bad("https://user:secret@github.com/x.git", "credentials");
    bad("https://token@github.com/x.git", "credentials");
    bad("https://github.com", "repository path");
    bad("https://github.com/", "repository path");
    bad("https://github.com/a/../b", "repository path");
    bad("https://github.com/a/./b", "repository path");
    bad("https://github.com//a", "repository path");
    bad("https://github.com/-a/b", "repository path");
    bad("https://github.com/a b", "repository path");
    bad("https://github.com/a;rm", "repository path");
    bad("https://github.com/a$(id)", "repository path");
    bad("https://github.com/a%2e%2e/b", "repository path");
    bad("https://github.com/a`id`", "repository path");
    bad("http://github.com/a", "git URL");
    bad("git://github.com/a", "git URL");
    bad("git@github.com:me/repo.git", "git URL");
    bad("file://host/x", "absolute path");
    bad("file:///../etc", "absolute path");
    bad("https://github.com/a#-f", "ref");
    bad("https://github.com/a#--upload-pack=x", "ref");
    bad("https://github.com/a#a..b", "ref");
    bad("https://github.com/a#a//b", "ref");
    bad("https://github.com/a#x.lock", "ref");
    bad("https://github.com/a#", "ref");
    bad("https://github.com/a#x y", "ref");
    bad("https://github.com/a#x@{1}", "ref");
    bad("/home/../etc", "path");
    bad("/home/./x", "path");
    bad("/home//x", "path");
    bad("/-rf", "path");
    bad("/tmp/a\nb", "control");
    bad("https://github.com/a\tb", "control");
    char big[1100];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    bad(big, "1024");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
