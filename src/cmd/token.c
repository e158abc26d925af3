/*
 * `serena-remote token`: a new random token (32 bytes from the OS,
 * base64url) and its sha256: form, so the plaintext can go to the client
 * and only the digest into the gateway's configuration; with --session-key,
 * a key for SERENA_SESSION_KEY; with --snapshot-key, one for
 * SERENA_SNAPSHOT_KEY.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cmd/cmd.h"
#include "core/mem.h"
#include "core/sha256.h"

int sr_cmd_token(int argc, char **argv)
{
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("Usage: serena-remote token [--session-key | --snapshot-key]\n\n"
               "Prints a new token (32 random bytes, base64url) on the first line and its\n"
               "sha256:<hex> form on the second. Give the token to the client; put either\n"
               "form in API_TOKEN / API_TOKENS_JSON / API_TOKENS_FILE.\n\n"
               "--session-key prints a new key for SERENA_SESSION_KEY instead (32 random\n"
               "bytes, base64url): give the same key to every replica and to the Worker so\n"
               "that any of them can resume a client's session.\n\n"
               "--snapshot-key prints a new key for SERENA_SNAPSHOT_KEY (32 random bytes,\n"
               "base64): every object the snapshots write is then encrypted with it\n"
               "(AES-256-GCM). Keep a copy: without it no snapshot can be restored. To\n"
               "rotate, put the new key first and the old one after a comma.\n");
        return 0;
    }
    if (argc == 1 &&
        (strcmp(argv[0], "--session-key") == 0 || strcmp(argv[0], "--snapshot-key") == 0)) {
        uint8_t key[32];
        char text[48];
        if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
            perror("serena-remote token: getrandom");
            return 1;
        }
        size_t n = sr_base64url_encode(key, sizeof(key), text);
        text[n] = '\0';
        printf("%s\n", text);
        return 0;
    }
    if (argc > 0) {
        fprintf(stderr, "serena-remote token: unexpected argument %s\n", argv[0]);
        return 2;
    }
    uint8_t raw[32], digest[SR_SHA256_LEN];
    char tok[48], hex[SR_SHA256_LEN * 2 + 1];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        perror("serena-remote token: getrandom");
        return 1;
    }
    size_t n = sr_base64url_encode(raw, sizeof(raw), tok);
    tok[n] = '\0';
    sr_sha256(tok, n, digest);
    sr_hex_encode(digest, sizeof(digest), hex);
    hex[sizeof(hex) - 1] = '\0';
    printf("%s\nsha256:%s\n", tok, hex);
    return 0;
}
