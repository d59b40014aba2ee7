/* The notes API, kept in memory:
 *   GET    /notes            list every note
 *   POST   /notes            create from {"text": "..."}; 201 with Location
 *   GET    /notes/{id:int}   one note, or 404
 *   PUT    /notes/{id:int}   replace its text from {"text": "..."}
 *   DELETE /notes/{id:int}   204, or 404
 * Notes are sorted by id (ids only grow), so lookups are binary searches
 * under a read-write lock. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define NOTE_TEXT_MAX 10000

typedef struct note {
    int64_t id;
    char *text;
    char created_at[32]; /* RFC 3339, UTC */
    char updated_at[32];
} note;

static pthread_rwlock_t notes_lock = PTHREAD_RWLOCK_INITIALIZER;
static note *notes;
static size_t nnotes;
static size_t notes_cap;
static int64_t next_id = 1;

static void now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Index of the note with this id, or -1. Caller holds notes_lock. */
static long find_note(int64_t id)
{
    size_t lo = 0, hi = nnotes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (notes[mid].id == id)
            return (long)mid;
        if (notes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static json_t *note_json(const note *n)
{
    return json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)n->id, "text", n->text,
                     "created_at", n->created_at, "updated_at", n->updated_at);
}

/* Read {"text": "..."} from the body; on error the response is set. */
static char *read_text(talon_req *req, talon_resp *resp)
{
    json_t *doc = talon_req_json(req, resp);
    if (doc == NULL)
        return NULL;
    json_t *text = json_is_object(doc) ? json_object_get(doc, "text") : NULL;
    char *copy = NULL;
    if (!json_is_string(text)) {
        talon_resp_error(resp, 400, "Invalid note",
                         "The body must be a JSON object with a string field \"text\".");
    } else if (json_string_length(text) > NOTE_TEXT_MAX) {
        char desc[128];
        snprintf(desc, sizeof(desc), "The \"text\" field is %zu bytes; the limit is %d.",
                 json_string_length(text), NOTE_TEXT_MAX);
        talon_resp_error(resp, 400, "Invalid note", desc);
    } else {
        copy = strdup(json_string_value(text));
        if (copy == NULL)
            talon_resp_error(resp, 500, NULL, "Out of memory.");
    }
    json_decref(doc);
    return copy;
}

static void notes_get(talon_req *req, talon_resp *resp, void *ctx)
{
    json_t *list = json_array();
    pthread_rwlock_rdlock(&notes_lock);
    for (size_t i = 0; i < nnotes; i++)
        json_array_append_new(list, note_json(&notes[i]));
    pthread_rwlock_unlock(&notes_lock);
    demo_send_json(resp, 200, json_pack("{s:o}", "notes", list));
}

static void notes_post(talon_req *req, talon_resp *resp, void *ctx)
{
    char *text = read_text(req, resp);
    if (text == NULL)
        return;
    pthread_rwlock_wrlock(&notes_lock);
    if (nnotes == notes_cap) {
        size_t cap = notes_cap ? notes_cap * 2 : 64;
        note *grown = realloc(notes, cap * sizeof(*grown));
        if (grown == NULL) {
            pthread_rwlock_unlock(&notes_lock);
            free(text);
            talon_resp_error(resp, 500, NULL, "Out of memory.");
            return;
        }
        notes = grown;
        notes_cap = cap;
    }
    note *n = &notes[nnotes++];
    n->id = next_id++;
    n->text = text;
    now_rfc3339(n->created_at);
    memcpy(n->updated_at, n->created_at, sizeof(n->updated_at));
    json_t *doc = note_json(n);
    int64_t id = n->id;
    pthread_rwlock_unlock(&notes_lock);

    char location[64];
    snprintf(location, sizeof(location), "/notes/%lld", (long long)id);
    demo_send_json(resp, 201, doc);
    talon_resp_set_header(resp, "Location", location);
}

static void note_not_found(talon_resp *resp, int64_t id)
{
    char desc[96];
    snprintf(desc, sizeof(desc), "There is no note with id %lld.", (long long)id);
    talon_resp_error(resp, 404, NULL, desc);
}

static void note_get(talon_req *req, talon_resp *resp, void *ctx)
{
    int64_t id = 0;
    talon_req_param_int(req, "id", &id);
    pthread_rwlock_rdlock(&notes_lock);
    long i = find_note(id);
    json_t *doc = i >= 0 ? note_json(&notes[i]) : NULL;
    pthread_rwlock_unlock(&notes_lock);
    if (i < 0)
        note_not_found(resp, id);
    else
        demo_send_json(resp, 200, doc);
}

static void note_put(talon_req *req, talon_resp *resp, void *ctx)
{
    int64_t id = 0;
    talon_req_param_int(req, "id", &id);
    char *text = read_text(req, resp);
    if (text == NULL)
        return;
    pthread_rwlock_wrlock(&notes_lock);
    long i = find_note(id);
    json_t *doc = NULL;
    if (i >= 0) {
        free(notes[i].text);
        notes[i].text = text;
        text = NULL;
        now_rfc3339(notes[i].updated_at);
        doc = note_json(&notes[i]);
    }
    pthread_rwlock_unlock(&notes_lock);
    free(text);
    if (i < 0)
        note_not_found(resp, id);
    else
        demo_send_json(resp, 200, doc);
}

static void note_delete(talon_req *req, talon_resp *resp, void *ctx)
{
    int64_t id = 0;
    talon_req_param_int(req, "id", &id);
    pthread_rwlock_wrlock(&notes_lock);
    long i = find_note(id);
    if (i >= 0) {
        free(notes[i].text);
        memmove(&notes[i], &notes[i + 1], (nnotes - (size_t)i - 1) * sizeof(*notes));
        nnotes--;
    }
    pthread_rwlock_unlock(&notes_lock);
    if (i < 0)
        note_not_found(resp, id);
    else
        talon_resp_set_status(resp, 204);
}

int demo_notes_routes(demo *d, char *err, size_t errlen)
{
    static const talon_resource collection = {
        .name = "notes", .on_get = notes_get, .on_post = notes_post,
    };
    static const talon_resource item = {
        .name = "note", .on_get = note_get, .on_put = note_put, .on_delete = note_delete,
    };
    int rc = talon_app_add_route(d->app, "/notes", &collection, err, errlen);
    if (rc == 0)
        rc = talon_app_add_route(d->app, "/notes/{id:int}", &item, err, errlen);
    return rc;
}

void demo_notes_free(void)
{
    pthread_rwlock_wrlock(&notes_lock);
    for (size_t i = 0; i < nnotes; i++)
        free(notes[i].text);
    free(notes);
    notes = NULL;
    nnotes = notes_cap = 0;
    pthread_rwlock_unlock(&notes_lock);
}
