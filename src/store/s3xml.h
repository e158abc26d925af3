/*
 * A small strict XML scanner for exactly what S3 services return: error
 * documents and ListObjectsV2 pages.
 *
 * It reports every element as it closes, with its slash-joined path
 * ("ListBucketResult/Contents/Key", namespace prefixes dropped) and its
 * decoded direct text. Attributes (xmlns among them) are checked and ignored,
 * so documents in any namespace read the same. DOCTYPE is refused, so no
 * entity beyond the five predefined ones and numeric references can exist.
 *
 * Ownership: the input is borrowed; path and text passed to the callback are
 * valid only during the call.
 */
#ifndef SR_STORE_S3XML_H
#define SR_STORE_S3XML_H

#include <stddef.h>

/* Bounds: element nesting, the joined path, and one element's text. */
#define SR_S3XML_DEPTH_MAX 16
#define SR_S3XML_PATH_MAX  256
#define SR_S3XML_TEXT_MAX  8192

#define SR_S3XML_E_SYNTAX (-1) /* not well-formed, or outside what we accept */
#define SR_S3XML_E_LIMIT  (-2) /* deeper, longer or larger than the bounds above */

/* Called for each closing element. Return non-zero to stop; the scanner returns that value. */
typedef int (*sr_s3xml_cb)(void *arg, const char *path, const char *text, size_t textlen);

/* 0 when the document is well-formed and the callback never stopped it; else SR_S3XML_E_* or
 * the callback's value. */
int sr_s3xml_scan(const char *buf, size_t n, sr_s3xml_cb cb, void *arg);

#endif
