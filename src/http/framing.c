/* Request framing checks (see framing.h). Each rule names the RFC 9112
 * section it follows; a rejected request gets an error response and its
 * connection is closed, because after a framing error nothing on it can be trusted. */
#include "http/framing.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool talon_http_is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_tchar((unsigned char)s[i]))
            return false;
    }
    return true;
}

int talon_framing_check_field(const char *name, size_t name_len, const char *value,
                              size_t value_len, const char **why)
{
    if (!talon_http_is_token(name, name_len)) {
        *why = "A header field name is not a token (whitespace before the colon, or a "
               "control byte); the request was rejected.";
        return 400;
    }
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '\r' || c == '\n' || c == '\0') {
            *why = "A header field value contains CR, LF or NUL; the request was rejected.";
            return 400;
        }
    }
    return 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Find the next element of the comma-separated list s: its start and its
 * length without surrounding whitespace go to *elem and *elem_len (NULL at
 * the end), and the rest of the list is returned. Empty elements are
 * skipped, as RFC 9110 section 5.6.1 requires. */
static const char *next_element(const char *s, const char **elem, size_t *elem_len)
{
    for (;;) {
        while (is_ows(*s) || *s == ',')
            s++;
        if (*s == '\0') {
            *elem = NULL;
            *elem_len = 0;
            return s;
        }
        const char *start = s;
        while (*s != '\0' && *s != ',')
            s++;
        const char *end = s;
        while (end > start && is_ows(end[-1]))
            end--;
        *elem = start;
        *elem_len = (size_t)(end - start);
        return s;
    }
}

bool talon_http_list_has(const char *value, const char *token)
{
    size_t token_len = strlen(token);
    const char *elem, *rest = value;
    size_t len;
    while ((rest = next_element(rest, &elem, &len)), elem != NULL) {
        if (len == token_len && strncasecmp(elem, token, len) == 0)
            return true;
    }
    return false;
}

static bool is_chunked(const char *s, size_t len)
{
    return len == 7 && strncasecmp(s, "chunked", 7) == 0;
}

/* Transfer-Encoding (RFC 9112 sections 6.1 and 6.3, rule 4). libmicrohttpd
 * decodes chunked only when the first Transfer-Encoding field is exactly
 * "chunked"; any other value makes it read the body until the connection
 * closes. So exactly one field reading "chunked" is accepted. */
static int check_transfer_encoding(const talon_req *req, const char **why)
{
    const char *name, *value, *only = NULL;
    size_t fields = 0, codings = 0;
    bool last_chunked = false, chunked_before = false;

    for (size_t i = 0; talon_req_header_at(req, i, &name, &value); i++) {
        if (strcasecmp(name, "Transfer-Encoding") != 0)
            continue;
        fields++;
        only = value;
        const char *elem, *rest = value;
        size_t len;
        while ((rest = next_element(rest, &elem, &len)), elem != NULL) {
            if (last_chunked)
                chunked_before = true;
            last_chunked = is_chunked(elem, len);
            codings++;
        }
    }
    if (fields == 0)
        return 0;
    if (strcmp(talon_req_protocol(req), "HTTP/1.0") == 0) {
        *why = "Transfer-Encoding is not defined for HTTP/1.0 (RFC 9112 section 6.1).";
        return 400;
    }
    if (fields == 1 && strcasecmp(only, "chunked") == 0)
        return 0;
    if (codings == 0 || !last_chunked || chunked_before) {
        *why = "Transfer-Encoding must end with chunked, applied once; the body length "
               "cannot be determined (RFC 9112 section 6.3).";
        return 400;
    }
    *why = "Only the chunked transfer coding is implemented; send the body with "
           "Transfer-Encoding: chunked alone.";
    return 501;
}

/* Content-Length (RFC 9112 section 6.3, rule 5): several fields with
 * different values make the framing invalid. libmicrohttpd rejects a list
 * in one field and honours the first of several fields. */
static int check_content_length(const talon_req *req, const char **why)
{
    const char *name, *value, *first = NULL;

    for (size_t i = 0; talon_req_header_at(req, i, &name, &value); i++) {
        if (strcasecmp(name, "Content-Length") != 0)
            continue;
        if (first == NULL) {
            first = value;
        } else if (strcmp(first, value) != 0) {
            *why = "The request has several Content-Length fields with different values.";
            return 400;
        }
    }
    if (first != NULL && talon_req_header(req, "Transfer-Encoding") != NULL) {
        /* Section 6.3, rule 3: may be a smuggling attempt. */
        *why = "The request has both Content-Length and Transfer-Encoding; send only one.";
        return 400;
    }
    return 0;
}

/* Whether value can be a Host field value: uri-host [ ":" port ] (RFC 9112
 * section 3.2, RFC 3986 section 3.2.2), checked by its characters only.
 * Empty is allowed: the target then has no authority. */
static bool host_value_valid(const char *value)
{
    static const char allowed[] = "-._~%!$&'()*+,;=:";
    const unsigned char *p = (const unsigned char *)value;
    if (*p == '[') {
        /* An IP-literal: hex digits, dots and colons up to the ']'. */
        for (p++; *p != ']'; p++) {
            if (*p == '\0' || !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                                (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
                return false;
        }
        p++;
        if (*p != '\0' && *p != ':')
            return false;
    }
    for (; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr(allowed, *p) != NULL))
            return false;
    }
    return true;
}

int talon_framing_check_head(const talon_req *req, const char **why)
{
    const char *method = talon_req_method(req);
    if (!talon_http_is_token(method, strlen(method))) {
        *why = "The request method is not a token.";
        return 400;
    }
    const char *name, *value;
    size_t hosts = 0, auths = 0, proxy_auths = 0;
    for (size_t i = 0; talon_req_header_at(req, i, &name, &value); i++) {
        if (strcasecmp(name, "Host") == 0)
            hosts++;
        else if (strcasecmp(name, "Authorization") == 0)
            auths++;
        else if (strcasecmp(name, "Proxy-Authorization") == 0)
            proxy_auths++;
    }
    if (hosts > 1) {
        /* Section 3.2: more than one Host field line is an error. */
        *why = "The request has more than one Host header field.";
        return 400;
    }
    const char *host = talon_req_header(req, "Host");
    if (host != NULL && !host_value_valid(host)) {
        /* Section 3.2 again: a Host that is not a host and port, such as
         * "a b" or "a/b@c", must get 400. */
        *why = "The Host header field is not a host name or address with an optional port.";
        return 400;
    }
    /* RFC 9110 section 11.6.2 allows one set of credentials, not a list.
     * An application reads the first field and a proxy may read the last,
     * so two fields could authenticate as different users. */
    if (auths > 1) {
        *why = "The request has more than one Authorization header field; send one.";
        return 400;
    }
    if (proxy_auths > 1) {
        *why = "The request has more than one Proxy-Authorization header field; send one.";
        return 400;
    }
    int status = check_content_length(req, why);
    if (status == 0)
        status = check_transfer_encoding(req, why);
    return status;
}
