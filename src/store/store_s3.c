/*
 * The S3 store (placeholder until the libcurl transport lands): refuses to
 * open, so callers get a clear configuration error rather than a link error.
 */
#include "store/store_impl.h"

int sr_store_s3_open(const struct sr_store_config *c, struct sr_store **out, char *err,
                     size_t errlen)
{
    (void)c;
    *out = NULL;
    return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                         "the S3 store is not available in this build yet");
}
