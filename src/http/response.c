/* Responses: status, headers, body, JSON and Falcon-style error bodies. */
#include "http/framing.h"
#include "http/request.h"
#include "log/log_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void talon_resp_init(talon_resp *resp, talon_arena *arena)
{
    memset(resp, 0, sizeof(*resp));
    resp->arena = arena;
}

void talon_resp_free(talon_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

void talon_resp_set_status(talon_resp *resp, int status)
{
    resp->status = status;
}

int talon_resp_status(const talon_resp *resp)
{
    return resp->status;
}

bool talon_resp_is_set(const talon_resp *resp)
{
    return resp->status != 0;
}

/* Reject what would let a value split or corrupt the response head. */
static int check_header(const char *name, const char *value)
{
    if (name == NULL || value == NULL || !talon_http_is_token(name, strlen(name)))
        return -EINVAL;
    /* RFC 9110 section 5.5: a field value has no control character but HTAB.
     * CR and LF would also split the head and inject header fields. */
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return -EINVAL;
    }
    /* The engine computes the framing itself. */
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0)
        return -EINVAL;
    return 0;
}

int talon_resp_add_header(talon_resp *resp, const char *name, const char *value)
{
    int rc = check_header(name, value);
    if (rc < 0)
        return rc;
    return talon_kv_add(resp->arena, &resp->headers, name, strlen(name), value, strlen(value));
}

int talon_resp_set_header(talon_resp *resp, const char *name, const char *value)
{
    int rc = check_header(name, value);
    if (rc < 0)
        return rc;
    size_t o = 0;
    for (size_t i = 0; i < resp->headers.n; i++) {
        if (strcasecmp(resp->headers.items[i].name, name) != 0)
            resp->headers.items[o++] = resp->headers.items[i];
    }
    resp->headers.n = o;
    return talon_resp_add_header(resp, name, value);
}

const char *talon_resp_header(const talon_resp *resp, const char *name)
{
    return talon_kv_find_case(&resp->headers, name);
}

size_t talon_resp_header_count(const talon_resp *resp)
{
    return resp->headers.n;
}

bool talon_resp_header_at(const talon_resp *resp, size_t i, const char **name,
                          const char **value)
{
    return talon_kv_at(&resp->headers, i, name, value);
}

void talon_resp_set_body(talon_resp *resp, const void *data, size_t len)
{
    char *copy = NULL;
    if (len > 0) {
        copy = malloc(len + 1);
        if (copy == NULL) {
            /* Out of memory: send an empty 500 rather than a wrong body. */
            talon_resp_free(resp);
            resp->status = 500;
            resp->error = true;
            return;
        }
        memcpy(copy, data, len);
        copy[len] = '\0';
    }
    free(resp->body);
    resp->body = copy;
    resp->body_len = len;
}

/* Take ownership of a malloc'd buffer. */
static void resp_take_body(talon_resp *resp, char *body, size_t len)
{
    free(resp->body);
    resp->body = body;
    resp->body_len = len;
}

const char *talon_resp_body(const talon_resp *resp, size_t *len)
{
    if (len != NULL)
        *len = resp->body_len;
    return resp->body;
}

void talon_resp_json(talon_resp *resp, int status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(value);
    if (text == NULL) {
        talon_resp_error(resp, 500, NULL, "The response could not be encoded as JSON.");
        return;
    }
    resp_take_body(resp, text, strlen(text));
    resp->status = status;
    talon_resp_set_header(resp, "Content-Type", "application/json");
}

/* Make a JSON string of text with each byte of invalid UTF-8 replaced by
 * U+FFFD, because json_string() returns NULL for such text (a description
 * built from a raw request path). NOTE: Python's errors="replace" writes one
 * U+FFFD for a truncated sequence ("\xe2\x82"), this writes one per byte. */
static json_t *json_string_replacing(const char *text)
{
    json_t *value = json_string(text);
    if (value != NULL)
        return value;
    size_t len = strlen(text);
    char *copy = malloc(len * 3 + 1);
    if (copy == NULL)
        return NULL;
    size_t o = 0;
    const unsigned char *end = (const unsigned char *)text + len;
    for (const unsigned char *p = (const unsigned char *)text; p < end;) {
        size_t n = *p < 0x80 ? 1 : log_utf8_sequence_length(p, (size_t)(end - p));
        if (n == 0) {
            memcpy(copy + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
            continue;
        }
        memcpy(copy + o, p, n);
        o += n;
        p += n;
    }
    value = json_stringn(copy, o);
    free(copy);
    return value;
}

void talon_resp_error(talon_resp *resp, int status, const char *title, const char *description)
{
    if (title == NULL)
        title = talon_status_reason(status);
    json_t *doc = json_object();
    json_object_set_new(doc, "title", json_string_replacing(title));
    if (description != NULL)
        json_object_set_new(doc, "description", json_string_replacing(description));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text != NULL)
        resp_take_body(resp, text, strlen(text));
    else
        talon_resp_free(resp);
    resp->status = status;
    resp->error = true;
    talon_resp_set_header(resp, "Content-Type", "application/json");
}

const char *talon_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: break;
    }
    if (status >= 100 && status < 200) return "Informational";
    if (status >= 200 && status < 300) return "Success";
    if (status >= 300 && status < 400) return "Redirection";
    if (status >= 400 && status < 500) return "Client Error";
    return "Server Error";
}
