/* The controller's answer to a report (docs/interfaces.md, "Activity"):
 * 204 without a body, or 200 with {"target":{...}} (target.h).  Parsed
 * with the server's own JSON parser (MariaDB's json service), so no JSON
 * code of ours reads bytes from the network. */
#ifndef WA_ANSWER_H
#define WA_ANSWER_H

#include <stddef.h>

#include "target.h"

/* Fills *t (both keys absent when there is no target).  Returns 0, or -1
 * when the body is not that object: then *t holds no target. */
int wa_answer_parse(const char *body, size_t len, struct wa_target *t);

#endif
