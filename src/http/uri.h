/* Percent-decoding of paths and query strings. A '%' not followed by two hex
 * digits is kept literally, as Falcon's falcon.uri.decode does. */
#ifndef TALON_HTTP_URI_H
#define TALON_HTTP_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "http/arena.h"

/* Decode len bytes of src into dst (room for len + 1 bytes) and append a NUL.
 * dst may be src: no byte is written before the bytes it decodes from are
 * read. plus_is_space: '+' becomes ' ' (query strings only). *had_nul, unless
 * had_nul is NULL, is set when "%00" was decoded, because a C string cannot
 * carry it. Returns the length. */
size_t talon_uri_decode(char *dst, const char *src, size_t len, bool plus_is_space,
                        bool *had_nul);
/* Decode into a new arena string; NULL on ENOMEM. */
char *talon_uri_decode_dup(talon_arena *arena, const char *src, size_t len,
                           bool plus_is_space, bool *had_nul);

#endif
