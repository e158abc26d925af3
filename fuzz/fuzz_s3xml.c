/*
 * libFuzzer harness for the S3 XML scanner: any input must be scanned
 * without reading out of bounds, every path and text handed to the callback
 * must be NUL-terminated at the length given and within the bounds, and the
 * result must be 0 or one of the scanner's error codes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *arg, const char *path, const char *text, size_t n)
{
    size_t *count = arg;

    if (strlen(path) >= SR_S3XML_PATH_MAX || n >= SR_S3XML_TEXT_MAX || text[n] != '\0')
        abort();
    (*count)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy with no slack, so ASan catches any read past the end. */
    char *buf = malloc(size > 0 ? size : 1);
    size_t count = 0;
    int rc;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    rc = sr_s3xml_scan(buf, size, check, &count);
    if (rc != 0 && rc != SR_S3XML_E_SYNTAX && rc != SR_S3XML_E_LIMIT)
        abort();
    free(buf);
    return 0;
}
