#include "http/uri.h"

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t talon_uri_decode(char *dst, const char *src, size_t len, bool plus_is_space,
                        bool *had_nul)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            int hi = i + 1 < len ? hex_value((unsigned char)src[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value((unsigned char)src[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                c = (unsigned char)(hi << 4 | lo);
                if (c == 0 && had_nul != NULL)
                    *had_nul = true;
                i += 2;
            }
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return o;
}

char *talon_uri_decode_dup(talon_arena *arena, const char *src, size_t len,
                           bool plus_is_space, bool *had_nul)
{
    char *dst = talon_arena_alloc(arena, len + 1);
    if (dst == NULL)
        return NULL;
    talon_uri_decode(dst, src, len, plus_is_space, had_nul);
    return dst;
}
