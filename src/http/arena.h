/* Per-request bump allocator: every string a request copies (headers, query
 * values, route fields, context keys) lives here and is freed in one call.
 * Not thread-safe: only the engine thread that runs the pipeline allocates. */
#ifndef TALON_HTTP_ARENA_H
#define TALON_HTTP_ARENA_H

#include <stddef.h>

typedef struct talon_arena_chunk talon_arena_chunk;

typedef struct talon_arena {
    char *pos;                /* next free byte of the current chunk */
    char *end;                /* end of the current chunk */
    talon_arena_chunk *chunks; /* malloc'd chunks, newest first */
} talon_arena;

/* Start an arena on caller-owned memory (usually inside the request). */
void talon_arena_init(talon_arena *arena, void *first, size_t size);
/* Free every chunk the arena malloc'd; the first block stays the caller's. */
void talon_arena_release(talon_arena *arena);
/* Allocate size bytes aligned for any type; NULL when out of memory. */
void *talon_arena_alloc(talon_arena *arena, size_t size);
/* Copy len bytes and append a NUL. */
char *talon_arena_strndup(talon_arena *arena, const char *s, size_t len);
char *talon_arena_strdup(talon_arena *arena, const char *s);

#endif
