/*
 * JSON-RPC error bodies (see errors.h).
 *
 * Written with the core's JSON writer so that a message is always escaped
 * correctly, whatever it quotes. The id is the request's own raw JSON (the
 * strict reader validated it), so a client can match the error to its call.
 */
#include "core/errors.h"

#include "core/json.h"
#include "core/mem.h"

int sr_error_body(char *out, size_t cap, int code, const char *message, const char *id_json,
                  size_t id_len)
{
    return sr_error_body_data(out, cap, code, message, NULL, 0, id_json, id_len);
}

int sr_error_body_data(char *out, size_t cap, int code, const char *message, const char *data_json,
                       size_t data_len, const char *id_json, size_t id_len)
{
    struct sr_jw w;
    size_t len = 0;

    if (out == NULL || message == NULL)
        return -1;
    sr_jw_init(&w, out, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "jsonrpc");
    sr_jw_cstr(&w, "2.0");
    sr_jw_key(&w, "error");
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "code");
    sr_jw_int(&w, code);
    sr_jw_key(&w, "message");
    sr_jw_cstr(&w, message);
    if (data_json != NULL && data_len > 0) {
        sr_jw_key(&w, "data");
        sr_jw_raw(&w, data_json, data_len);
    }
    sr_jw_obj_end(&w);
    sr_jw_key(&w, "id");
    if (id_json != NULL && id_len > 0)
        sr_jw_raw(&w, id_json, id_len);
    else
        sr_jw_null(&w);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0 || len >= cap)
        return -1;
    out[len] = '\0';
    return (int)len;
}
