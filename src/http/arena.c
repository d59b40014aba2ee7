/* Per-request bump allocator. Chunks grow geometrically so that a request
 * with many headers costs a handful of malloc calls, not one per string. */
#include "http/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct talon_arena_chunk {
    talon_arena_chunk *next;
    size_t size;
    max_align_t data[];
};

#define ARENA_ALIGN _Alignof(max_align_t)
#define ARENA_MIN_CHUNK 4096

void talon_arena_init(talon_arena *arena, void *first, size_t size)
{
    arena->pos = first;
    arena->end = (char *)first + size;
    arena->chunks = NULL;
}

void talon_arena_release(talon_arena *arena)
{
    talon_arena_chunk *c = arena->chunks;
    while (c != NULL) {
        talon_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    arena->chunks = NULL;
    arena->pos = arena->end = NULL;
}

static void *arena_grow(talon_arena *arena, size_t size)
{
    size_t want = ARENA_MIN_CHUNK;
    if (arena->chunks != NULL)
        want = arena->chunks->size * 2;
    if (want < size)
        want = size;
    talon_arena_chunk *c = malloc(sizeof(*c) + want);
    if (c == NULL)
        return NULL;
    c->size = want;
    c->next = arena->chunks;
    arena->chunks = c;
    arena->pos = (char *)c->data + size;
    arena->end = (char *)c->data + want;
    return c->data;
}

void *talon_arena_alloc(talon_arena *arena, size_t size)
{
    if (size == 0)
        size = 1;
    uintptr_t p = ((uintptr_t)arena->pos + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    if (arena->pos != NULL && p <= (uintptr_t)arena->end && size <= (uintptr_t)arena->end - p) {
        arena->pos = (char *)p + size;
        return (void *)p;
    }
    if (size > SIZE_MAX / 2)
        return NULL;
    return arena_grow(arena, (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1));
}

char *talon_arena_strndup(talon_arena *arena, const char *s, size_t len)
{
    /* Strings need no alignment: take them byte-exact from the current chunk. */
    char *d;
    if (arena->pos != NULL && len < (size_t)(arena->end - arena->pos)) {
        d = arena->pos;
        arena->pos += len + 1;
    } else {
        d = talon_arena_alloc(arena, len + 1);
        if (d == NULL)
            return NULL;
    }
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *talon_arena_strdup(talon_arena *arena, const char *s)
{
    return talon_arena_strndup(arena, s, strlen(s));
}
