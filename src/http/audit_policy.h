/* Internal accessors of the audit policy for the audit middleware. */
#ifndef TALON_HTTP_AUDIT_POLICY_H
#define TALON_HTTP_AUDIT_POLICY_H

#include <stddef.h>

#include "talon/audit_http.h"

talon_audit_failure audit_policy_failure(const talon_audit_policy *policy);
/* Bytes of a request or response body kept at levels request and above. */
size_t audit_policy_max_body(const talon_audit_policy *policy);

#endif
