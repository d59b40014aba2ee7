/* Checks of a request head that libmicrohttpd 0.9.75 does not make, so
 * that talon and a proxy in front of it never disagree on where a request
 * ends (RFC 9112 sections 3.2, 5, 6.1 and 6.3). No libmicrohttpd here: the
 * engine calls these on the head it copied. */
#ifndef TALON_HTTP_FRAMING_H
#define TALON_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "talon/app.h"

/* True when the len bytes of s are a non-empty RFC 9110 token (tchar). */
bool talon_http_is_token(const char *s, size_t len);

/* Whether the comma-separated list of a field value (RFC 9110 section 5.6.1)
 * has token as an element, compared case-insensitively. */
bool talon_http_list_has(const char *value, const char *token);

/* One header field as the client sent it. Returns 0, or 400 with *why set
 * when the name is not a token (whitespace before the colon, section 5.1)
 * or the value contains CR, LF or NUL (RFC 9110 section 5.5). */
int talon_framing_check_field(const char *name, size_t name_len, const char *value,
                              size_t value_len, const char **why);

/* The whole head, after its fields were added to req. Returns 0, or the
 * status to send (400 or 501) with *why set; the engine then closes the
 * connection. Checks the method token, a single Host, Content-Length
 * duplicates, and that Transfer-Encoding is exactly "chunked" once, which
 * is the only framing libmicrohttpd decodes. */
int talon_framing_check_head(const talon_req *req, const char **why);

#endif
