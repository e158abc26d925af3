/*
 * The native host's side of edge sessions (the format is core/session.h):
 * the session key, sealing and opening ids with AES-256-GCM (OpenSSL), and
 * the table that maps an edge session to the backend session that serves it
 * now.
 *
 * Keys: SERENA_SESSION_KEY holds one or more base64 keys of 32 bytes,
 * comma-separated; the first seals new ids, every one opens (rotation).
 * Without it the key is <state-dir>/session.key (created 0600 with 32 random
 * bytes on first use), so ids survive a restart of one gateway; several
 * replicas (and the Worker) share a key through the environment.
 *
 * The table is a cache, never the truth: an edge session whose entry is
 * missing (a restart, eviction at SR_SESSION_TABLE_MAX) or stale (the
 * backend's incarnation changed) is re-initialized from the claims in its
 * id. DELETE marks an id ended: it is refused from then on, also after a
 * restart or an eviction (<state-dir>/sessions.ended keeps the digests of
 * ended ids until they would have expired anyway; at most
 * SR_SESSION_ENDED_MAX, beyond which the soonest to expire is forgotten).
 *
 * Ownership: the table owns its entries; strings returned point into it and
 * are valid until the next call.
 */
#ifndef SR_HTTP_SESSION_H
#define SR_HTTP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/session.h"

struct sr_sessions;

/* keys_env: SERENA_SESSION_KEY or NULL; state_dir: where session.key lives (NULL: keys needed). */
int sr_sessions_new(const char *state_dir, const char *keys_env, uint32_t max_age,
                    struct sr_sessions **out, char *err, size_t errlen);
void sr_sessions_free(struct sr_sessions *s);

/* A new id for token `name` from the client's initialize body; its length, or -1. */
int sr_sessions_issue(struct sr_sessions *s, const char *name, const char *body, size_t n, char *id,
                      size_t cap);

/*
 * Open and judge an id for a request of token `name`: SR_SESSION_OK, or an
 * SR_SESSION_E_* (answer it with sr_session_error_body). An id seen before
 * is judged from its table entry without decrypting it again.
 */
int sr_sessions_open(struct sr_sessions *s, const char *id, size_t n, const char *name);

/*
 * What re-initializing an opened id's backend session needs: the initialize
 * body (its length is returned) and the recorded protocol version ("" when
 * none), or an SR_SESSION_E_* (negative).
 */
int sr_sessions_reinit(struct sr_sessions *s, const char *id, size_t n, char *reinit,
                       size_t reinit_cap, char *proto, size_t proto_cap);

/* The backend session serving edge id `id` on backend incarnation `inc`, or NULL. */
const char *sr_sessions_backend(struct sr_sessions *s, const char *id, size_t n, uint64_t inc);
/* Record (or replace) the backend session of an edge id. */
void sr_sessions_bind(struct sr_sessions *s, const char *id, size_t n, const char *backend,
                      size_t bn, uint64_t inc);
/* The backend no longer knows this session (it answered 404): forget the mapping. */
void sr_sessions_unbind(struct sr_sessions *s, const char *id, size_t n);
/* DELETE: later requests with this id are refused. */
void sr_sessions_end(struct sr_sessions *s, const char *id, size_t n);
/* Entries in the table (tests, status). */
uint32_t sr_sessions_count(const struct sr_sessions *s);

#endif
