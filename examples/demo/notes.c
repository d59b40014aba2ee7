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
#include "demo_audit.h"

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
    json_t *doc = talon_req_json_flags(req, resp, JSON_ALLOW_NUL);
    if (doc == NULL)
        return NULL;
    json_t *text = json_is_object(doc) ? json_object_get(doc, "text") : NULL;
    char *copy = NULL;
    if (!json_is_string(text)) {
        talon_resp_error(resp, 400, "Invalid note",
                         "The body must be a JSON object with a string field \"text\".");
    } else if (strlen(json_string_value(text)) != json_string_length(text)) {
        talon_resp_error(resp, 400, "Invalid note", "note text must not contain NUL (\\u0000)");
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

/* Insert n at its place by id (commits may come in any order). Caller
 * holds notes_lock for writing. Returns 0 or -ENOMEM. */
static int insert_note_locked(const note *n)
{
    if (nnotes == notes_cap) {
        size_t cap = notes_cap ? notes_cap * 2 : 64;
        note *grown = realloc(notes, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        notes = grown;
        notes_cap = cap;
    }
    size_t i = nnotes;
    while (i > 0 && notes[i - 1].id > n->id)
        i--;
    memmove(&notes[i + 1], &notes[i], (nnotes - i) * sizeof(*notes));
    notes[i] = *n;
    nnotes++;
    return 0;
}

/* A note created by POST, applied when its record is durable. */
typedef struct note_change {
    note n;
    char user[64];       /* the author, or "" for an anonymous note */
} note_change;

static void discard_note(talon_req *req, talon_resp *resp, void *ctx)
{
    note_change *c = ctx;
    free(c->n.text);
    free(c);
}

static void apply_note_created(talon_req *req, talon_resp *resp, void *ctx)
{
    note_change *c = ctx;
    pthread_rwlock_wrlock(&notes_lock);
    int rc = insert_note_locked(&c->n);
    pthread_rwlock_unlock(&notes_lock);
    if (rc < 0) {
        talon_resp_error(resp, 500, NULL, "Out of memory.");
        discard_note(req, resp, ctx);
        return;
    }
    if (c->user[0] != '\0')
        demo_note_set_owner(c->n.id, c->user);
    free(c);
}

static void notes_post(talon_req *req, talon_resp *resp, void *ctx)
{
    char *text = read_text(req, resp);
    if (text == NULL)
        return;
    note_change *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        free(text);
        talon_resp_error(resp, 500, NULL, "Out of memory.");
        return;
    }
    /* The id is taken now; a note whose record fails leaves a gap. */
    pthread_rwlock_wrlock(&notes_lock);
    c->n.id = next_id++;
    pthread_rwlock_unlock(&notes_lock);
    c->n.text = text;
    now_rfc3339(c->n.created_at);
    memcpy(c->n.updated_at, c->n.created_at, sizeof(c->n.updated_at));
    if (talon_req_user(req) != NULL)
        snprintf(c->user, sizeof(c->user), "%s", talon_req_user(req));

    char id[32], location[64];
    snprintf(id, sizeof(id), "%lld", (long long)c->n.id);
    snprintf(location, sizeof(location), "/notes/%s", id);
    demo_send_json(resp, 201, note_json(&c->n));
    talon_resp_set_header(resp, "Location", location);
    demo_commit_change(req, resp, &(demo_change){
        .type = "note_created", .target_type = "note", .target_id = id,
        .apply = apply_note_created, .discard = discard_note, .ctx = c });
}

const char *demo_note_id_format(int64_t note_id, char buf[DEMO_NOTE_ID_MAX])
{
    snprintf(buf, DEMO_NOTE_ID_MAX, "%lld", (long long)note_id);
    return buf;
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

/* A PUT or DELETE of an existing note, applied when its record is durable. */
typedef struct note_edit {
    int64_t id;
    bool remove;             /* DELETE */
    char *text;              /* PUT: the new text */
    char updated_at[32];
} note_edit;

static void discard_edit(talon_req *req, talon_resp *resp, void *ctx)
{
    note_edit *e = ctx;
    free(e->text);
    free(e);
}

/* NOTE: a note deleted between the check in the responder and the commit
 * (two clients at once) is not changed, and the response becomes 404, but
 * the record of the change was written. */
static void apply_note_edit(talon_req *req, talon_resp *resp, void *ctx)
{
    note_edit *e = ctx;
    pthread_rwlock_wrlock(&notes_lock);
    long i = find_note(e->id);
    if (i >= 0 && !e->remove) {
        free(notes[i].text);
        notes[i].text = e->text;
        e->text = NULL;
        memcpy(notes[i].updated_at, e->updated_at, sizeof(e->updated_at));
    } else if (i >= 0) {
        free(notes[i].text);
        memmove(&notes[i], &notes[i + 1], (nnotes - (size_t)i - 1) * sizeof(*notes));
        nnotes--;
    }
    pthread_rwlock_unlock(&notes_lock);
    if (i < 0) {
        note_not_found(resp, e->id);
    } else if (e->remove) {
        demo_note_forget(e->id);
    }
    discard_edit(req, resp, ctx);
}

static void note_put(talon_req *req, talon_resp *resp, void *ctx)
{
    char idbuf[DEMO_NOTE_ID_MAX];
    int64_t id = 0;
    talon_req_param_int(req, "id", &id);
    char *text = read_text(req, resp);
    if (text == NULL)
        return;
    note_edit *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        free(text);
        talon_resp_error(resp, 500, NULL, "Out of memory.");
        return;
    }
    e->id = id;
    e->text = text;
    now_rfc3339(e->updated_at);
    pthread_rwlock_rdlock(&notes_lock);
    long i = find_note(id);
    json_t *doc = NULL;
    if (i >= 0) {
        note after = notes[i];
        after.text = text;
        memcpy(after.updated_at, e->updated_at, sizeof(after.updated_at));
        doc = note_json(&after);
    }
    pthread_rwlock_unlock(&notes_lock);
    if (i < 0) {
        discard_edit(req, resp, e);
        note_not_found(resp, id);
        return;
    }
    demo_send_json(resp, 200, doc);
    demo_commit_change(req, resp, &(demo_change){
        .type = "note_updated", .target_type = "note", .target_id = demo_note_id_format(id, idbuf),
        .apply = apply_note_edit, .discard = discard_edit, .ctx = e });
}

static void note_delete(talon_req *req, talon_resp *resp, void *ctx)
{
    char idbuf[DEMO_NOTE_ID_MAX];
    int64_t id = 0;
    talon_req_param_int(req, "id", &id);
    pthread_rwlock_rdlock(&notes_lock);
    long i = find_note(id);
    pthread_rwlock_unlock(&notes_lock);
    if (i < 0) {
        note_not_found(resp, id);
        return;
    }
    note_edit *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        talon_resp_error(resp, 500, NULL, "Out of memory.");
        return;
    }
    e->id = id;
    e->remove = true;
    talon_resp_set_status(resp, 204);
    demo_commit_change(req, resp, &(demo_change){
        .type = "note_deleted", .target_type = "note", .target_id = demo_note_id_format(id, idbuf),
        .apply = apply_note_edit, .discard = discard_edit, .ctx = e });
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
